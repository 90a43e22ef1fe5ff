"""Tests for d2net_tf.modeling (TemporalConvStream, the D2Net network) and d2net_tf.task.D2NetTask.

Config round trips, padding invariance, training step (loss decrease, x_ref EMA, L2 weight
decay, non-finite skip) and checkpoint/restore including x_ref and the optimizer state.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from conftest import compile_model, make_batch
from d2net_tf.config import LossConfig, ModelConfig, TrainConfig, preset
from d2net_tf.modeling import D2Net, TemporalConvStream, build_network
from d2net_tf.task import D2NetTask, build_task

FEAT, NCLS = 8, 3  # feature_dim (channels 4 per stream), classes


def model_cfg(**kw):
    base = dict(feature_dim=FEAT, num_classes=NCLS, dropout=0.0, init="glorot")
    base.update(kw)
    return ModelConfig(**base)


def dataset(batch, steps):
    return tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in batch.items()}).repeat(steps)


def fit(model, batch, steps=1):
    model.fit(dataset(batch, steps), epochs=1, verbose=0, shuffle=False)


def trainable_values(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def set_xref(model, seed=7):
    model.x_ref.assign(np.random.default_rng(seed).normal(size=FEAT // 2).astype(np.float32))


# --------------------------------------------------------------------------------------------
# Config round trips
# --------------------------------------------------------------------------------------------

STREAM_KW = dict(
    channels=4, num_classes=3, kernel_size=5, dilation=2, classifier_kernel_size=3, classifier_dilation=2,
    residual=False, dropout=0.25, init="glorot", name="custom_stream",
)


def _stream_outputs(layer, x, mask):
    emb, act = layer(x, snippet_mask=mask, training=False)
    return emb.numpy(), act.numpy()


@pytest.mark.parametrize("how", ["from_config", "deserialize"])
def test_stream_config_roundtrip(how):
    layer = TemporalConvStream(**STREAM_KW)
    x = np.random.default_rng(0).normal(size=(2, 11, 4)).astype(np.float32)
    mask = np.ones((2, 11), np.float32)
    mask[1, 8:] = 0
    want = _stream_outputs(layer, x, mask)
    cfg = layer.get_config()
    for k, v in STREAM_KW.items():
        assert cfg[k] == v, k
    if how == "from_config":
        clone = TemporalConvStream.from_config(cfg)
    else:
        ser = keras.saving.serialize_keras_object(layer)
        clone = keras.saving.deserialize_keras_object(ser)
    assert isinstance(clone, TemporalConvStream)
    assert clone.get_config() == cfg
    if not clone.built:
        clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    got = _stream_outputs(clone, x, mask)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_stream_serialization_is_json():
    import json

    layer = TemporalConvStream(**STREAM_KW)
    ser = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    clone = keras.saving.deserialize_keras_object(ser)
    assert clone.get_config() == layer.get_config()


D2_MODEL = ModelConfig(
    feature_dim=FEAT, num_classes=NCLS, kernel_size=5, dilation=2, classifier_kernel_size=3,
    classifier_dilation=2, residual=False, dropout=0.3, init="glorot",
)
D2_LOSS = LossConfig(
    variant="d2net_l1", topk_divisor=4.0, bg_threshold=0.8, weighted_mean_embeddings=False, gamma=0.05,
    attention_bg_threshold=0.3, xref_source="background_embedding", video_score_floor=0.0,
    alpha_snippet=0.2, alpha_video=0.3, denoise_start_step=3, denoise_every=1,
)


@pytest.mark.parametrize("how", ["from_config", "deserialize"])
def test_d2net_config_roundtrip(how):
    model = D2Net(dataclasses.asdict(D2_MODEL), D2_LOSS.topk_divisor, seed=11)
    model.build((None, None, FEAT))
    set_xref(model)
    cfg = model.get_config()
    assert cfg["model_config"] == dataclasses.asdict(D2_MODEL)
    assert cfg["topk_divisor"] == 4.0 and cfg["seed"] == 11
    if how == "from_config":
        clone = D2Net.from_config(cfg)
    else:
        import json

        ser = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
        clone = keras.saving.deserialize_keras_object(ser)
    assert isinstance(clone, D2Net)
    assert clone.get_config() == cfg
    assert clone.mcfg == D2_MODEL and clone.topk_divisor == 4.0 and clone.seed == 11
    assert (clone.rgb_stream.drop.seed, clone.flow_stream.drop.seed) == (11, 12)
    if not clone.built:
        clone.build((None, None, FEAT))
    clone.set_weights(model.get_weights())  # includes x_ref
    np.testing.assert_array_equal(clone.x_ref.numpy(), model.x_ref.numpy())
    batch = make_batch()
    a = model(batch["features"], snippet_mask=batch["mask"], training=False)
    b = clone(batch["features"], snippet_mask=batch["mask"], training=False)
    for k in ("tcam", "embeddings", "attention", "video_scores"):
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)


def test_d2net_config_of_a_combined_model_loads_as_the_network():
    """A D2Net config saved while the network also held the losses keeps its top-k divisor."""
    cfg = build_network(D2_MODEL, 4.0).get_config()
    old = {k: v for k, v in cfg.items() if k not in ("topk_divisor", "seed")}
    old.update(loss_config=dataclasses.asdict(D2_LOSS), weight_decay=0.005)
    assert D2Net.from_config(old).get_config() == cfg


@pytest.mark.parametrize("how", ["from_config", "deserialize"])
def test_task_config_roundtrip(how):
    task = build_task(D2_MODEL, D2_LOSS, weight_decay=0.005, seed=7, skip_nonpositive_loss=False)
    task.evaluate_denoising = False
    cfg = task.get_config()
    assert cfg["loss_config"] == dataclasses.asdict(D2_LOSS)
    assert (cfg["weight_decay"], cfg["seed"], cfg["skip_nonpositive_loss"], cfg["evaluate_denoising"]) == (
        0.005, 7, False, False)
    if how == "from_config":
        clone = D2NetTask.from_config(cfg)
    else:
        clone = keras.saving.deserialize_keras_object(
            json.loads(json.dumps(keras.saving.serialize_keras_object(task))))
    assert isinstance(clone, D2NetTask) and isinstance(clone.network, D2Net)
    json_form = lambda c: json.loads(json.dumps(c))  # noqa: E731  (tuples read back as lists)
    assert json_form(clone.get_config()) == json_form(cfg)
    assert clone.network.mcfg == D2_MODEL and clone.lcfg == D2_LOSS
    assert (clone.weight_decay, clone.seed, clone.skip_nonpositive_loss, clone.evaluate_denoising) == (
        0.005, 7, False, False)


def test_task_refuses_a_network_with_another_topk_divisor():
    with pytest.raises(ValueError, match="topk_divisor"):
        D2NetTask(build_network(D2_MODEL, 8.0), dataclasses.asdict(D2_LOSS))


# --------------------------------------------------------------------------------------------
# Padding invariance of the network
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("kd,ckd", [((3, 1), (1, 1)), ((3, 1), (3, 1)), ((5, 2), (5, 2))],
                         ids=["k3-cls1", "k3-cls3", "k5d2-cls5d2"])
def test_padded_batch_equals_single_video(residual, kd, ckd):
    cfg = model_cfg(kernel_size=kd[0], dilation=kd[1], classifier_kernel_size=ckd[0], classifier_dilation=ckd[1],
                    residual=residual)
    model = build_task(cfg, LossConfig())
    # Non-zero biases so that a leak of conv(bias) into padding would show.
    for v in model.trainable_variables:
        if "bias" in v.path:
            v.assign(np.random.default_rng(1).normal(size=v.shape).astype(np.float32) * 0.5)
    set_xref(model)
    batch = make_batch(lengths=(13, 9, 4, 1), t=13, seed=2)
    out = model(batch["features"], snippet_mask=batch["mask"], training=False)
    for i, s in enumerate((13, 9, 4, 1)):
        alone = model(batch["features"][i : i + 1, :s], snippet_mask=np.ones((1, s), np.float32), training=False)
        for k in ("tcam", "embeddings", "attention"):
            np.testing.assert_allclose(out[k].numpy()[i, :s], alone[k].numpy()[0], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{k} video {i}")
            assert np.all(out[k].numpy()[i, s:] == 0), f"{k} not zero on padding"
        np.testing.assert_allclose(out["video_scores"].numpy()[i], alone["video_scores"].numpy()[0], rtol=1e-5,
                                   atol=1e-6)


def test_padding_does_not_change_losses_through_model():
    cfg_l = dataclasses.replace(preset("official").loss, denoise_start_step=0, denoise_every=1)
    model = build_task(model_cfg(), cfg_l)
    set_xref(model)
    batch = make_batch(lengths=(10, 7, 5), t=10, seed=3)
    longer = dict(batch)
    extra = np.random.default_rng(4).uniform(-50, 50, (3, 6, FEAT)).astype(np.float32)
    longer["features"] = np.concatenate([batch["features"], extra], 1)
    longer["mask"] = np.concatenate([batch["mask"], np.zeros((3, 6), np.float32)], 1)
    res = []
    for b in (batch, longer):
        out = model(b["features"], snippet_mask=b["mask"], training=False)
        res.append({k: v.numpy() for k, v in model.compute_losses(b, out, tf.constant(b["perm"]), model.denoise_at(tf.constant(0, tf.int64))).items()})
    for k in res[0]:
        np.testing.assert_allclose(res[1][k], res[0][k], rtol=1e-5, atol=1e-6, err_msg=k)


# --------------------------------------------------------------------------------------------
# Training step
# --------------------------------------------------------------------------------------------


def eval_loss(model, batch, step=0):
    out = model(batch["features"], snippet_mask=batch["mask"], training=False)
    terms = model.compute_losses(batch, out, tf.constant(batch["perm"]), model.denoise_at(tf.constant(step, tf.int64)))
    return float(terms["loss"])


@pytest.fixture
def op_determinism_off():
    """Keras runs a model without XLA (and only warns) while TF op determinism is on, which
    `training.make_deterministic` turns on for the rest of the process."""
    was_on = tf_config.is_op_determinism_enabled()
    tf_config.disable_op_determinism()
    yield
    if was_on:
        tf_config.enable_op_determinism()


def xla_compiled_functions(model):
    """Names of the functions in the model's traced train function that XLA must compile.

    Keras 3 (TF backend) wraps one step in `tf.function(jit_compile=model.jit_compile)` inside
    the `multi_step_on_iterator` tf.function that `model.train_function` calls."""
    outer = inspect.getclosurevars(model.train_function).nonlocals["multi_step_on_iterator"]
    return [f.signature.name for c in outer._list_all_concrete_functions()
            for f in c.graph.as_graph_def().library.function
            if "_XlaMustCompile" in f.attr and f.attr["_XlaMustCompile"].b]


@pytest.mark.parametrize("variant,jit", [("dis", True), ("d2net", False)], ids=["dis-xla", "d2net"])
def test_training_decreases_loss(variant, jit, op_determinism_off):
    keras.utils.set_random_seed(0)
    # x_ref held fixed (momentum 1) so that the loss before and after is the same function.
    loss_cfg = dataclasses.replace(preset("official").loss, variant=variant, denoise_start_step=0, denoise_every=1,
                                   xref_momentum=1.0)
    model = build_task(model_cfg(), loss_cfg)
    compile_model(model, jit_compile=jit, run_eagerly=not jit)
    set_xref(model)
    batch = make_batch(lengths=(10, 9, 8, 10), t=10, seed=5)
    before = eval_loss(model, batch)
    w0 = trainable_values(model)
    fit(model, batch, steps=1)
    after_one = eval_loss(model, batch)
    fit(model, batch, steps=4)
    after = eval_loss(model, batch)
    assert np.isfinite(before) and np.isfinite(after)
    assert after_one < before, (before, after_one)
    assert after < after_one, (after_one, after)
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(w0, model.trainable_variables))
    assert int(model.train_steps.numpy()) == 5 and int(model.nonfinite_steps.numpy()) == 0
    assert model.jit_compile is jit
    if jit:
        assert xla_compiled_functions(model), "the train step did not run under XLA"


def test_create_model_refuses_a_jit_compile_that_keras_would_turn_off(op_determinism_off):
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.training import RunConfig, create_model

    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = FEAT, NCLS
    tf_config.enable_op_determinism()
    try:
        with pytest.raises(D2NetInputError, match="--jit_compile: Keras turned XLA off .* --deterministic"), \
                pytest.warns(UserWarning, match="Proceeding with `jit_compile=False`"):
            create_model(cfg, RunConfig(model_dir="", jit_compile=True))
    finally:
        tf_config.disable_op_determinism()


@pytest.mark.parametrize("source", ["most_background_snippet", "background_embedding"])
def test_train_step_updates_xref_ema(source):
    keras.utils.set_random_seed(1)
    loss_cfg = dataclasses.replace(preset("official").loss, xref_source=source)
    model = build_task(model_cfg(), loss_cfg)
    compile_model(model, run_eagerly=True)
    set_xref(model)
    x_ref0 = model.x_ref.numpy().copy()
    batch = make_batch(lengths=(10, 7, 5), t=10, seed=6)
    out = model(batch["features"], snippet_mask=batch["mask"], training=False)
    tcam, emb, mask = out["tcam"].numpy(), out["embeddings"].numpy(), batch["mask"]
    lam = tcam.max(-1)
    bgs = []
    for i in range(mask.shape[0]):
        s = int(mask[i].sum())
        if source == "most_background_snippet":
            bgs.append(emb[i, int(np.argmax(1.0 - lam[i, :s]))])
        else:  # Eq. 2 x_bg (official weighted mean, threshold 0.5)
            w = (1.0 - lam[i, :s]) * ((1.0 - lam[i, :s]) > loss_cfg.bg_threshold)
            bgs.append((w[:, None] * emb[i, :s]).sum(0) / max(w.sum(), 1e-12))
    want = 0.9 * x_ref0 + 0.1 * np.mean(bgs, 0)
    fit(model, batch, steps=1)
    np.testing.assert_allclose(model.x_ref.numpy(), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want, x_ref0)


def test_l2_weight_decay_matches_manual_adam():
    keras.utils.set_random_seed(2)
    wd, lr = 0.05, 1e-2
    loss_cfg = dataclasses.replace(preset("official").loss, denoise_start_step=0, denoise_every=1)
    model = build_task(model_cfg(), loss_cfg, weight_decay=wd)
    compile_model(model, lr, run_eagerly=True)
    set_xref(model)
    batch = make_batch(lengths=(10, 8, 6), t=10, seed=7)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        out = model(batch["features"], snippet_mask=batch["mask"], training=True)
        terms = model.compute_losses(batch, out, tf.constant(batch["perm"]), model.denoise_at(tf.constant(0, tf.int64)))
    grads = tape.gradient(terms["loss"], variables)
    copies = [keras.Variable(v.numpy()) for v in variables]
    manual = keras.optimizers.Adam(lr)
    manual.apply([g + wd * c for g, c in zip(grads, copies)], copies)
    plain = [keras.Variable(v.numpy()) for v in variables]
    keras.optimizers.Adam(lr).apply(list(grads), plain)
    fit(model, batch, steps=1)
    for v, c, p in zip(model.trainable_variables, copies, plain):
        np.testing.assert_allclose(v.numpy(), c.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)
    assert any(not np.allclose(c.numpy(), p.numpy(), atol=1e-6) for c, p in zip(copies, plain))


def test_nonfinite_step_is_skipped():
    keras.utils.set_random_seed(3)
    model = build_task(model_cfg(), preset("official").loss)
    compile_model(model)
    set_xref(model)
    batch = make_batch(seed=8)
    bad = dict(batch)
    bad["features"] = batch["features"].copy()
    bad["features"][1, 2, 3] = np.nan  # a valid snippet
    w0 = trainable_values(model)
    x0 = model.x_ref.numpy().copy()
    fit(model, bad, steps=1)
    for a, b in zip(w0, model.trainable_variables):
        np.testing.assert_array_equal(b.numpy(), a)
    np.testing.assert_array_equal(model.x_ref.numpy(), x0)
    assert int(model.nonfinite_steps.numpy()) == 1
    assert int(model.train_steps.numpy()) == 1
    assert int(model.optimizer.iterations.numpy()) == 0
    # The next finite step trains normally.
    fit(model, batch, steps=1)
    assert int(model.nonfinite_steps.numpy()) == 1
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(w0, model.trainable_variables))
    assert np.all(np.isfinite(model.x_ref.numpy()))


# --------------------------------------------------------------------------------------------
# Checkpoint / restore
# --------------------------------------------------------------------------------------------


def test_checkpoint_restore_roundtrip(tmp_path):
    keras.utils.set_random_seed(4)
    # Denoising switches on at step 2: the restored train_steps decides the next step's loss.
    loss_cfg = dataclasses.replace(preset("official").loss, denoise_start_step=2, denoise_every=1)
    wd = 5e-4
    batch = make_batch(lengths=(10, 8, 6), t=10, seed=9)

    model = build_task(model_cfg(), loss_cfg, weight_decay=wd)
    compile_model(model)
    set_xref(model)
    fit(model, batch, steps=2)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))

    fresh = build_task(model_cfg(), loss_cfg, weight_decay=wd)
    compile_model(fresh)
    fresh.optimizer.build(fresh.trainable_variables)
    status = tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(path)
    status.assert_existing_objects_matched()

    np.testing.assert_array_equal(fresh.x_ref.numpy(), model.x_ref.numpy())
    assert not np.allclose(fresh.x_ref.numpy(), 0.0)
    assert int(fresh.train_steps.numpy()) == int(model.train_steps.numpy()) == 2
    assert int(fresh.optimizer.iterations.numpy()) == 2
    for a, b in zip(fresh.trainable_variables, model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)

    fit(model, batch, steps=1)
    fit(fresh, batch, steps=1)
    for a, b in zip(fresh.trainable_variables, model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    np.testing.assert_allclose(fresh.x_ref.numpy(), model.x_ref.numpy(), rtol=1e-6, atol=1e-7)
    assert int(fresh.train_steps.numpy()) == 3


def test_test_step_reports_loss_terms():
    model = build_task(model_cfg(), preset("paper").loss)
    compile_model(model)
    res = model.evaluate(dataset(make_batch(seed=10), 2), verbose=0, return_dict=True)
    for k in ("loss", "dis", "snippet", "video", "w_fb", "w_fg", "w_bg"):
        assert k in res and np.isfinite(res[k]), k


def test_nonfinite_padding_does_not_leak():
    model = build_task(model_cfg(), LossConfig())
    batch = make_batch(lengths=(10, 6), t=10, seed=11)
    feats = batch["features"].copy()
    feats[1, 6:] = np.nan
    out = model(feats, snippet_mask=batch["mask"], training=False)
    alone = model(feats[1:, :6], snippet_mask=np.ones((1, 6), np.float32), training=False)
    np.testing.assert_allclose(out["tcam"].numpy()[1, :6], alone["tcam"].numpy()[0], rtol=1e-5, atol=1e-5)


def test_skipped_step_not_averaged_into_metrics():
    keras.utils.set_random_seed(5)
    model = compile_model(build_task(model_cfg(), preset("official").loss), run_eagerly=True)
    good = make_batch(seed=12)
    bad = dict(good, features=good["features"].copy())
    bad["features"][0, 0, 0] = np.nan
    out = model(good["features"], snippet_mask=good["mask"], training=True)
    want = float(model.compute_losses(good, out, tf.constant(good["perm"]), model.denoise_at(tf.constant(1, tf.int64)))["loss"])
    ds = dataset(bad, 1).concatenate(dataset(good, 1))
    hist = model.fit(ds, epochs=1, verbose=0, shuffle=False).history
    assert int(model.nonfinite_steps.numpy()) == 1
    np.testing.assert_allclose(hist["loss"][-1], want, rtol=1e-4)


def test_step_without_valid_videos_is_skipped_like_the_official():
    """Official `if total_loss > 0`: a batch with no valid video (loss 0) changes no weight and
    does not advance Adam (L2 would otherwise move the weights); the step counter advances."""
    keras.utils.set_random_seed(4)
    model = build_task(model_cfg(), preset("official").loss, weight_decay=5e-4)
    compile_model(model, 1e-2)
    set_xref(model)
    batch = make_batch(lengths=(4, 3, 2))  # all shorter than 5 snippets: no valid video
    before, ref = trainable_values(model), model.x_ref.numpy().copy()
    fit(model, batch, steps=1)
    for a, b in zip(before, trainable_values(model)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.x_ref.numpy(), ref)
    assert int(model.optimizer.iterations.numpy()) == 0 and int(model.train_steps.numpy()) == 1
    model.skip_nonpositive_loss = False
    model.make_train_function(force=True)
    fit(model, batch, steps=1)
    assert int(model.optimizer.iterations.numpy()) == 1


def test_embeddings_after_dropout_in_training_only():
    cfg = dataclasses.replace(model_cfg(), dropout=0.5, embeddings_after_dropout=True, rezero_padding=True)
    model = build_task(cfg, LossConfig())
    batch = make_batch(garbage=False)
    mult = np.where(np.random.default_rng(0).random(batch["features"].shape) < 0.5, 0.0, 2.0).astype("float32")
    out = model(batch["features"], snippet_mask=batch["mask"], training=True, dropout_multiplier=mult)
    plain = model(batch["features"], snippet_mask=batch["mask"], training=False)
    half = FEAT // 2
    emb = 0.5 * (model.network.rgb_stream(batch["features"][..., :half], snippet_mask=batch["mask"])[0]
                 * mult[..., :half] + model.network.flow_stream(batch["features"][..., half:], snippet_mask=batch["mask"])[0]
                 * mult[..., half:])
    np.testing.assert_allclose(out["embeddings"].numpy(), emb.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["embeddings"].numpy(), plain["embeddings"].numpy())
    before = build_task(dataclasses.replace(cfg, embeddings_after_dropout=False), LossConfig())
    before.set_weights(model.get_weights())
    got = before(batch["features"], snippet_mask=batch["mask"], training=True, dropout_multiplier=mult)
    np.testing.assert_allclose(got["embeddings"].numpy(), plain["embeddings"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["tcam"].numpy(), out["tcam"].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field,value", [("dropout", 1.0), ("init", "xavier"), ("kernel_size", 4)])
def test_model_config_validates_itself(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        ModelConfig(**{field: value})


@pytest.mark.parametrize("part,field,value", [
    (LossConfig, "variant", "d3net"), (LossConfig, "xref_source", "x"), (LossConfig, "denoise_every", 0),
    (TrainConfig, "adam_epsilon_mode", "x"), (TrainConfig, "batch_sampling", "x"), (TrainConfig, "weight_decay_mode", "x"),
])
def test_loss_and_train_configs_validate_themselves(part, field, value):
    with pytest.raises(ValueError, match=field):
        part(**{field: value})

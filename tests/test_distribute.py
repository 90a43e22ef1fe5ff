"""tf.distribute: a MirroredStrategy step on 2 (logical CPU) replicas equals one device.

The CPU must be split into 2 logical devices before TensorFlow initialises its devices,
so the strategy checks run in a subprocess (this file run as a script) and report JSON;
the other tests of the session keep a single CPU device.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

D, C, B = 16, 5, 4
TOL = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _toy_dataset(n=10, seed=5):
    from d2net_tf.data.dataset import VideoDataset

    rng = np.random.default_rng(seed)
    labels = (rng.random((n, C)) < 0.3).astype(np.float32)
    labels[np.arange(n), rng.integers(0, C, n)] = 1.0
    feats = [rng.normal(size=(int(t), D)).astype(np.float32) for t in rng.integers(6, 20, n)]
    return VideoDataset(
        "toy", [f"c{i}" for i in range(C)], np.array([f"v{i}" for i in range(n)]), np.array(["validation"] * n),
        labels, [np.zeros((0, 2))] * n, [np.zeros(0, np.int32)] * n, np.ones(n), feats,
    )


# ----------------------------------------------------------------------------- in-process


def test_sample_crops_match_pipeline():
    from d2net_tf.data.pipeline import pad_videos, sample_crops, sample_training_batch

    ds = _toy_dataset()
    for step in range(4):
        want = sample_training_batch(ds, B, 12, 3, step)
        crops, idx = sample_crops(ds, B, 12, 3, step)
        got = pad_videos(crops)
        np.testing.assert_array_equal(idx, want["video_index"])
        np.testing.assert_array_equal(got["features"], want["features"])
        np.testing.assert_array_equal(got["mask"], want["mask"])
        # The replicas' padded shares concatenate to the single-device batch (same padded length).
        parts = [sample_training_batch(ds, B, 12, 3, step, replica_id=r, num_replicas=2) for r in range(2)]
        for key in ("features", "mask", "labels", "video_index"):
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), want[key], err_msg=key)


def test_replica_share_rejects_indivisible_batch():
    from d2net_tf.data.pipeline import sample_training_batch, training_dataset
    from d2net_tf.errors import D2NetInputError

    with pytest.raises(D2NetInputError, match="divisible"):
        sample_training_batch(_toy_dataset(), 5, 12, 0, 0, replica_id=0, num_replicas=2)
    with pytest.raises(D2NetInputError, match="divisible"):
        training_dataset(_toy_dataset(), 5, 12, 0, replica_ids=(0,), num_replicas=2)


def test_make_strategy_names():
    from d2net_tf.distribute import is_chief, is_default, make_strategy
    from d2net_tf.errors import D2NetInputError

    s = make_strategy("default")
    assert is_default(s) and is_chief(s) and s.num_replicas_in_sync == 1
    with pytest.raises(D2NetInputError):
        make_strategy("nccl")
    if "TF_CONFIG" not in os.environ:
        with pytest.raises(D2NetInputError, match="TF_CONFIG"):
            make_strategy("multi_worker")


@pytest.mark.slow  # ~65 s: a 2-replica subprocess, one step and three model.fit steps per layout
def test_mirrored_equals_single_device():
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    res = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(res, indent=1))
    # One step: every loss term, every gradient, x_ref and the updated weights.
    assert res["replicas"] == 2
    assert res["nontrivial"], res  # the batch exercises the snippet / video pDMI and pairing terms
    for key in ("terms", "grads", "x_ref", "weights_1step"):
        assert res["step"][key] <= TOL, (key, res["step"])
    # model.fit for a few steps, padded and per-replica packed batches.
    for layout in ("padded", "packed"):
        r = res["fit"][layout]
        assert r["weights"] <= TOL and r["x_ref"] <= TOL and r["loss"] <= TOL, (layout, r)
        assert r["steps"] == r["iterations"] == 3 and r["x_ref_replicas_equal"], (layout, r)
    # A non-finite gradient on one replica skips the step on both.
    assert res["nonfinite"]["weights_unchanged"] and res["nonfinite"]["nonfinite_steps"] == 1


# ----------------------------------------------------------------------------- subprocess


def _worker() -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    sys.path.insert(0, ROOT)
    from d2net_tf.config import preset
    from d2net_tf.data.pipeline import pad_videos, training_dataset
    from d2net_tf.distribute import distributed_training_dataset
    from d2net_tf.task import build_task

    def make_model():
        keras.utils.set_random_seed(0)
        # Each replica pads its own videos: equal to one device only when padding does not leak.
        cfg = preset("official_fixed")
        cfg.model.feature_dim, cfg.model.num_classes = D, C
        cfg.model.dropout, cfg.model.init = 0.0, "glorot"
        cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
        cfg.loss.bg_threshold = 0.3  # some snippets with lambda < 0.7: non-zero x_bg, w_fb > 0
        m = build_task(cfg.model, cfg.loss, weight_decay=1e-3)
        m.x_ref.assign(np.random.default_rng(0).normal(size=D // 2).astype("float32"))
        m.compile(optimizer=keras.optimizers.Adam(1e-2))
        m.optimizer.build(m.trainable_variables)
        return m

    def maxdiff(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = _toy_dataset()
    rng = np.random.default_rng(3)
    videos = [rng.normal(size=(t, D)).astype(np.float32) for t in (9, 6, 12, 7)]
    labels = np.eye(C, dtype=np.float32)[[0, 1, 2, 1]]
    labels[0, 3] = 1.0
    full = pad_videos(videos)
    full["labels"] = labels
    halves = []
    for r in range(2):
        h = pad_videos(videos[2 * r: 2 * r + 2])  # each replica pads its own videos
        h["labels"] = labels[2 * r: 2 * r + 2]
        halves.append(h)
    out = {"replicas": strategy.num_replicas_in_sync}

    # --- one step: loss terms and gradients
    single = make_model()
    batch = {k: tf.constant(v) for k, v in full.items()}
    step = tf.constant(0, tf.int64)
    with tf.GradientTape() as tape:
        o, mask = single.forward_batch(batch, training=True)
        terms = single.compute_losses(batch, o, single.pairing(B, step), single.denoise_at(step), mask)
    g1 = tape.gradient(terms["loss"], single.trainable_variables)
    g1 = [g + 1e-3 * v for g, v in zip(g1, single.trainable_variables)]
    out["nontrivial"] = bool(float(terms["snippet"]) != 0 and float(terms["video"]) != 0 and float(terms["w_fb"]) != 0)
    with strategy.scope():
        dist = make_model()
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v) for k, v in halves[ctx.replica_id_in_sync_group].items()})

    @tf.function
    def grads_fn(b):
        t, g = strategy.run(lambda b: dist.gradients(b)[:2], args=(b,))
        return t, [strategy.reduce("SUM", x, axis=None) for x in g]

    t2, g2 = grads_fn(values)
    term_err = 0.0
    for k in terms:
        for local in strategy.experimental_local_results(t2[k]):
            term_err = max(term_err, maxdiff([terms[k]], [local]))
    out["step"] = {"terms": term_err, "grads": maxdiff(g1, g2)}

    # --- one full train_step (optimizer update, x_ref EMA) through strategy.run
    single.train_step(batch)
    tf.function(lambda b: strategy.run(dist.train_step, args=(b,)))(values)
    out["step"]["x_ref"] = maxdiff([single.x_ref.numpy()], [dist.x_ref.numpy()])
    out["step"]["weights_1step"] = maxdiff(single.get_weights(), dist.get_weights())

    # --- model.fit for 3 steps, padded and packed
    out["fit"] = {}
    for layout, gap in (("padded", None), ("packed", 1)):
        single = make_model()
        hs = single.fit(training_dataset(ds, B, 12, 0, 0, gap), steps_per_epoch=3, epochs=1, verbose=0)
        with strategy.scope():
            dist = make_model()
        hd = dist.fit(distributed_training_dataset(strategy, ds, B, 12, 0, 0, gap), steps_per_epoch=3, epochs=1,
                      verbose=0)
        replicas = [v.numpy() for v in dist.x_ref.value.values]
        out["fit"][layout] = {
            "weights": maxdiff(single.get_weights(), dist.get_weights()),
            "x_ref": maxdiff([single.x_ref.numpy()], [dist.x_ref.numpy()]),
            "loss": abs(hs.history["loss"][-1] - hd.history["loss"][-1]),
            "steps": int(dist.train_steps.numpy()),
            "iterations": int(dist.optimizer.iterations.numpy()),
            "x_ref_replicas_equal": bool(all(np.array_equal(replicas[0], x) for x in replicas)),
        }

    # --- a NaN feature on replica 1 only: both replicas skip the step
    with strategy.scope():
        dist = make_model()
    w0 = [w.numpy().copy() for w in dist.trainable_weights]
    bad = [dict(h) for h in halves]
    bad[1]["features"] = bad[1]["features"].copy()
    bad[1]["features"][0, 0, 0] = np.nan
    bad_values = strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v) for k, v in bad[ctx.replica_id_in_sync_group].items()})
    tf.function(lambda b: strategy.run(dist.train_step, args=(b,)))(bad_values)
    out["nonfinite"] = {"weights_unchanged": maxdiff(w0, [w.numpy() for w in dist.trainable_weights]) == 0.0,
                        "nonfinite_steps": int(dist.nonfinite_steps.numpy())}
    return out


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print("RESULT " + json.dumps(_worker()), flush=True)

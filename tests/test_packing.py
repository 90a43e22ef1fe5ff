"""Packed batches (no convolution on padding) equal padded batches and videos run alone."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.config import preset
from d2net_tf.data.pipeline import pack_videos, pad_videos
from d2net_tf.task import build_task

D, C = 16, 5


def _model(kernel, dilation, ck, cd, seed=0, name="official_fixed"):
    keras.utils.set_random_seed(seed)
    cfg = preset(name)  # packing needs rezero_padding (a fix; the official code leaks padding)
    cfg.model.feature_dim, cfg.model.num_classes = D, C
    cfg.model.kernel_size, cfg.model.dilation = kernel, dilation
    cfg.model.classifier_kernel_size, cfg.model.classifier_dilation = ck, cd
    cfg.model.dropout, cfg.model.init = 0.0, "glorot"
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
    model = build_task(cfg.model, cfg.loss)
    model.x_ref.assign(np.random.default_rng(seed).random(D // 2).astype("float32"))
    return model


def _videos(seed=1, lengths=(7, 3, 12, 5)):
    rng = np.random.default_rng(seed)
    return [rng.random((t, D)).astype(np.float32) for t in lengths]


@pytest.mark.parametrize("kernel,dilation,ck,cd", [(3, 1, 1, 1), (5, 2, 5, 2), (3, 1, 3, 1)])
def test_packed_outputs_equal_each_video_alone(kernel, dilation, ck, cd):
    model = _model(kernel, dilation, ck, cd)
    videos = _videos()
    batch = {k: tf.constant(v) for k, v in pack_videos(videos, model.network.packing_gap()).items()}
    batch["labels"] = tf.zeros((len(videos), C))
    out, mask = model.forward_batch(batch)
    for b, v in enumerate(videos):
        alone = model(v[None], training=False)
        t = v.shape[0]
        np.testing.assert_allclose(out["tcam"][b, :t], alone["tcam"][0], atol=1e-5)
        np.testing.assert_allclose(out["embeddings"][b, :t], alone["embeddings"][0], atol=1e-5)
        assert mask[b, :t].numpy().all() and not mask[b, t:].numpy().any()


@pytest.mark.parametrize("kernel,dilation,ck,cd,residual,after_dropout",
                         [(3, 1, 1, 1, True, True), (5, 2, 3, 1, True, False), (3, 1, 3, 2, False, True)])
def test_stream_packed_rows_equal_same_padding_in_training(kernel, dilation, ck, cd, residual, after_dropout):
    """TemporalConvStream(packed=True) ('valid' layers on the rows, written-out gradients) equals
    its 'same'-padding path on the packed sequence: outputs and the gradients of the weights."""
    from d2net_tf.modeling.layers import TemporalConvStream

    keras.utils.set_random_seed(0)
    stream = TemporalConvStream(8, C, kernel, dilation, ck, cd, residual=residual, dropout=0.5, init="glorot",
                                embeddings_after_dropout=after_dropout, rezero_padding=True)
    stream.build((None, None, 8))
    rng = np.random.default_rng(2)
    batch = pack_videos([rng.standard_normal((t, 8)).astype("float32") for t in (7, 3, 12)], stream.reach)
    x, mask = tf.constant(batch["features"]), tf.constant(batch["mask"])
    multiplier = tf.constant((rng.random(x.shape) < 0.5).astype("float32") * 2.0)
    w_emb, w_act = (tf.constant(rng.standard_normal(shape).astype("float32")) for shape in ((1, x.shape[1], 8),
                                                                                         (1, x.shape[1], C)))
    results = []
    for packed in (True, False):
        with tf.GradientTape() as tape:
            emb, act = stream(x, snippet_mask=mask, training=True, dropout_multiplier=multiplier, packed=packed)
            loss = tf.reduce_sum(emb * w_emb) + tf.reduce_sum(act * w_act)
        results.append([emb, act] + tape.gradient(loss, stream.trainable_weights))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rezero_padding"):
        TemporalConvStream(8, C, rezero_padding=False)(x, snippet_mask=mask, training=True, packed=True)


def test_gap_narrower_than_padding_leaks():
    """The check above can fail: with no gap, neighbouring videos leak into each other."""
    model = _model(3, 1, 3, 1)
    videos = _videos()
    batch = {k: tf.constant(v) for k, v in pack_videos(videos, 0).items()}
    out, _ = model.forward_batch(batch)
    alone = model(videos[0][None], training=False)
    assert np.abs(out["tcam"][0, :7] - alone["tcam"][0]).max() > 1e-4


@pytest.mark.parametrize("variant", ["dis", "d2net", "d2net_bce"])
def test_packed_loss_terms_equal_padded(variant):
    model = _model(3, 1, 1, 1)
    model.lcfg.variant = variant
    videos = _videos(lengths=(9, 6, 11, 8))
    labels = np.eye(C, dtype=np.float32)[[0, 2, 2, 4]]
    perm = tf.constant([1, 2, 3, 0])
    padded = {k: tf.constant(v) for k, v in pad_videos(videos).items()}
    packed = {k: tf.constant(v) for k, v in pack_videos(videos, model.network.packing_gap()).items()}
    terms = []
    for batch in (padded, packed):
        batch["labels"] = tf.constant(labels)
        out, mask = model.forward_batch(batch)
        terms.append(model.compute_losses(batch, out, perm, model.denoise_at(tf.constant(0, tf.int64)), mask))
    for k in terms[0]:
        np.testing.assert_allclose(terms[0][k], terms[1][k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert float(terms[0]["dis"]) > 0


def test_packed_and_padded_training_steps_agree():
    videos = _videos(lengths=(9, 6, 11, 8))
    labels = np.eye(C, dtype=np.float32)[[0, 2, 2, 4]]
    weights = []
    for packer in (pad_videos, lambda v: pack_videos(v, 1)):
        model = _model(3, 1, 1, 1)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = {k: tf.constant(v) for k, v in packer(videos).items()}
        batch["labels"] = tf.constant(labels)
        batch["perm"] = tf.constant([1, 2, 3, 0])
        for _ in range(3):
            model.train_step(batch)
        weights.append([w.numpy() for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_unpack_videos_gradient_equals_gather_gradient():
    from d2net_tf.task import unpack_videos

    rng = np.random.default_rng(4)
    batch = pack_videos([np.zeros((n, 2), np.float32) for n in (4, 7, 1, 6)], 2)
    packed = tf.constant(rng.standard_normal(batch["features"].shape[:2] + (3,)).astype("float32"))
    # The losses give padded [b, t] rows a zero gradient: weight them by the mask.
    weights = tf.constant(rng.standard_normal(batch["video_mask"].shape + (3,)).astype("float32")
                          * batch["video_mask"][..., None])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(packed)
        ours = unpack_videos(packed, batch["unpack_index"], batch["video_mask"])
        ref = tf.gather(packed[0], batch["unpack_index"])
        loss_ours, loss_ref = tf.reduce_sum(tf.sin(ours) * weights), tf.reduce_sum(tf.sin(ref) * weights)
    np.testing.assert_array_equal(ours, ref)
    grad = tape.gradient(loss_ours, packed).numpy()
    np.testing.assert_allclose(grad, tape.gradient(loss_ref, packed), rtol=1e-6, atol=1e-7)
    gaps = batch["mask"][0] == 0
    assert gaps.any() and np.all(grad[0, gaps] == 0)


def test_official_padding_leaks_in_training_only():
    """Official preset: in a padded training batch, padding reaches the last snippets of a
    shorter video through layers 2 and 3 (rezero_padding=False); outside training, and with
    the fix, the video's outputs equal the video alone."""
    videos = _videos(lengths=(4, 9))
    batch = pad_videos(videos)
    for name, leaks in (("official", True), ("official_fixed", False)):
        model = _model(3, 1, 1, 1, name=name)
        alone = model(videos[0][None], training=True)["tcam"].numpy()[0]
        padded = model(batch["features"], snippet_mask=batch["mask"], training=True)["tcam"].numpy()[0, :4]
        assert np.allclose(padded[:2], alone[:2], atol=1e-6)  # far from the padding: unchanged
        assert (not np.allclose(padded, alone, atol=1e-6)) == leaks, name
        test = model(batch["features"], snippet_mask=batch["mask"], training=False)["tcam"].numpy()[0, :4]
        np.testing.assert_allclose(test, model(videos[0][None])["tcam"].numpy()[0], atol=1e-6)

"""Packed batches (no convolution on padding) equal padded batches and videos run alone."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.config import preset
from d2net_tf.data.pipeline import pack_videos, pad_videos
from d2net_tf.model import build_model

D, C = 16, 5


def _model(kernel, dilation, ck, cd, seed=0):
    keras.utils.set_random_seed(seed)
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = D, C
    cfg.model.kernel_size, cfg.model.dilation = kernel, dilation
    cfg.model.classifier_kernel_size, cfg.model.classifier_dilation = ck, cd
    cfg.model.dropout, cfg.model.init = 0.0, "glorot"
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
    model = build_model(cfg.model, cfg.loss)
    model.x_ref.assign(np.random.default_rng(seed).random(D // 2).astype("float32"))
    return model


def _videos(seed=1, lengths=(7, 3, 12, 5)):
    rng = np.random.default_rng(seed)
    return [rng.random((t, D)).astype(np.float32) for t in lengths]


@pytest.mark.parametrize("kernel,dilation,ck,cd", [(3, 1, 1, 1), (5, 2, 5, 2), (3, 1, 3, 1)])
def test_packed_outputs_equal_each_video_alone(kernel, dilation, ck, cd):
    model = _model(kernel, dilation, ck, cd)
    videos = _videos()
    batch = {k: tf.constant(v) for k, v in pack_videos(videos, model.packing_gap()).items()}
    batch["labels"] = tf.zeros((len(videos), C))
    out, mask = model.forward_batch(batch)
    for b, v in enumerate(videos):
        alone = model(v[None], training=False)
        t = v.shape[0]
        np.testing.assert_allclose(out["tcam"][b, :t], alone["tcam"][0], atol=1e-5)
        np.testing.assert_allclose(out["embeddings"][b, :t], alone["embeddings"][0], atol=1e-5)
        assert mask[b, :t].numpy().all() and not mask[b, t:].numpy().any()


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
    packed = {k: tf.constant(v) for k, v in pack_videos(videos, model.packing_gap()).items()}
    terms = []
    for batch in (padded, packed):
        batch["labels"] = tf.constant(labels)
        out, mask = model.forward_batch(batch)
        terms.append(model.compute_losses(batch, out, perm, tf.constant(0, tf.int64), mask))
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

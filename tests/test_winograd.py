"""Winograd F(m, k) convolution (`d2net_tf.modeling.winograd`): its matrices, the 'valid' convolution
and its gradients against independent numpy sums, and the network's packed inference and training
steps against the direct algorithm."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.config import preset
from d2net_tf.modeling import build_network
from d2net_tf.modeling.layers import valid_embedding_layer
from d2net_tf.modeling.winograd import (
    matmul_taps,
    multiplications_per_output,
    toom_cook_matrices,
    winograd_valid_conv,
)


def numpy_valid_conv(x, w, b, dilation):
    """y[t] = b + sum_j x[t + j d] @ w[j], float64."""
    k = w.shape[0]
    n = x.shape[0] - (k - 1) * dilation
    return b + sum(x[j * dilation : j * dilation + n].astype(np.float64) @ w[j].astype(np.float64) for j in range(k))


@pytest.mark.parametrize("k,m", [(3, 4), (4, 3), (5, 2)])
def test_matrices_compute_m_outputs_of_a_k_tap_filter_exactly(k, m):
    at, g, bt = toom_cook_matrices(k)
    assert at.shape == (m, 6) and g.shape == (6, k) and bt.shape == (6, 6)
    rng = np.random.default_rng(k)
    d, w = rng.normal(size=6), rng.normal(size=k)
    np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), [d[t : t + k] @ w for t in range(m)], rtol=0, atol=1e-13)
    # F(4, 3) by hand: B^T's first row holds the coefficients of (x - 1)(x + 1)(x - 1/2)(x + 2)
    # = x^4 + 3/2 x^3 - 2 x^2 - 3/2 x + 1 (point 0); A^T's column of point -2 is its powers.
    if k == 3:
        np.testing.assert_array_equal(bt[0], [1, -1.5, -2, 1.5, 1, 0])
        np.testing.assert_array_equal(at[:, 4], [1, -2, 4, -8])
        np.testing.assert_array_equal(at[:, -1], [0, 0, 0, 1])


def test_multiplications_per_output():
    assert multiplications_per_output(3) == 1.5  # F(4, 3): 6 matmul rows per 4 outputs, direct 3
    assert multiplications_per_output(5) == 3.0  # F(2, 5): direct 5


def test_matmul_taps_of_each_algorithm():
    assert matmul_taps("direct", 3) == 3 and matmul_taps("direct", 5) == 5
    assert matmul_taps("winograd", 3) == 1.5 and matmul_taps("winograd", 5) == 3.0
    assert matmul_taps("winograd", 1) == 1  # a 1-tap layer is one matmul either way
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        matmul_taps("fft", 3)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("extra", [0, 1, 5, 13])  # outputs beyond the shortest sequence: every block remainder
def test_valid_conv_equals_the_direct_sum(k, dilation, extra):
    rng = np.random.default_rng(100 * k + 10 * dilation + extra)
    time = (k - 1) * dilation + 1 + extra
    x = rng.normal(size=(time, 8)).astype(np.float32)
    w = rng.normal(size=(k, 8, 5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    y = winograd_valid_conv(tf.constant(x), tf.constant(w), tf.constant(b), dilation).numpy()
    ref = numpy_valid_conv(x, w, b, dilation)
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_bfloat16_stays_within_a_few_bfloat16_roundings():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(203, 64)).astype(np.float32)
    w = (rng.normal(size=(3, 64, 32)) * 0.1).astype(np.float32)
    b = np.zeros(32, np.float32)
    ref = numpy_valid_conv(x, w, b, 1)
    y = winograd_valid_conv(tf.cast(x, tf.bfloat16), tf.cast(w, tf.bfloat16), tf.cast(b, tf.bfloat16), 1)
    assert y.dtype == tf.bfloat16
    err = np.abs(tf.cast(y, tf.float32).numpy() - ref).max() / np.abs(ref).max()
    assert err < 8 * 2.0 ** -8  # at D2-Net's size: 1.5x the direct bfloat16 error (RMS), benchmarks/RESULTS.md


def test_embedding_layer_equals_the_direct_one():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(40, 16)).astype(np.float32))
    w = tf.constant((rng.normal(size=(3, 16, 16)) * 0.3).astype(np.float32))
    b = tf.constant(rng.normal(size=16).astype(np.float32))
    keep = tf.constant(rng.random((38, 1)) > 0.2)
    direct = valid_embedding_layer(x, w, b, keep, 1, True)
    fast = valid_embedding_layer(x, w, b, keep, 1, True, conv_algorithm="winograd")
    np.testing.assert_allclose(fast.numpy(), direct.numpy(), atol=2e-5)
    assert np.all(fast.numpy()[~keep.numpy()[:, 0]] == 0)


@pytest.mark.parametrize("kernel,dilation,classifier", [(3, 1, 1), (5, 2, 1), (3, 2, 3)])
def test_packed_inference_matches_direct(kernel, dilation, classifier):
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes, cfg.model.init = 32, 5, "glorot"
    cfg.model.kernel_size, cfg.model.dilation, cfg.model.classifier_kernel_size = kernel, dilation, classifier
    network = build_network(cfg.model, cfg.loss.topk_divisor)
    network.x_ref.assign(np.linspace(0.1, 1.0, 16).astype("float32"))
    rng = np.random.default_rng(0)
    x = rng.random((1, 77, 32), dtype=np.float32)
    mask = (np.arange(77) % 25 < 20).astype(np.float32)[None]  # three "videos" with zero gaps
    x[mask == 0] = 0
    direct = network(x, snippet_mask=mask, packed=True)
    fast = network(x, snippet_mask=mask, packed=True, conv_algorithm="winograd")
    for key in ("tcam", "attention", "embeddings"):
        np.testing.assert_allclose(fast[key].numpy(), direct[key].numpy(), atol=1e-5, err_msg=key)


def numpy_valid_conv_gradients(x, w, up, dilation):
    """Gradients of sum(y * up), y = numpy_valid_conv(x, w, b, dilation), float64:
    dx[r] = sum_j up[r - j d] @ w[j]^T, dw[j] = x[j d : j d + n]^T @ up, db = sum_t up[t]."""
    k, n = w.shape[0], up.shape[0]
    dx = np.zeros(x.shape)
    for j in range(k):
        dx[j * dilation : j * dilation + n] += up @ w[j].T.astype(np.float64)
    dw = np.stack([x[j * dilation : j * dilation + n].T.astype(np.float64) @ up for j in range(k)])
    return dx, dw, up.sum(axis=0)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("extra", [0, 1, 5, 13])
def test_valid_conv_gradients_equal_the_direct_sums(k, dilation, extra):
    rng = np.random.default_rng(1000 + 100 * k + 10 * dilation + extra)
    time = (k - 1) * dilation + 1 + extra
    x = rng.normal(size=(time, 8)).astype(np.float32)
    w = rng.normal(size=(k, 8, 5)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32)
    up = rng.normal(size=(time - (k - 1) * dilation, 5))
    xt, wt, bt = tf.constant(x), tf.constant(w), tf.constant(b)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt, bt])
        loss = tf.reduce_sum(winograd_valid_conv(xt, wt, bt, dilation) * tf.constant(up, tf.float32))
    got = tape.gradient(loss, [xt, wt, bt])
    for name, g, ref in zip(("rows", "kernel", "bias"), got, numpy_valid_conv_gradients(x, w, up, dilation)):
        assert g.shape == ref.shape and g.dtype == tf.float32, name
        np.testing.assert_allclose(g.numpy(), ref, rtol=0, atol=2e-5 * np.abs(ref).max(), err_msg=name)


@pytest.mark.parametrize("residual", [True, False])
def test_embedding_layer_gradients_equal_the_direct_ones(residual):
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(43, 16)).astype(np.float32))
    w = tf.constant((rng.normal(size=(3, 16, 16)) * 0.3).astype(np.float32))
    b = tf.constant(rng.normal(size=16).astype(np.float32))
    keep = tf.constant(rng.random((41, 1)) > 0.2)
    up = tf.constant(rng.normal(size=(41, 16)).astype(np.float32))
    grads = {}
    for algorithm in ("direct", "winograd"):
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            loss = tf.reduce_sum(valid_embedding_layer(x, w, b, keep, 1, residual, conv_algorithm=algorithm) * up)
        grads[algorithm] = tape.gradient(loss, [x, w, b])
    for name, fast, direct in zip(("rows", "kernel", "bias"), grads["winograd"], grads["direct"]):
        np.testing.assert_allclose(fast.numpy(), direct.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    # dropped rows pass nothing back: an all-dropped layer has zero kernel and bias gradients
    with tf.GradientTape() as tape:
        tape.watch([w, b])
        loss = tf.reduce_sum(valid_embedding_layer(x, w, b, tf.zeros_like(keep), 1, residual,
                                                   conv_algorithm="winograd") * up)
    assert all(not np.any(g.numpy()) for g in tape.gradient(loss, [w, b]))


def bfloat16_representable(values) -> bool:
    """Whether every float32 value is a bfloat16 value (the low 16 bits of its pattern are zero)."""
    return not np.any(np.asarray(values, np.float32).view(np.uint32) & 0xFFFF)


def test_mixed_precision_winograd_reads_the_float32_kernel():
    """Under mixed_bfloat16 Winograd transforms the float32 kernel variable and returns its
    gradient in float32; the direct tap sum multiplies by the bfloat16 kernel, so its kernel
    gradient is a bfloat16 value cast back."""
    from d2net_tf.modeling import TemporalConv
    from d2net_tf.precision import dtype_policy

    rng = np.random.default_rng(9)
    with dtype_policy("mixed_bfloat16"):
        conv = TemporalConv(8, 3, kernel_initializer="glorot_uniform")
        conv.build((None, 16))
    x = tf.constant(rng.normal(size=(30, 16)), tf.bfloat16)
    up = tf.constant(rng.normal(size=(28, 8)), tf.float32)
    kernel, _ = conv.compute_weights("winograd")
    assert kernel.dtype == tf.float32 and conv.compute_weights("direct")[0].dtype == tf.bfloat16
    grads = {}
    for algorithm in ("direct", "winograd"):
        with tf.GradientTape() as tape:
            y = conv(x, padding="valid", conv_algorithm=algorithm)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * up)
        assert y.dtype == tf.bfloat16
        grads[algorithm] = tape.gradient(loss, conv.kernel)
        assert grads[algorithm].dtype == tf.float32
    assert bfloat16_representable(grads["direct"])
    assert not bfloat16_representable(grads["winograd"])
    np.testing.assert_allclose(grads["winograd"].numpy(), grads["direct"].numpy(), rtol=0.05,
                               atol=0.02 * np.abs(grads["direct"].numpy()).max())


def test_training_steps_with_winograd_end_at_the_direct_weights():
    """Three packed training steps of the task (all loss terms, denoising on) from the same start:
    Winograd's weights equal the direct algorithm's to float32 round-off."""
    import keras

    from d2net_tf.data.pipeline import pack_videos
    from d2net_tf.task import build_task

    rng = np.random.default_rng(11)
    videos = [rng.random((t, 16)).astype(np.float32) for t in (9, 6, 14, 8)]
    labels = np.eye(4, dtype=np.float32)[[0, 2, 2, 3]]
    weights, losses = {}, {}
    for algorithm in ("direct", "winograd"):
        keras.utils.set_random_seed(0)
        cfg = preset("official_fixed")
        cfg.model.feature_dim, cfg.model.num_classes, cfg.model.dropout, cfg.model.init = 16, 4, 0.0, "glorot"
        cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
        task = build_task(cfg.model, cfg.loss, conv_algorithm=algorithm)
        task.x_ref.assign(np.linspace(0.2, 0.9, 8).astype("float32"))
        task.compile(optimizer=keras.optimizers.Adam(1e-3))
        batch = {k: tf.constant(v) for k, v in pack_videos(videos, task.network.packing_gap()).items()}
        batch["labels"], batch["perm"] = tf.constant(labels), tf.constant([1, 2, 3, 0])
        losses[algorithm] = [float(task.train_step(batch)["loss"]) for _ in range(3)]
        weights[algorithm] = [v.numpy() for v in task.network.weights]
    np.testing.assert_allclose(losses["winograd"], losses["direct"], rtol=1e-5)
    moved = [np.abs(a - b).max() for a, b in zip(weights["direct"], weights["winograd"])]
    assert max(moved) < 1e-5, moved
    assert task.get_config()["conv_algorithm"] == "winograd"


def test_winograd_is_for_packed_sequences_only():
    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = 16, 3
    network = build_network(cfg.model, cfg.loss.topk_divisor)
    x, mask = np.ones((1, 9, 16), np.float32), np.ones((1, 9), np.float32)
    with pytest.raises(ValueError, match="packed sequences only"):
        network(x, snippet_mask=mask, conv_algorithm="winograd")
    with pytest.raises(ValueError, match="packed sequences only"):
        network(x, snippet_mask=mask, training=True, conv_algorithm="winograd")
    with pytest.raises(ValueError, match="conv_algorithm must be one of"):
        network(x, snippet_mask=mask, packed=True, conv_algorithm="fft")
    with pytest.raises(ValueError, match="3 to 5 taps"):
        valid_embedding_layer(tf.ones((20, 4)), tf.ones((7, 4, 4)), tf.zeros(4), tf.ones((14, 1), bool),
                              conv_algorithm="winograd")


def test_run_config_refuses_winograd_on_padded_batches():
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.training import RunConfig

    with pytest.raises(D2NetInputError, match="packed batches only.*--packed"):
        RunConfig(model_dir="", packed=False, conv_algorithm="winograd")
    with pytest.raises(D2NetInputError, match="conv_algorithm must be one of"):
        RunConfig(model_dir="", packed=True, conv_algorithm="fft")
    assert RunConfig(model_dir="", packed=True, conv_algorithm="winograd").conv_algorithm == "winograd"


def test_compiled_forward_rejects_winograd_where_it_does_not_apply():
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.inference import compiled_forward

    cfg = preset("official")
    cfg.model.feature_dim, cfg.model.num_classes = 16, 3
    with pytest.raises(D2NetInputError, match="packed sequences"):
        compiled_forward(build_network(cfg.model, cfg.loss.topk_divisor), packed=False, conv_algorithm="winograd")
    cfg.model.kernel_size = 7
    with pytest.raises(D2NetInputError, match=r"taps \[7\]"):
        compiled_forward(build_network(cfg.model, cfg.loss.topk_divisor), packed=True, conv_algorithm="winograd")

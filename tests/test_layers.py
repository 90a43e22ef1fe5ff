"""TemporalConv (one matmul per tap) equals keras.layers.Conv1D(padding='same' and 'valid'); Dropout16."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.modeling.layers import TemporalConv


@pytest.mark.parametrize("kernel,dilation,time", [(3, 1, 10), (5, 2, 7), (5, 2, 1), (3, 1, 1), (1, 1, 4), (3, 3, 5)])
def test_temporal_conv_equals_keras_conv1d_same(kernel, dilation, time):
    rng = np.random.default_rng(kernel * 10 + dilation + time)
    x = rng.standard_normal((2, time, 6)).astype("float32")
    ours = TemporalConv(4, kernel, dilation)
    ref = keras.layers.Conv1D(4, kernel, dilation_rate=dilation, padding="same")
    ours.build(x.shape)
    ref.build(x.shape)
    ref.kernel.assign(rng.standard_normal(ref.kernel.shape).astype("float32"))
    ref.bias.assign(rng.standard_normal(4).astype("float32"))
    ours.kernel.assign(ref.kernel)
    ours.bias.assign(ref.bias)
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)
    # Gradients too (the training step runs through them).
    xv = tf.constant(x)
    grads = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            tape.watch(xv)
            loss = tf.reduce_sum(tf.sin(layer(xv)))
        grads.append(tape.gradient(loss, [xv, layer.kernel]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("kernel,dilation,time", [(3, 1, 10), (5, 2, 12), (1, 1, 4), (3, 3, 9)])
def test_valid_temporal_conv_equals_keras_conv1d_valid(kernel, dilation, time):
    """TemporalConv(padding="valid") on rows [time, in] and its written-out gradient."""
    rng = np.random.default_rng(kernel * 10 + dilation + time)
    x = tf.constant(rng.standard_normal((time, 6)).astype("float32"))
    ours = TemporalConv(4, kernel, dilation)
    ref = keras.layers.Conv1D(4, kernel, dilation_rate=dilation, padding="valid")
    ours.build((None, None, 6))
    ref.build((None, None, 6))
    ref.kernel.assign(rng.standard_normal(ref.kernel.shape).astype("float32"))
    ref.bias.assign(rng.standard_normal(4).astype("float32"))
    ours.kernel.assign(ref.kernel)
    ours.bias.assign(ref.bias)
    grads = []
    for layer, run in ((ours, lambda: ours(x, padding="valid")), (ref, lambda: ref(x[None])[0])):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = run()
            loss = tf.reduce_sum(tf.sin(y))
        grads.append([y] + tape.gradient(loss, [x, layer.kernel, layer.bias]))
    assert grads[0][0].shape == (time - (kernel - 1) * dilation, 4)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="padding must be"):
        ours(x, padding="causal")


@pytest.mark.parametrize("kernel,dilation,residual", [(3, 1, True), (5, 2, True), (3, 1, False)])
def test_valid_embedding_layer_equals_autodiff(kernel, dilation, residual):
    """valid_embedding_layer's written-out gradient = autodiff of the same layer built from ops."""
    from d2net_tf.modeling.layers import valid_embedding_layer

    rng = np.random.default_rng(kernel + dilation)
    time, c = 14, 5
    n = time - (kernel - 1) * dilation
    reach = (kernel - 1) // 2 * dilation
    x = tf.constant(rng.standard_normal((time, c)).astype("float32"))
    w = tf.constant(rng.standard_normal((kernel, c, c)).astype("float32"))
    b = tf.constant(rng.standard_normal(c).astype("float32"))
    keep = tf.constant(rng.random((n, 1)) > 0.3)
    upstream = tf.constant(rng.standard_normal((n, c)).astype("float32"))

    def reference(x, w, b):
        pre = b + sum(tf.matmul(x[j * dilation : j * dilation + n], w[j]) for j in range(kernel))
        out = tf.nn.leaky_relu(pre, alpha=0.2) + (x[reach : reach + n] if residual else 0.0)
        return tf.where(keep, out, 0.0)

    results = []
    for fn in (lambda x, w, b: valid_embedding_layer(x, w, b, keep, dilation, residual), reference):
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            y = fn(x, w, b)
            loss = tf.reduce_sum(y * upstream)
        results.append([y] + tape.gradient(loss, [x, w, b]))
    for a, ref in zip(*results):
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)
    assert not np.any(results[0][0].numpy()[~keep.numpy()[:, 0]])  # dropped rows are zero


def test_temporal_conv_config_round_trip_and_even_kernel_refused():
    layer = TemporalConv(7, 5, dilation_rate=2, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
    clone = TemporalConv.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        TemporalConv(3, 4)


# --------------------------------------------------------------------------------------------
# Dropout16
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dropout16_keep_fraction_and_scale(dtype):
    from d2net_tf.modeling.layers import Dropout16

    layer = Dropout16(0.7, seed=3, dtype="mixed_bfloat16" if dtype == "bfloat16" else "float32")
    x = tf.ones([1, 500, 400], dtype)
    out = layer(x, training=True)
    assert out.dtype == tf.as_dtype(dtype)
    y = tf.cast(out, tf.float64).numpy()
    keep = 1.0 - round(0.7 * 65536) / 65536  # 0.3000031
    kept = y != 0
    n = y.size
    # Binomial(n, keep): 5 standard deviations.
    assert abs(kept.mean() - keep) < 5 * np.sqrt(keep * (1 - keep) / n), kept.mean()
    # Kept values scaled by 1 / keep (bfloat16: to its 8-bit precision), so E[y] = x.
    np.testing.assert_allclose(np.unique(y[kept]), [1.0 / keep], rtol=1e-6 if dtype == "float32" else 4e-3)
    assert abs(y.mean() - 1.0) < 5 * np.sqrt((1 - keep) / keep / n)


def test_dropout16_rng_state_inference_and_config():
    from d2net_tf.modeling.layers import Dropout16

    x = tf.random.stateless_normal([2, 30, 8], seed=[1, 2])
    a, b = Dropout16(0.5, seed=11), Dropout16(0.5, seed=11)
    first = a(x, training=True)
    np.testing.assert_array_equal(first, b(x, training=True))  # same seed -> same mask
    assert not np.array_equal(first, a(x, training=True))  # the state advances
    np.testing.assert_array_equal(a(x, training=False), x)  # identity at inference
    np.testing.assert_array_equal(Dropout16(0.0)(x, training=True), x)
    assert not hasattr(Dropout16(0.0), "seed_generator")  # no RNG draw at rate 0 (like Keras)
    odd = tf.ones([3, 5, 7])  # an odd number of elements (35 16-bit draws from 18 uint32)
    assert Dropout16(0.3, seed=1)(odd, training=True).shape == odd.shape
    clone = Dropout16.from_config(a.get_config())
    assert clone.rate == 0.5 and clone.seed == 11
    for bad in (1.0, 0.999995, -0.1):  # 0.999995 would round to a threshold of 2^16
        with pytest.raises(ValueError, match="rate must be in"):
            Dropout16(bad)

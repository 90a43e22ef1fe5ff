"""TemporalConv (one matmul per tap) equals keras.layers.Conv1D(padding='same')."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.layers import TemporalConv


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


def test_temporal_conv_config_round_trip_and_even_kernel_refused():
    layer = TemporalConv(7, 5, dilation_rate=2, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
    clone = TemporalConv.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        TemporalConv(3, 4)

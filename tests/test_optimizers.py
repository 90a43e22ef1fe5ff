"""FusedAdam / FusedAdamW (tf.raw_ops.ResourceApplyAdam) against keras.optimizers.Adam / AdamW."""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.optimizers import FusedAdam, FusedAdamW

SHAPES = [(3, 8, 6), (6,), (1, 6, 4)]


def _run(optimizer, steps=5, seed=0):
    rng = np.random.default_rng(seed)
    variables = [keras.Variable(rng.standard_normal(s).astype("float32")) for s in SHAPES]
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    for _ in range(steps):
        apply([tf.constant(rng.standard_normal(s).astype("float32")) for s in SHAPES])
    return variables, optimizer


@pytest.mark.parametrize("fused,reference,kwargs", [
    (FusedAdam, keras.optimizers.Adam, dict(learning_rate=1e-2)),
    (FusedAdam, keras.optimizers.Adam, dict(learning_rate=3e-3, beta_1=0.5, beta_2=0.9, epsilon=1e-3)),
    (FusedAdamW, keras.optimizers.AdamW, dict(learning_rate=1e-2, weight_decay=0.05)),
])
def test_fused_adam_equals_keras(fused, reference, kwargs):
    ours, opt_a = _run(fused(**kwargs))
    ref, opt_b = _run(reference(**kwargs))
    # Same formula; the fused kernel rounds differently by a few float32 ulps (values ~1).
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
    # Same slot variables (checkpoint-compatible), same values.
    for a, b in zip(opt_a.variables, opt_b.variables):
        assert re.split("[/_]", a.path)[-1] == re.split("[/_]", b.path)[-1]  # iteration, learning_rate, momentum, velocity
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)


def test_fused_adam_restores_a_keras_adam_checkpoint(tmp_path):
    _, keras_opt = _run(keras.optimizers.Adam(1e-2), steps=3)
    path = tf.train.Checkpoint(optimizer=keras_opt).save(str(tmp_path / "ckpt"))
    fresh, fused = _run(FusedAdam(1e-2), steps=0, seed=1)
    tf.train.Checkpoint(optimizer=fused).restore(path).assert_existing_objects_matched()
    assert int(fused.iterations.numpy()) == 3
    for a, b in zip(fused.variables, keras_opt.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fused_adam_falls_back_for_amsgrad():
    ours, _ = _run(FusedAdam(1e-2, amsgrad=True))
    ref, _ = _run(keras.optimizers.Adam(1e-2, amsgrad=True))
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_pytorch_epsilon_mode_is_torch_adam_formula():
    """epsilon_mode="pytorch": w -= lr m_hat / (sqrt(v_hat) + eps), computed here in float64."""
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-3  # a large eps makes the two placements differ visibly
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) * 1e-2 for _ in range(4)]
    var = keras.Variable(w0.astype("float32"))
    opt = FusedAdam(lr, beta_1=b1, beta_2=b2, epsilon=eps, epsilon_mode="pytorch")
    opt.build([var])
    w, m, v = w0.copy(), np.zeros(6), np.zeros(6)
    for t, g in enumerate(grads, start=1):
        opt.apply([tf.constant(g.astype("float32"))], [var])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(var.numpy(), w, rtol=1e-5, atol=1e-6)
    keras_mode, _ = _run(FusedAdam(1e-2, epsilon=1e-3))
    torch_mode, _ = _run(FusedAdam(1e-2, epsilon=1e-3, epsilon_mode="pytorch"))
    assert not np.allclose(keras_mode[0].numpy(), torch_mode[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="epsilon_mode"):
        FusedAdam(1e-2, epsilon_mode="torch")

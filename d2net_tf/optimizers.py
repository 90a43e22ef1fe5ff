"""Adam and AdamW whose per-variable update is TensorFlow's fused `ResourceApplyAdam` kernel.

Keras 3's Adam updates each variable with ~10 separate element-wise ops (several passes over
memory per variable); the fused kernel makes one pass. Same formula, same slot variables
(`momentums`, `velocities`, `iterations`), so checkpoints are interchangeable with
`keras.optimizers.Adam` / `AdamW`:

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1);  v += (g^2 - v) * (1 - beta_2)
    w -= alpha * m / (sqrt(v) + epsilon)

AdamW's decoupled decay (w -= lr * wd * w) is applied by Keras before this update, as in
`keras.optimizers.AdamW`. amsgrad and sparse (IndexedSlices) gradients fall back to Keras.

`epsilon_mode="pytorch"` gives `torch.optim.Adam`'s formula instead,
w -= lr * m_hat / (sqrt(v_hat) + epsilon), by passing the fused kernel
epsilon * sqrt(1 - beta_2^t) (the two differ by the bias correction of epsilon).
"""

from __future__ import annotations

import keras
import tensorflow as tf


EPSILON_MODES = ("keras", "pytorch")


class _FusedAdamUpdate:
    """Mixin: `update_step` through `tf.raw_ops.ResourceApplyAdam` (one pass per variable)."""

    def __init__(self, *args, epsilon_mode: str = "keras", **kwargs):
        if epsilon_mode not in EPSILON_MODES:
            raise ValueError(f"epsilon_mode must be one of {EPSILON_MODES}, got {epsilon_mode!r}")
        super().__init__(*args, **kwargs)
        self.epsilon_mode = epsilon_mode

    def get_config(self):
        config = super().get_config()
        config["epsilon_mode"] = self.epsilon_mode
        return config

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            if self.epsilon_mode != "keras":
                raise ValueError("epsilon_mode='pytorch' needs the fused update (no amsgrad, dense gradients)")
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        beta2_power = tf.pow(beta_2, local_step)
        epsilon = tf.cast(self.epsilon, dtype)
        if self.epsilon_mode == "pytorch":
            epsilon = epsilon * tf.sqrt(1.0 - beta2_power)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=beta2_power,
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=epsilon,
            grad=tf.cast(gradient, dtype),
            use_locking=False,
            use_nesterov=False,
        )


@keras.saving.register_keras_serializable(package="d2net_tf")
class FusedAdam(_FusedAdamUpdate, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with a fused update (see module docstring)."""


@keras.saving.register_keras_serializable(package="d2net_tf")
class FusedAdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with a fused update (see module docstring)."""

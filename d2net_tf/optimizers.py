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
"""

from __future__ import annotations

import keras
import tensorflow as tf


class _FusedAdamUpdate:
    """Mixin: `update_step` through `tf.raw_ops.ResourceApplyAdam` (one pass per variable)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
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

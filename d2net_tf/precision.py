"""Compute precision: the Keras dtype policy that a network's layers are built under."""

from __future__ import annotations

import contextlib

from d2net_tf.errors import D2NetInputError

# "mixed_bfloat16": bfloat16 compute, float32 variables (Keras' mixed-precision policy).
PRECISIONS = ("float32", "mixed_bfloat16")


def check_precision(precision: str, name: str = "precision") -> None:
    if precision not in PRECISIONS:
        raise D2NetInputError(f"{name} must be one of {', '.join(PRECISIONS)}, got {precision!r}")


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Layers created inside the block compute in `precision` (one of PRECISIONS); on exit, also
    after an error, the global policy is the one before the block."""
    import keras  # here: the commands' flag modules import PRECISIONS and must not import Keras

    check_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)

"""--precision and --conv_algorithm: how a command's networks compute (d2net_tf.precision,
d2net_tf.modeling.winograd), each flag defined once for every command that has it."""

from __future__ import annotations

from absl import flags

from d2net_tf.config import CONV_ALGORITHMS  # not from modeling: the flags must not import TensorFlow
from d2net_tf.precision import PRECISIONS


def define_precision_flag(help_text: str) -> None:
    """--precision (default float32); `help_text` says which networks it sets in this command."""
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), help_text)


def define_conv_algorithm_flag(use: str) -> None:
    """--conv_algorithm (default direct); `use` says what it computes in this command."""
    flags.DEFINE_enum("conv_algorithm", "direct", list(CONV_ALGORITHMS),
                      f"How the TC layers convolve {use}: 'direct' (one matmul per tap) or 'winograd' (Winograd "
                      "F(4,3) / F(2,5): 2x / 1.67x fewer multiplications, about 2x the round-off; "
                      "d2net_tf/modeling/winograd.py, README 'Kernels, not formulas').")


def print_precision_notice() -> None:
    """Prints `cpu_runtime.bfloat16_notice` for the command's --precision (when there is one)."""
    import tensorflow as tf

    from d2net_tf.cpu_runtime import bfloat16_notice

    notice = bfloat16_notice(flags.FLAGS.precision, len(tf.config.list_physical_devices("GPU")))
    if notice:
        print(notice)

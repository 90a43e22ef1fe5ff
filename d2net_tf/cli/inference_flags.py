"""Flags of the commands that run a trained network over videos (d2net-evaluate, d2net-localize)."""

from __future__ import annotations

from absl import flags

from d2net_tf.config import CONV_ALGORITHMS  # not from modeling: the flags must not import TensorFlow
from d2net_tf.cli.precision_flag import define_precision_flag

PRECISION_HELP = ("Compute precision of the D2-Net network: float32, or mixed_bfloat16 (bfloat16 matmuls, float32 "
                  "weights; README 'Kernels, not formulas' gives its mAP change).")


def define_inference_flags(precision_help: str = PRECISION_HELP) -> None:
    """--conv_algorithm and --precision (`precision_help`: its help, for a command where it means more)."""
    define_precision_flag(precision_help)
    flags.DEFINE_enum("conv_algorithm", "direct", list(CONV_ALGORITHMS),
                      "How the TC layers convolve: 'direct' (one matmul per tap, as training does) or 'winograd' "
                      "(Winograd F(4,3) / F(2,5): 2x / 1.67x fewer multiplications, about 2x the round-off; "
                      "d2net_tf/modeling/winograd.py, README 'Kernels, not formulas').")

"""Flags of the commands that run a trained network over videos (d2net-evaluate, d2net-localize)."""

from __future__ import annotations

from absl import flags

from d2net_tf.config import CONV_ALGORITHMS  # not from modeling: the flags must not import TensorFlow


def define_inference_flags() -> None:
    flags.DEFINE_enum("conv_algorithm", "direct", list(CONV_ALGORITHMS),
                      "How the TC layers convolve: 'direct' (one matmul per tap, as training does) or 'winograd' "
                      "(Winograd F(4,3) / F(2,5): 2x / 1.67x fewer multiplications, about 2x the round-off; "
                      "d2net_tf/modeling/winograd.py, README 'Kernels, not formulas').")

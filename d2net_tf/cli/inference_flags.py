"""Flags of the commands that run a trained network over videos (d2net-evaluate, d2net-localize)."""

from __future__ import annotations

from d2net_tf.cli.compute_flags import define_conv_algorithm_flag, define_cpu_allocator_flag, define_precision_flag

PRECISION_HELP = ("Compute precision of the D2-Net network: float32, or mixed_bfloat16 (bfloat16 matmuls, float32 "
                  "weights; README 'Kernels, not formulas' gives its mAP change).")


def define_inference_flags(precision_help: str = PRECISION_HELP) -> None:
    """--conv_algorithm, --precision (`precision_help`: its help, for a command where it means more) and
    --cpu_allocator."""
    define_precision_flag(precision_help)
    define_cpu_allocator_flag()
    define_conv_algorithm_flag("over the videos")

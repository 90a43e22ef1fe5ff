"""--precision, --conv_algorithm and --cpu_allocator: how a command's networks compute (d2net_tf.precision,
d2net_tf.modeling.winograd, d2net_tf.cpu_runtime), each flag defined once for every command that has it;
`start_runtime`, what such a command does before TensorFlow's first op."""

from __future__ import annotations

from absl import flags

from d2net_tf.config import CONV_ALGORITHMS  # not from modeling: the flags must not import TensorFlow
from d2net_tf.cpu_runtime import ALLOCATORS
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


def define_cpu_allocator_flag() -> None:
    """--cpu_allocator (default bfc)."""
    flags.DEFINE_enum("cpu_allocator", "bfc", list(ALLOCATORS), "TensorFlow's CPU allocator: bfc = its "
                      "best-fit-with-coalescing pool (TF_CPU_ALLOCATOR_USE_BFC=true: no per-step mmap and page "
                      "faults of activation buffers), tensorflow = its default malloc-based allocator. An explicit "
                      "TF_CPU_ALLOCATOR_USE_BFC wins (d2net_tf.cpu_runtime; BUILD.md 'Thread pools, CPU allocator "
                      "and kernel time').")


def start_runtime(thread_pools: str = "tensorflow") -> dict:
    """Before TensorFlow's first op: `configure_cpu_runtime(thread_pools, allocator=--cpu_allocator)`, then
    the note of `cpu_runtime.bfloat16_notice` for --precision (printed when there is one). Returns what
    was applied."""
    import tensorflow as tf

    from d2net_tf.cpu_runtime import bfloat16_notice, configure_cpu_runtime

    applied = configure_cpu_runtime(thread_pools, allocator=flags.FLAGS.cpu_allocator)
    notice = bfloat16_notice(flags.FLAGS.precision, len(tf.config.list_physical_devices("GPU")))
    if notice:
        print(notice)
    return applied

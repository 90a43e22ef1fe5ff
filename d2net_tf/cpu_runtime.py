"""CPU runtime settings of a job: TensorFlow's CPU allocator and thread pools.

`configure_cpu_runtime()` is what `d2net-fit` applies first thing (its `--cpu_allocator`, default
`bfc`, and `--cpu_thread_pools`, default `per_stream`; BUILD.md, "Thread pools, CPU allocator and
kernel time"; `d2net-evaluate`, `d2net-localize` and `d2net-extract-features` apply the allocator
with TensorFlow's thread pools). Call it before TensorFlow's first op in any other process that
trains. It does up to two things:

1. The CPU allocator, `allocator="bfc"` (the default): TensorFlow's best-fit-with-coalescing
   pool (`TF_CPU_ALLOCATOR_USE_BFC=true`, read once, when TensorFlow makes its CPU allocator
   at its first op), instead of its default allocator, which takes every tensor from malloc and
   gives it back. A training step allocates and frees many activation-sized buffers (15 MB each
   at D=512, B=20, T=750); glibc serves them from fresh mmap-ed pages in TensorFlow's worker
   threads, and the kernel zero-fills each page on its first touch: 40% of the training
   process's CPU time was kernel time on a 2-core AMD EPYC (AVX2) with a Linux 6.18 guest,
   242k page faults and 1.8x the time per step (benchmarks/RESULTS.md, "Kernel time and the
   CPU allocator"). The pool keeps the buffers, so the pages are faulted once. It grows as
   needed (TensorFlow's default limit 64 GB, `TF_CPU_BFC_MEM_LIMIT_IN_MB`) and does not give
   memory back to the system before the process ends. A `TF_CPU_ALLOCATOR_USE_BFC` already in
   the environment is the user's choice and is left as it is. `allocator="tensorflow"` leaves
   TensorFlow's default.
2. Thread pools, `thread_pools="per_stream"` (the default): 2 inter-op threads and
   max(1, cores // 2) intra-op threads. D2-Net's RGB and flow streams are two independent
   chains of ops, so the step has two ops ready at a time for most of its length; this runs
   them side by side, each on its half of the cores, where TensorFlow's default (inter = intra
   = cores) has both ops share every core. On this project's 2-core machines it is 2 x 1, and
   the training step is 3-10% faster than with TensorFlow's defaults (`benchmarks.train_grid
   --kernel`, `benchmarks/RESULTS.md`); one inter-op thread (the earlier candidate against
   kernel time) is 20% slower. Measured on 2 cores only: on more cores the split is the same
   rule, unmeasured. `thread_pools="tensorflow"` leaves TensorFlow's defaults. Only possible
   before TensorFlow initialises its runtime (its first op); later it is skipped and reported.
glibc's own knobs (`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`, or `mallopt` at run time) did not
stop the per-step mmap calls of 1. (benchmarks/RESULTS.md); an option that set them was removed.

Returns what was applied, so the job can log it.

It also tells what the CPU's matrix units make of `--precision=mixed_bfloat16` (`cpu_description`,
`bfloat16_notice`): on a CPU without bfloat16 matrix instructions oneDNN converts bfloat16 to
float32 around float32 kernels, so bfloat16 computes no faster than float32 and only rounds more.
"""

from __future__ import annotations

import os

THREAD_POOLS = ("per_stream", "tensorflow")
ALLOCATORS = ("bfc", "tensorflow")
BFC_ENV = "TF_CPU_ALLOCATOR_USE_BFC"  # read by TensorFlow when it makes its CPU allocator
# CPU flags (Linux /proc/cpuinfo names) that decide the bfloat16 matmul peak: with AMX tiles it is
# several times the float32 peak; with AVX-512 BF16 alone, well under 2x; with neither, below the
# float32 peak (benchmarks/RESULTS.md).
MATRIX_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f")
BFLOAT16_MATMUL_FLAGS = ("amx_bf16", "avx512_bf16")  # bfloat16 products in hardware
STREAMS = 2  # D2Net's RGB and flow streams: the step's independent chains of ops


def per_stream_thread_pools(cores: int | None = None) -> tuple[int, int]:
    """(inter-op, intra-op) threads of `thread_pools="per_stream"`: one op per stream at a time,
    each on its share of the cores."""
    cores = cores or os.cpu_count() or 1
    return STREAMS, max(1, cores // STREAMS)


def use_bfc_allocator() -> str:
    """Asks TensorFlow for its BFC CPU allocator (module docstring, 1.) unless the environment
    already says which; returns what holds: "bfc", or the environment's "TF_CPU_ALLOCATOR_USE_BFC=..."."""
    if BFC_ENV in os.environ:
        return f"{BFC_ENV}={os.environ[BFC_ENV]} (from the environment)"
    os.environ[BFC_ENV] = "true"
    return "bfc"


def bfc_allocator_active() -> bool:
    """Whether TensorFlow's CPU allocator is the BFC pool (it alone keeps statistics). Starts
    TensorFlow's runtime: call it after `configure_cpu_runtime`."""
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:  # "Allocator stats not available": TensorFlow's default allocator
        return False
    return True


def configure_cpu_runtime(thread_pools: str = "per_stream", allocator: str = "bfc") -> dict:
    """Applies a training job's CPU settings (see the module docstring); returns what was applied:
    {"cpu_allocator": `use_bfc_allocator`'s answer, "inter_op_threads", "intra_op_threads": n or
    the reason it was not}. The allocator and the thread pools take effect only before TensorFlow's
    first op."""
    if thread_pools not in THREAD_POOLS:
        raise ValueError(f"thread_pools must be one of {THREAD_POOLS}, got {thread_pools!r}")
    if allocator not in ALLOCATORS:
        raise ValueError(f"allocator must be one of {ALLOCATORS}, got {allocator!r}")
    import tensorflow as tf
    from tensorflow.python.eager import context  # whether the runtime has started: no public call says

    applied: dict = {}
    started = context.context()._context_handle is not None
    if allocator == "bfc":
        applied["cpu_allocator"] = "unchanged (TensorFlow already initialised)" if started else use_bfc_allocator()
    if thread_pools == "per_stream":
        inter, intra = per_stream_thread_pools()
        try:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
            tf.config.threading.set_intra_op_parallelism_threads(intra)
            applied.update(inter_op_threads=inter, intra_op_threads=intra)
        except RuntimeError:  # the TensorFlow runtime is already initialised
            applied["thread_pools"] = "unchanged (TensorFlow already initialised)"
    return applied


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(CPU model name, the `MATRIX_FLAGS` it has) from `cpuinfo`; ("", []) where it is unreadable."""
    try:
        with open(cpuinfo) as f:
            text = f.read()
    except OSError:
        return "", []
    first_cpu = text.split("\n\n", 1)[0]
    pairs = (line.split(":", 1) for line in first_cpu.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", ""), [f for f in MATRIX_FLAGS if f in flags]


def bfloat16_notice(precision: str, gpus: int, cpuinfo: str = "/proc/cpuinfo") -> str:
    """One line for a command's log when `precision` is mixed_bfloat16, no GPU is visible (`gpus`)
    and the CPU (`cpuinfo`, readable) has none of `BFLOAT16_MATMUL_FLAGS`; "" otherwise."""
    if precision != "mixed_bfloat16" or gpus:
        return ""
    model, flags = cpu_description(cpuinfo)
    if not model or any(f in flags for f in BFLOAT16_MATMUL_FLAGS):
        return ""
    return (f"note: --precision=mixed_bfloat16 on {model}, a CPU without bfloat16 matrix instructions "
            f"({' / '.join(BFLOAT16_MATMUL_FLAGS)}): bfloat16 computes no faster than float32 here, and rounds more "
            "(BUILD.md)")

"""CPU runtime settings against kernel time: allocator thresholds and the inter-op pool.

`configure_cpu_runtime()` is NOT applied by default: on this project's 2-core machine the kernel
share of a training process is 0.5-4.7% with TensorFlow's defaults and these settings change it by
nothing measurable (`benchmarks.train_grid --kernel`, which runs both; BUILD.md, "Kernel time").
Call it first thing in a process that does show a futex / mmap-heavy kernel profile. It does two things:

1. glibc malloc: fixes the mmap threshold and the trim threshold (`mallopt(M_MMAP_THRESHOLD)`,
   `mallopt(M_TRIM_THRESHOLD)`, at 1 GiB / 2 GiB). TensorFlow's CPU allocator is plain
   `posix_memalign`; with glibc's dynamic thresholds a step's large buffers (packed batch,
   activations, gradients: MBs each) are mmap-ed and munmap-ed at every step and every fresh
   page is zero-filled by the kernel on first touch (page faults: kernel time). With fixed
   thresholds the freed buffers stay in malloc's heap and are reused by the next step.
   Equivalent to the environment variables MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_,
   which only act when set before the process starts; mallopt acts at any time. No-op (and
   reported as such) where the C library has no mallopt (not glibc).
2. TensorFlow's inter-op pool: on a machine with <= `small_machine_cores` cores, one inter-op
   thread (ops run one at a time, each with all cores in its intra-op pool) instead of one
   per core, so that 2 x 2 threads do not compete for 2 cores (futex hand-offs). Only
   possible before TensorFlow initialises its runtime (the first op); later it is skipped
   and reported.

Returns what was applied, so the job can log it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = (1 << 31) - 1


def fix_malloc_thresholds(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """glibc: fixed mmap / trim thresholds (see the module docstring). True when applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))


def configure_cpu_runtime(inter_op_threads: int | None = None, small_machine_cores: int = 2, malloc: bool = True,
                          threads: bool = True) -> dict:
    """Applies the training job's CPU defaults; returns {"malloc": bool, "inter_op_threads": n or reason}."""
    import tensorflow as tf

    applied: dict = {}
    if malloc:
        applied["malloc_thresholds"] = fix_malloc_thresholds()
    if threads:
        cores = os.cpu_count() or 1
        want = inter_op_threads if inter_op_threads is not None else (1 if cores <= small_machine_cores else None)
        if want is not None:
            try:
                tf.config.threading.set_inter_op_parallelism_threads(want)
                applied["inter_op_threads"] = want
            except RuntimeError:  # the TensorFlow runtime is already initialised
                applied["inter_op_threads"] = "unchanged (TensorFlow already initialised)"
    return applied

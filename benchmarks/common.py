"""Shared helpers of the benchmarks: timing, FLOP counts, machine description, tables."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Callable

import numpy as np

from d2net_tf.cpu_runtime import cpu_description


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median / min / max seconds of `fn()` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": float(np.median(times)), "min_s": float(np.min(times)), "max_s": float(np.max(times))}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def conv_flops_per_snippet(feature_dim: int, num_classes: int, kernel: int = 3, classifier_kernel: int = 1) -> float:
    """Forward conv FLOPs of D2-Net per snippet: 2 streams x (2 TC layers + classifier), 2 FLOP/MAC."""
    half = feature_dim // 2
    return 2 * 2 * (2 * kernel * half * half + classifier_kernel * half * num_classes)


def train_flops_per_snippet(feature_dim: int, num_classes: int, kernel: int = 3, classifier_kernel: int = 1) -> float:
    """Forward + backward conv FLOPs per snippet (backward = 2x forward, minus the first layer's
    input gradient, which is not needed for the features)."""
    half = feature_dim // 2
    forward = conv_flops_per_snippet(feature_dim, num_classes, kernel, classifier_kernel)
    first_layer = 2 * 2 * kernel * half * half
    return 3 * forward - first_layer


def matmul_peak_gflops(dtype: str = "float32", sizes: tuple[int, ...] = (2048, 3072, 4096), repeats: int = 5) -> float:
    """The machine's practical peak in this run: best GFLOP/s of large square matmuls (fastest call).

    Each call runs as many independent matmuls as the process has inter-op threads, so that the
    peak is the machine's whatever the thread pools (`d2net_tf.cpu_runtime`: with 2 x 1 threads
    one matmul alone would use half of the cores)."""
    import tensorflow as tf

    concurrent = max(1, tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count() or 1)
    best = 0.0
    for n in sizes:
        pairs = [(tf.cast(tf.random.normal([n, n]), dtype), tf.cast(tf.random.normal([n, n]), dtype))
                 for _ in range(concurrent)]
        mm = tf.function(lambda: [tf.matmul(a, b) for a, b in pairs])
        t = time_calls(lambda: [c.numpy() for c in mm()], repeats)
        best = max(best, concurrent * 2 * n**3 / t["min_s"] / 1e9)
    return best


def machine_header() -> str:
    import tensorflow as tf

    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1 (default)")
    model, flags = cpu_description()
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {model or platform.processor() or 'cpu'} "
        f"({', '.join(flags) or 'no AVX-512 / AMX flags found'}); "
        f"Python {platform.python_version()}; TensorFlow {tf.__version__}; oneDNN: {onednn}"
    )


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)

"""The three matmul kinds of a direct TC layer's training step, at the step's shapes:
`python -m benchmarks.conv_matmuls [--channels 256,512,1024] [--rows 3600,7200]`.

A 3-tap channels -> channels 'valid' layer (`d2net_tf.modeling.layers`) on `rows` packed rows runs, per
tap, a forward matmul [rows, C] @ [C, C], a weight-gradient matmul [rows, C]^T @ [rows, C] (long
contraction, small output) and an input-gradient matmul [rows, C] @ [C, C]^T. This times each kind as
the training step runs it: with d2net-fit's CPU runtime (`configure_cpu_runtime()`: per-stream thread
pools, one op per stream at a time), two streams' matmuls side by side. Reported per kind: median ms of
`repeats` alternating calls, GFLOP/s per core, and the fraction of this run's matmul peak per core
(`benchmarks.common.matmul_peak_gflops`, large square matmuls). For comparison, numpy's BLAS (OpenBLAS,
one thread per call) on the same shapes, the two streams' calls side by side in two Python threads (numpy
releases the GIL in matmul): whether another GEMM library does better on these shapes on this CPU.

What it shows: the direct algorithm's training step cannot run at the matmul peak when one of its
three matmul kinds runs well below it, whatever the code around the matmuls does.
"""

from __future__ import annotations

import os

# numpy's BLAS on one thread: set before numpy is first imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
import time  # noqa: E402

from d2net_tf.cpu_runtime import STREAMS, configure_cpu_runtime  # noqa: E402

TAPS = 3


def matmul_kinds(tf, n: int):
    """{kind: function of (rows, upstream [n, C], kernel) -> tensor}: the three matmul kinds of one 3-tap
    layer (as `layers._tap_sum` and `layers._tap_sum_gradients` compute them)."""
    return {
        "forward taps": lambda x, u, w: tf.add_n([tf.matmul(x[j : j + n], w[j]) for j in range(TAPS)]),
        "weight gradient": lambda x, u, w: tf.stack([tf.matmul(x[j : j + n], u, transpose_a=True)
                                                     for j in range(TAPS)]),
        "input gradient": lambda x, u, w: tf.add_n([tf.matmul(x[j : j + n], w[j], transpose_b=True)
                                                    for j in range(TAPS)]),
    }


def numpy_kinds(x, u, w):
    n = u.shape[0]
    return {
        "forward taps": lambda: sum(x[j : j + n] @ w[j] for j in range(TAPS)),
        "weight gradient": lambda: [x[j : j + n].T @ u for j in range(TAPS)],
        "input gradient": lambda: sum(x[j : j + n] @ w[j].T for j in range(TAPS)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="256,512,1024", help="C = D / 2, comma-separated")
    parser.add_argument("--rows", default="3600,7200", help="packed rows per stream (B=10, B=20), comma-separated")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    applied = configure_cpu_runtime()  # as d2net-fit, before TensorFlow's first op
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import machine_header, markdown_table, matmul_peak_gflops, time_calls

    print(machine_header())
    print(f"CPU runtime: {applied}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    cores = os.cpu_count() or 1
    peak = matmul_peak_gflops("float32") / cores
    rng = np.random.default_rng(0)
    table = []
    for c in (int(v) for v in args.channels.split(",")):
        for rows in (int(v) for v in args.rows.split(",")):
            n = rows - TAPS + 1
            arrays = [(rng.random((rows, c), np.float32), rng.random((n, c), np.float32),
                       rng.random((TAPS, c, c), np.float32)) for _ in range(STREAMS)]
            tensors = [tuple(tf.constant(a) for a in s) for s in arrays]
            flops = 2.0 * TAPS * n * c * c  # each kind, each stream
            fns = {kind: tf.function(lambda f=f: [f(*s) for s in tensors])
                   for kind, f in matmul_kinds(tf, n).items()}
            times = {kind: [] for kind in fns}
            for fn in fns.values():
                [t.numpy() for t in fn()]  # trace + warm up
            for _ in range(args.repeats):
                for kind, fn in fns.items():
                    t0 = time.perf_counter()
                    [t.numpy() for t in fn()]
                    times[kind].append(time.perf_counter() - t0)
            np_times = {}
            with ThreadPoolExecutor(STREAMS) as pool:
                for kind in fns:
                    calls = [numpy_kinds(*a)[kind] for a in arrays]

                    def both(calls=calls):
                        list(pool.map(lambda f: f(), calls))

                    np_times[kind] = time_calls(both, max(3, args.repeats // 3), warmup=1)["median_s"]
            for kind in fns:
                med = float(np.median(times[kind]))
                per_core = STREAMS * flops / med / 1e9 / cores
                numpy_per_core = STREAMS * flops / np_times[kind] / 1e9 / cores
                table.append({"C": c, "rows": rows, "matmul": kind, "median_ms": 1000 * med,
                              "gflops_per_core": per_core, "peak_frac": per_core / peak,
                              "numpy_gflops_per_core": numpy_per_core, "numpy_peak_frac": numpy_per_core / peak})
            print(markdown_table(table[-len(fns):], list(table[0])), flush=True)
    print(f"\nmatmul peak of this run: {peak:.0f} GFLOP/s per core ({cores} cores); {STREAMS} streams side by side, "
          f"{args.repeats} alternating calls per kind")
    print(markdown_table(table, list(table[0])))


if __name__ == "__main__":
    main()

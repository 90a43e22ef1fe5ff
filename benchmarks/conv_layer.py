"""One TC layer's 'valid' convolution, direct against Winograd: `python -m benchmarks.conv_layer`.

A [rows, channels] sequence (default 36,000 x 1024: one stream of a packed test-split sequence at
D=2048) through a 3-tap channels -> channels convolution, in float32 and bfloat16: the median time of
`repeats` calls of each algorithm (alternating, in one process), the ratio, the fraction of the matmul
floor (direct FLOPs at this run's matmul peak), and the RMS relative error of each against a float64
numpy sum (inputs >= 0, as the layers' inputs after leaky ReLU + residual mostly are).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from benchmarks.common import machine_header, markdown_table, matmul_peak_gflops
from d2net_tf.modeling.layers import valid_temporal_conv
from d2net_tf.modeling.winograd import winograd_valid_conv


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=36000)
    parser.add_argument("--channels", type=int, default=1024)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(machine_header())
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(args.rows, args.channels))).astype(np.float32)
    w = (rng.normal(size=(args.kernel, args.channels, args.channels)) * 0.01).astype(np.float32)
    b = np.zeros(args.channels, np.float32)
    n = args.rows - args.kernel + 1
    # float64 reference on a slice (the error statistics do not need every row)
    check = min(n, 4000)
    ref = sum(x[j : j + check].astype(np.float64) @ w[j].astype(np.float64) for j in range(args.kernel))
    flops = 2.0 * n * args.kernel * args.channels * args.channels
    rows = []
    for dtype, peak_name in ((tf.float32, "float32"), (tf.bfloat16, "bfloat16")):
        peak = matmul_peak_gflops(peak_name)
        xt, wt, bt = tf.cast(x, dtype), tf.cast(w, dtype), tf.cast(b, dtype)
        fns = {"direct": tf.function(lambda r, k, c: valid_temporal_conv(r, k, c)),
               "winograd": tf.function(lambda r, k, c: winograd_valid_conv(r, k, c))}
        times = {name: [] for name in fns}
        outs = {name: fn(xt, wt, bt) for name, fn in fns.items()}  # trace + warm up
        for _ in range(args.repeats):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn(xt, wt, bt).numpy()
                times[name].append(time.perf_counter() - t0)
        direct_s = float(np.median(times["direct"]))
        for name in fns:
            med = float(np.median(times[name]))
            y = tf.cast(outs[name][:check], tf.float32).numpy()
            rows.append({"precision": peak_name, "algorithm": name, "median_ms": 1000 * med,
                         "min_ms": 1000 * min(times[name]), "max_ms": 1000 * max(times[name]),
                         "vs_direct": direct_s / med, "floor_frac": flops / med / 1e9 / peak, "peak_gflops": peak,
                         "rms_rel_error": float(np.sqrt(np.mean((y - ref) ** 2) / np.mean(ref ** 2)))})
    print(f"{args.rows} x {args.channels} rows, {args.kernel} taps, {args.repeats} alternating calls each:")
    print(markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

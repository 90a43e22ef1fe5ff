"""Inference latency per video of every deployment format, against the FLOP floor.

    python -m benchmarks.inference [--repeats 5] [--lengths 100,500,2000] [--threads 2] \
        [--feature_dim 2048] [--num_classes 20] [--skip tflite_dynamic,...]

One video (batch 1) of T snippets (D = 2048, C = 20), a randomly initialised D2Net with a
random non-zero x_ref, on `--threads` CPU threads. Backends: Keras eager, the compiled
tf.function, the loaded SavedModel (`serving_default` and `localize`, the latter with the
in-graph post-processing), TFLite (each quantization) and onnxruntime.

Reported per backend and T: median milliseconds over the repeats (after one warm-up
call) and the FLOP-floor fraction = (conv FLOPs / time) / peak (best fp32 matmul), with
conv FLOPs = 2 streams x [2 x T x k x (D/2)^2 + T x kc x (D/2) x C] x 2 FLOP/MAC and
peak = the FLOP/s of a big fp32 matmul measured in the same run. Also the ratio
localize / serving_default (goal: <= 1.3), the median of the per-repeat ratios (the backends
run interleaved, repeat by repeat, so that load from other processes hits them alike).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import conv_flops_per_snippet, matmul_peak_gflops

BACKENDS = ("keras_eager", "tf_function", "savedmodel_serving_default", "savedmodel_localize",
            "tflite_none", "tflite_dynamic", "tflite_float16", "onnxruntime")


def _set_threads(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # runtime already initialised (e.g. under pytest): keep its settings
        pass


def run(repeats: int = 5, lengths=(100, 500, 2000), feature_dim: int = 2048, num_classes: int = 20,
        threads: int = 2, skip=(), log=lambda msg: print(msg, file=sys.stderr)) -> list[dict]:
    """Benchmarks every backend; returns one dict per (backend, T)."""
    _set_threads(threads)
    import tensorflow as tf

    from d2net_tf.config import ModelConfig
    from d2net_tf.inference import compiled_forward
    from d2net_tf.localization import LocalizationConfig
    from d2net_tf.modeling import build_network
    from d2net_tf.export.saved_model import write_saved_model
    from d2net_tf.serving import ServingModule

    tf.keras.utils.set_random_seed(0)
    mcfg = ModelConfig(feature_dim=feature_dim, num_classes=num_classes, dropout=0.0)
    model = build_network(mcfg)
    rng = np.random.default_rng(0)
    model.x_ref.assign(rng.normal(size=feature_dim // 2).astype(np.float32))
    classlist = [f"class_{i}" for i in range(num_classes)]
    peak = 1e9 * matmul_peak_gflops("float32")
    log(f"peak fp32 matmul: {peak / 1e9:.1f} GFLOP/s")

    runners = {}  # backend -> fn(features [1, T, D], lengths [1]) -> outputs
    if "keras_eager" not in skip:
        runners["keras_eager"] = lambda x, n: model(
            tf.constant(x), snippet_mask=tf.sequence_mask(n, x.shape[1], tf.float32), training=False
        )["tcam"].numpy()
    if "tf_function" not in skip:
        fwd = compiled_forward(model)
        runners["tf_function"] = lambda x, n: fwd(
            tf.constant(x), tf.sequence_mask(n, x.shape[1], tf.float32))["tcam"].numpy()
    tmp = tempfile.mkdtemp(prefix="d2net-bench-")
    if "savedmodel_serving_default" not in skip or "savedmodel_localize" not in skip:
        path = write_saved_model(ServingModule(model, classlist, LocalizationConfig.official()), tmp)
        loaded = tf.saved_model.load(path)
        serve, localize = loaded.signatures["serving_default"], loaded.signatures["localize"]
        if "savedmodel_serving_default" not in skip:
            runners["savedmodel_serving_default"] = lambda x, n: serve(
                features=tf.constant(x), lengths=tf.constant(n, tf.int32))["tcam"].numpy()
        if "savedmodel_localize" not in skip:
            runners["savedmodel_localize"] = lambda x, n: localize(
                features=tf.constant(x[0]), snippets_per_second=tf.constant(25.0 / 16.0, tf.float64))["scores"].numpy()
    sizes = {}
    for q in ("none", "dynamic", "float16"):
        name = f"tflite_{q}"
        if name in skip:
            continue
        from d2net_tf.export.tflite import convert_network, make_interpreter

        t0 = time.time()
        data = convert_network(model, q)
        sizes[name] = len(data)
        log(f"{name}: {len(data) / 1e6:.1f} MB, converted in {time.time() - t0:.1f} s")
        interp = make_interpreter(model_content=data, num_threads=threads)
        runners[name] = (lambda it: lambda x, n: it.get_signature_runner("serving_default")(
            features=x, lengths=np.asarray(n, np.int32))["tcam"])(interp)
    if "onnxruntime" not in skip:
        from d2net_tf.export.onnx import convert_network as onnx_convert, make_session

        data = onnx_convert(model)
        sizes["onnxruntime"] = len(data)
        sess = make_session(data, threads)
        runners["onnxruntime"] = lambda x, n: sess.run(["tcam"], {"features": x, "lengths": np.asarray(n, np.int32)})[0]

    rows = []
    peak = max(peak, 1e9 * matmul_peak_gflops("float32"))  # again right before timing; keep the best
    for t in lengths:
        x = rng.normal(size=(1, t, feature_dim)).astype(np.float32)
        n = [t]
        flops = t * conv_flops_per_snippet(feature_dim, num_classes, mcfg.kernel_size, mcfg.classifier_kernel_size)
        ref = model(tf.constant(x), training=False)["tcam"].numpy()
        errs = {}
        for name, fn in runners.items():  # warm-up and parity
            out = fn(x, n)
            errs[name] = float(np.abs(np.asarray(out) - ref).max()) if name != "savedmodel_localize" else None
        # Interleaved repeats: a load change on the shared machine hits every backend alike.
        times = {name: [] for name in runners}
        for _ in range(repeats):
            for name, fn in runners.items():
                t0 = time.perf_counter()
                fn(x, n)
                times[name].append(time.perf_counter() - t0)
        for name in runners:
            ms = 1e3 * statistics.median(times[name])
            row = dict(backend=name, T=t, median_ms=ms, gflop=flops / 1e9, tcam_max_abs_err=errs[name],
                       flop_floor_fraction=flops / (ms / 1e3) / peak, size_bytes=sizes.get(name),
                       peak_gflops=peak / 1e9, threads=threads, repeats=repeats)
            if name == "savedmodel_localize" and "savedmodel_serving_default" in times:
                row["paired_ratio"] = statistics.median(
                    a / b for a, b in zip(times[name], times["savedmodel_serving_default"]))
            rows.append(row)
            log(f"T={t} {name}: {ms:.1f} ms")
    return rows


def localize_ratio(rows: list[dict]) -> dict[int, float]:
    """T -> median over the interleaved repeats of time(localize) / time(serving_default)."""
    return {r["T"]: r["paired_ratio"] for r in rows if "paired_ratio" in r}


def markdown_table(rows: list[dict]) -> str:
    lengths = sorted({r["T"] for r in rows})
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    by = {(r["backend"], r["T"]): r for r in rows}
    head = "| backend | " + " | ".join(f"T={t} ms (floor frac.)" for t in lengths) + " | tcam max err | size MB |"
    lines = [head, "|" + "---|" * (len(lengths) + 3)]
    for b in backends:
        cells = []
        for t in lengths:
            r = by.get((b, t))
            cells.append(f"{r['median_ms']:.1f} ({r['flop_floor_fraction']:.2f})" if r else "-")
        errs = [by[(b, t)]["tcam_max_abs_err"] for t in lengths if (b, t) in by]
        errs = [e for e in errs if e is not None]
        size = next((by[(b, t)]["size_bytes"] for t in lengths if (b, t) in by), None)
        cells.append(f"{max(errs):.1e}" if errs else "-")
        cells.append(f"{size / 1e6:.1f}" if size else "-")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    ratio = localize_ratio(rows)
    if ratio:
        lines.append("")
        lines.append("localize / serving_default: " + ", ".join(f"T={t}: {v:.2f}x" for t, v in sorted(ratio.items())))
    r0 = rows[0]
    lines.append(f"peak fp32 matmul {r0['peak_gflops']:.1f} GFLOP/s, {r0['threads']} threads, "
                 f"median of {r0['repeats']} runs; conv GFLOP per T: "
                 + ", ".join(f"{t}: {by[(backends[0], t)]['gflop']:.1f}" for t in lengths))
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--lengths", default="100,500,2000")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--feature_dim", type=int, default=2048)
    p.add_argument("--num_classes", type=int, default=20)
    p.add_argument("--skip", default="", help=f"comma-separated backends to skip, of {','.join(BACKENDS)}")
    a = p.parse_args(argv)
    rows = run(a.repeats, tuple(int(v) for v in a.lengths.split(",")), a.feature_dim, a.num_classes, a.threads,
               skip=tuple(s for s in a.skip.split(",") if s))
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

"""Training throughput over a grid of sizes against the whole official step, in the same run:
`python -m benchmarks.train_grid [--repeats N] [--dims 512,1024,2048] [--batches 10,20]`.

Baseline: the line-by-line PyTorch transcription of the official training step
(`benchmarks.official_reference.train`: padded batches, the official model with grouped
Conv1d, DISLOSS and pDMILOSS with their Python loops over videos, svddmi / pDMI, Adam with
weight_decay 5e-4, fp32), run in a worker process (`--serve_reference`), WITHOUT
`torch.autograd.set_detect_anomaly(True)` (the official code ships with it on; it only slows
the official step down, so ratios here are conservative). Its dropout is an injected
multiplier (one pre-drawn 0.7 mask per batch, as the transcription takes it; no RNG in the
step, again in the baseline's favour); its pairing permutation pi is drawn per step.

Ours: `D2Net.train_step` (preset official_fixed, packed batches: no convolution on padding),
float32 and mixed_bfloat16, traced once per batch shape, with the thread pools and CPU allocator
`d2net-fit` sets (`--cpu_thread_pools`, default per_stream; `--cpu_allocator`, default bfc:
`d2net_tf.cpu_runtime.configure_cpu_runtime`).

Both sides see the same videos: `num_batches` batches of B videos drawn from the real
THUMOS14 training-split lengths, cropped to 750 snippets (`benchmarks.train_step.make_batches`),
and both follow the official schedule of the denoising terms after their start: step `itr`
(from 0) is a denoising step (snippet pDMI + video pDMI) when itr >= 1 and itr is even
(official `itr > pdmi_iter and itr % 2 == 0` with pdmi_iter = 0; ours denoise_start_step=1,
denoise_every=2). A pass = one step on each batch (half of them denoising steps); the
timed windows alternate reference pass / ours fp32 pass / ours bf16 pass (`repeats`
rounds, after one untimed warm-up pass each). Reported per point: median real snippets/s
(real snippets of a pass / pass time), the median over rounds of the paired ratio
(reference pass time / our pass time), the median step time of each kind (plain, denoising),
the fraction of the FLOP floor (conv FLOPs of the real snippets, forward + backward, / time /
this run's matmul peak of the compute dtype, `benchmarks.common`), and the kernel (system)
share of our process's CPU time during our timed passes (`os.times()`).
`--conv_algorithms direct,winograd` times our step with each TC convolution (`d2net-fit
--conv_algorithm`); floor_frac always counts the direct convolution's FLOPs, so Winograd's (half
the multiplications for the 3-tap layers) can pass 1; matmul_floor_frac counts the matmuls each runs.

`--kernel` also runs the kernel-time check (`kernel_time`: how much CPU time goes to the kernel): `model.fit` on the
in-memory tf.data pipeline at D=512, B=20, in a subprocess per runtime setting (`KERNEL_SETTINGS`:
TensorFlow's defaults, d2net-fit's thread pools with TensorFlow's allocator, d2net-fit's defaults
of `d2net_tf.cpu_runtime.configure_cpu_runtime`), user vs system CPU time and minor page faults.
Needs `torch` (`pip install torch==2.13.0`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from d2net_tf.cpu_runtime import ALLOCATORS, BFC_ENV, THREAD_POOLS
from d2net_tf.precision import PRECISIONS

NUM_CLASSES = 20
FP32_GOAL, BF16_GOAL = 3.0, 10.0  # speed goals: fp32 >= 3x everywhere; bf16 >= 10x at D=2048, B=10


def is_denoising_step(itr: int) -> bool:
    """The official schedule `itr > pdmi_iter and itr % 2 == 0` with pdmi_iter = 0."""
    return itr > 0 and itr % 2 == 0


def dropout_multiplier(rng: np.random.Generator, shape) -> np.ndarray:
    """A dropout-0.7 multiplier (0 or 1/0.3) as the transcription takes it."""
    keep = np.float32(0.3)
    return ((rng.random(shape, dtype=np.float32) < keep) * (np.float32(1) / keep)).astype(np.float32)


# ----------------------------------------------------------------------------- reference worker


def serve_reference(feature_dim: int, batch_size: int, num_batches: int, threads: int) -> None:
    """Worker: the official-step transcription on the benchmark's padded batches. Answers each
    "pass" line on stdin with one JSON line {"steps": [[seconds, denoising], ...], "real", "convolved"}."""
    import torch

    from benchmarks.official_reference import official_args, official_model, official_optimizer, train
    from benchmarks.train_step import make_batches, thumos_lengths

    torch.set_num_threads(threads)
    batches = make_batches(thumos_lengths(), feature_dim, num_batches, batch_size=batch_size, packed=False)
    rng = np.random.default_rng(1)
    inputs = [(b["features"], b["labels"], dropout_multiplier(rng, b["features"].shape)) for b in batches]
    args = official_args(batch_size=batch_size, pdmi_iter=0)
    model = official_model(feature_dim, NUM_CLASSES, args)
    optimizer = official_optimizer(model, args)
    real = int(sum(b["real"] for b in batches))
    convolved = int(sum(b["convolved"] for b in batches))
    state = {"itr": 0}

    def one_pass():
        out = []
        for features, labels, mult in inputs:
            itr = state["itr"]
            pi = np.random.default_rng([2, itr]).permutation(batch_size)
            t0 = time.perf_counter()
            res = train(itr, features, labels, args, model, optimizer, pi, mult)
            out.append([time.perf_counter() - t0, bool(res["pdmi"])])
            state["itr"] += 1
        return out

    one_pass()  # warm-up
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip() != "pass":
            break
        steps = one_pass()
        print(json.dumps({"steps": steps, "real": real, "convolved": convolved}), flush=True)


class ReferenceStep:
    """Parent side of `serve_reference`: `one_pass()` -> [(seconds, denoising)] per step."""

    def __init__(self, feature_dim: int, batch_size: int, num_batches: int, threads: int = 2):
        from benchmarks.official_reference import start_worker

        self.proc, self.info = start_worker(
            ["benchmarks.train_grid", "--serve_reference", "--dims", str(feature_dim),
             "--batches", str(batch_size), "--num_batches", str(num_batches), "--threads", str(threads)])
        self.real = self.convolved = 0

    def one_pass(self) -> list[tuple[float, bool]]:
        self.proc.stdin.write("pass\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        self.real, self.convolved = reply["real"], reply["convolved"]
        return [(float(s), bool(d)) for s, d in reply["steps"]]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=120)


# ----------------------------------------------------------------------------- ours


class OurStep:
    """Our train step on the same videos (packed), official denoising schedule after step 0."""

    def __init__(self, feature_dim: int, batch_size: int, num_batches: int, precision: str,
                 conv_algorithm: str = "direct"):
        import tensorflow as tf

        from benchmarks.train_step import make_batches, thumos_lengths
        from d2net_tf.config import preset
        from d2net_tf.training import RunConfig, create_model

        cfg = preset("official_fixed")  # packing needs rezero_padding
        cfg.model.feature_dim, cfg.model.num_classes = feature_dim, NUM_CLASSES
        cfg.train.batch_size = batch_size
        cfg.loss.denoise_start_step, cfg.loss.denoise_every = 1, 2  # = official itr > 0 and itr % 2 == 0
        self.model = create_model(cfg, RunConfig(model_dir="", precision=precision, packed=True,
                                                 conv_algorithm=conv_algorithm))
        batches = make_batches(thumos_lengths(), feature_dim, num_batches, batch_size=batch_size, packed=True,
                               gap=getattr(self.model, "network", self.model).packing_gap())
        self.tensors = [{k: tf.constant(v) for k, v in b.items() if k not in ("real", "convolved")} for b in batches]
        self.real = int(sum(b["real"] for b in batches))
        self.convolved = int(sum(b["convolved"] for b in batches))
        self.step = tf.function(self.model.train_step, reduce_retracing=True)
        self.one_pass()  # trace every shape once (warm-up)

    def one_pass(self) -> list[tuple[float, bool]]:
        out = []
        for b in self.tensors:
            itr = int(self.model.train_steps.numpy())
            t0 = time.perf_counter()
            float(self.step(b)["loss"])
            out.append((time.perf_counter() - t0, is_denoising_step(itr)))
        return out


def _kind_medians(steps: list[tuple[float, bool]]) -> tuple[float, float]:
    plain = [s for s, d in steps if not d]
    denoise = [s for s, d in steps if d]
    return (float(np.median(plain)) if plain else float("nan"), float(np.median(denoise)) if denoise else float("nan"))


def run_point(feature_dim: int, batch_size: int, repeats: int, num_batches: int, peaks: dict,
              conv_algorithms: tuple[str, ...] = ("direct",)) -> list[dict]:
    """One grid point: paired rounds of reference / each of our (precision, conv_algorithm) passes."""
    from benchmarks.common import train_flops_per_snippet
    from d2net_tf.config import preset
    from d2net_tf.modeling.winograd import matmul_taps

    variants = [(p, a) for p in PRECISIONS for a in conv_algorithms]
    ref = ReferenceStep(feature_dim, batch_size, num_batches)
    try:
        ours = {v: OurStep(feature_dim, batch_size, num_batches, *v) for v in variants}
        passes = {"reference": [], **{v: [] for v in variants}}
        cpu = {v: [0.0, 0.0] for v in variants}  # user, system seconds during our timed passes
        for _ in range(repeats):
            passes["reference"].append(ref.one_pass())
            for p, o in ours.items():
                t0 = os.times()
                passes[p].append(o.one_pass())
                t1 = os.times()
                cpu[p][0] += t1.user - t0.user
                cpu[p][1] += t1.system - t0.system
    finally:
        ref.close()
    real = ours[variants[0]].real
    if ref.real != real:
        raise AssertionError(f"reference and ours saw different videos ({ref.real} vs {real} real snippets)")
    k = preset("official_fixed").model.kernel_size  # OurStep's preset
    flops = train_flops_per_snippet(feature_dim, NUM_CLASSES, kernel=k) * real  # per pass (direct convolution)
    # each algorithm's own floor: the matmul FLOPs it runs (F(4, 3): 1.5 matmul rows per output, not 3)
    matmul_flops = {a: train_flops_per_snippet(feature_dim, NUM_CLASSES, kernel=matmul_taps(a, k)) * real
                    for a in conv_algorithms}
    ref_t = np.array([sum(s for s, _ in p) for p in passes["reference"]])
    rows = []
    plain, denoise = _kind_medians([s for p in passes["reference"] for s in p])
    rows.append({"D": feature_dim, "B": batch_size, "implementation": "official step (PyTorch transcription)",
                 "precision": "float32", "real_snippets_per_s": real / np.median(ref_t),
                 "plain_step_s": plain, "denoise_step_s": denoise, "ratio": 1.0,
                 "real_frac": real / ref.convolved,
                 "floor_frac": flops / np.median(ref_t) / 1e9 / peaks["float32"]})
    for v in variants:
        p, algorithm = v
        t = np.array([sum(s for s, _ in x) for x in passes[v]])
        plain, denoise = _kind_medians([s for x in passes[v] for s in x])
        ratios = ref_t / t
        peak = peaks["bfloat16" if p == "mixed_bfloat16" else "float32"]
        user, system = cpu[v]
        rows.append({"D": feature_dim, "B": batch_size, "implementation": "ours (packed)", "precision": p,
                     "conv_algorithm": algorithm,
                     "real_snippets_per_s": real / np.median(t), "plain_step_s": plain, "denoise_step_s": denoise,
                     "ratio": float(np.median(ratios)), "ratio_min": float(np.min(ratios)),
                     "ratio_max": float(np.max(ratios)), "real_frac": real / ours[v].convolved,
                     "floor_frac": flops / np.median(t) / 1e9 / peak,
                     "matmul_floor_frac": matmul_flops[algorithm] / np.median(t) / 1e9 / peak,
                     "kernel_share": system / max(user + system, 1e-9)})
    return rows


def goals(rows: list[dict]) -> list[str]:
    """One line per speed goal (FP32_GOAL, BF16_GOAL), met or missed by how much."""
    out = []
    for r in rows:
        if r["implementation"] != "ours (packed)":
            continue
        if r["precision"] == "float32":
            goal = FP32_GOAL
        elif r["D"] == 2048 and r["B"] == 10:
            goal = BF16_GOAL
        else:
            continue
        verdict = "met" if r["ratio"] >= goal else f"MISSED by {goal / r['ratio']:.2f}x"
        out.append(f"D={r['D']}, B={r['B']}, {r['precision']}, {r['conv_algorithm']}: {r['ratio']:.2f}x vs goal "
                   f"{goal:.0f}x: {verdict}")
    return out


# ----------------------------------------------------------------------------- kernel time


# The kernel-time check's runtime settings (thread pools, allocator), each in its own process:
# TensorFlow's defaults, d2net-fit's thread pools alone, and d2net-fit's defaults.
KERNEL_SETTINGS = (("tensorflow", "tensorflow"), ("per_stream", "tensorflow"), ("per_stream", "bfc"))


def _kernel_worker(thread_pools: str, allocator: str, steps: int, feature_dim: int = 512, batch_size: int = 20) -> dict:
    """model.fit on the in-memory pipeline (as train_and_evaluate runs it) with
    `configure_cpu_runtime(thread_pools, allocator=allocator)`; CPU times and page faults of the process."""
    import resource

    from d2net_tf.cpu_runtime import bfc_allocator_active, configure_cpu_runtime

    applied = configure_cpu_runtime(thread_pools, allocator=allocator)
    import tensorflow as tf

    from benchmarks.train_step import thumos_lengths
    from d2net_tf.config import preset
    from d2net_tf.data.dataset import VideoDataset
    from d2net_tf.data.pipeline import training_dataset
    from d2net_tf.training import RunConfig, create_model

    lengths = thumos_lengths()
    rng = np.random.default_rng(0)
    n = len(lengths)
    labels = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, n)]
    feats = [rng.random((int(t), feature_dim), dtype=np.float32) for t in lengths]
    ds = VideoDataset("Thumos14reduced", [f"c{i}" for i in range(NUM_CLASSES)], np.array([f"v{i}" for i in range(n)]),
                      np.array(["validation"] * n), labels, [np.zeros((0, 2))] * n, [np.zeros(0, np.int32)] * n,
                      np.ones(n), feats)
    cfg = preset("official")  # the measurement: official settings (padded batches)
    cfg.model.feature_dim, cfg.model.num_classes = feature_dim, NUM_CLASSES
    cfg.train.batch_size = batch_size
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 1, 2
    model = create_model(cfg, RunConfig(model_dir=""))
    data = training_dataset(ds, batch_size, cfg.train.max_seqlen, 0, 0, None, cfg.train.batch_sampling)
    model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)  # trace, warm up
    t0, w0, f0 = os.times(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    t1, w1, f1 = os.times(), time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    user, system = t1.user - t0.user, t1.system - t0.system
    return {"runtime": f"thread pools {thread_pools}, allocator {allocator}",
            "applied": json.dumps(applied, sort_keys=True) if applied else "",
            "bfc_active": bfc_allocator_active(), "page_faults_per_step": (f1 - f0) / steps,
            "step_s": (w1 - w0) / steps, "user_s": user, "system_s": system,
            "kernel_share": system / max(user + system, 1e-9), "cpu_per_wall": (user + system) / (w1 - w0),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads()}


def kernel_time(steps: int = 40, rounds: int = 1) -> list[dict]:
    """Each of KERNEL_SETTINGS in its own subprocess (thread pools and allocator are fixed at TF
    start-up), alternated."""
    rows = []
    env = {k: v for k, v in os.environ.items() if k != BFC_ENV}  # each setting chooses its allocator
    for _ in range(rounds):
        for thread_pools, allocator in KERNEL_SETTINGS:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.train_grid", "--kernel_worker",
                                   "--cpu_thread_pools", thread_pools, "--cpu_allocator", allocator,
                                   "--kernel_steps", str(steps)],
                                  capture_output=True, text=True, timeout=3600, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("KERNEL ")]
            if proc.returncode or not lines:
                rows.append({"runtime": f"thread pools {thread_pools}, allocator {allocator}",
                             "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]})
                continue
            rows.append(json.loads(lines[-1][len("KERNEL "):]))
    return rows


GRID_COLUMNS = ["D", "B", "implementation", "precision", "conv_algorithm", "real_snippets_per_s", "ratio", "ratio_min", "ratio_max",
                "plain_step_s", "denoise_step_s", "real_frac", "floor_frac", "matmul_floor_frac", "kernel_share"]
KERNEL_COLUMNS = ["runtime", "step_s", "user_s", "system_s", "kernel_share", "page_faults_per_step", "cpu_per_wall",
                  "inter_op", "intra_op", "bfc_active", "applied", "error"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per grid point")
    parser.add_argument("--num_batches", type=int, default=2, help="batches (steps) per pass; even: half denoising")
    parser.add_argument("--dims", default="512,1024,2048")
    parser.add_argument("--batches", default="10,20")
    parser.add_argument("--threads", type=int, default=2, help="the reference's torch threads")
    parser.add_argument("--cpu_thread_pools", default="per_stream", choices=list(THREAD_POOLS),
                        help="our side's TensorFlow thread pools (d2net-fit --cpu_thread_pools)")
    parser.add_argument("--cpu_allocator", default="bfc", choices=list(ALLOCATORS),
                        help="our side's TensorFlow CPU allocator (d2net-fit --cpu_allocator)")
    parser.add_argument("--conv_algorithms", default="direct",
                        help="our TC convolutions, comma-separated: direct, winograd (d2net-fit --conv_algorithm)")
    parser.add_argument("--kernel", action="store_true", help="also run the kernel-time check (D=512, B=20)")
    parser.add_argument("--kernel_steps", type=int, default=40)
    parser.add_argument("--kernel_rounds", type=int, default=1)
    parser.add_argument("--nogrid", action="store_true", help="skip the grid (with --kernel)")
    parser.add_argument("--serve_reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kernel_worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.num_batches < 2 or args.num_batches % 2:
        parser.error("--num_batches must be even and >= 2 (half of the steps are denoising steps)")
    if args.serve_reference:
        serve_reference(int(args.dims), int(args.batches), args.num_batches, args.threads)
        return
    if args.kernel_worker:
        print("KERNEL " + json.dumps(_kernel_worker(args.cpu_thread_pools, args.cpu_allocator, args.kernel_steps)),
              flush=True)
        return

    from d2net_tf.cpu_runtime import configure_cpu_runtime

    # as d2net-fit: before TensorFlow's first op
    applied = configure_cpu_runtime(args.cpu_thread_pools, allocator=args.cpu_allocator)
    from benchmarks.common import machine_header, markdown_table, matmul_peak_gflops

    print(machine_header())
    print(f"our CPU runtime: thread pools {args.cpu_thread_pools}, allocator {args.cpu_allocator} "
          f"{json.dumps(applied, sort_keys=True)}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    if not args.nogrid:
        peaks = {d: matmul_peak_gflops(d, sizes=(2048, 3072), repeats=3) for d in ("float32", "bfloat16")}
        rows = []
        for d in (int(x) for x in args.dims.split(",")):
            for b in (int(x) for x in args.batches.split(",")):
                point = run_point(d, b, args.repeats, args.num_batches, peaks, tuple(args.conv_algorithms.split(",")))
                rows += point
                print(markdown_table(point, GRID_COLUMNS), flush=True)
        # The machine's speed drifts: the peak is the best of the start and the end of the run.
        end = {d: matmul_peak_gflops(d, sizes=(2048, 3072), repeats=3) for d in ("float32", "bfloat16")}
        for r in rows:  # floor fractions against the best peak of the run
            key = "bfloat16" if r["precision"] == "mixed_bfloat16" else "float32"
            for column in ("floor_frac", "matmul_floor_frac"):
                if column in r:
                    r[column] *= peaks[key] / max(peaks[key], end[key])
        peaks = {k: max(peaks[k], end[k]) for k in peaks}
        print(f"\nmatmul peak of this run: float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['bfloat16']:.0f} "
              f"GFLOP/s; {args.repeats} paired rounds of {args.num_batches} steps per point (half denoising)")
        print(markdown_table(rows, GRID_COLUMNS))
        print("\n" + "\n".join(goals(rows)))
    if args.kernel:
        print(f"\nkernel time, model.fit at D=512, B=20 (official preset, padded, in-memory tf.data), "
              f"{args.kernel_steps} steps per setting")
        print(markdown_table(kernel_time(args.kernel_steps, args.kernel_rounds), KERNEL_COLUMNS))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Training-step benchmark: `python -m benchmarks.train_step [--quick]`.

THUMOS14-shaped batches: B=10 videos drawn from the real THUMOS14 training-split lengths
(T_i = round(duration_i x 25 / 16)), each cropped to 750 snippets, as the official code
samples them; random features (speed does not depend on values). Padded batches (what
the official code does) vs packed batches (ours: no convolution on padding), float32 vs
mixed bfloat16, with and without XLA. Timing unit: one pass = one step on each of the 6
batches (their lengths differ). Reports the median pass time per step (and the fastest /
slowest pass), real snippets per second (real snippets of a pass / median pass time), the
share of the step spent outside the convolutions (losses etc.), and the fraction of the
conv FLOP floor (FLOPs of the real snippets / time / measured matmul peak).

Reference: the official PyTorch code on this kind of machine (2 cores, fp32) runs
876 real snippets/s (3.25 s per step at 43% real snippets), measured on the official code.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from benchmarks.common import (
    machine_header,
    markdown_table,
    matmul_peak_gflops,
    peak_rss_mib,
    time_calls,
    train_flops_per_snippet,
)
from d2net_tf.config import preset
from d2net_tf.data.pipeline import pack_videos, pad_videos
from d2net_tf.data.wtalc import load_wtalc_annotations, vendored_annotation_dir
from d2net_tf.training import RunConfig, create_model

OFFICIAL_REAL_SNIPPETS_PER_S = 876.0


def thumos_lengths() -> np.ndarray:
    ann = load_wtalc_annotations(vendored_annotation_dir("Thumos14reduced")).subset("validation")
    return np.maximum(np.round(ann.durations * 25 / 16).astype(int), 1)


def make_batches(lengths, feature_dim, num_batches, batch_size=10, max_seqlen=750, seed=0, packed=True, gap=1):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(num_batches):
        idx = rng.choice(len(lengths), batch_size, replace=False)
        videos = [rng.random((min(int(lengths[i]), max_seqlen), feature_dim), dtype=np.float32) for i in idx]
        b = pack_videos(videos, gap) if packed else pad_videos(videos)
        b["labels"] = np.eye(20, dtype=np.float32)[rng.integers(0, 20, batch_size)]
        b["real"] = sum(v.shape[0] for v in videos)
        b["convolved"] = b["features"].shape[0] * b["features"].shape[1]
        batches.append(b)
    return batches


class PreparedStep:
    """A model's training step on the benchmark's 6 batches, traced for every batch shape.

    `one_pass()` runs one step on each batch; `real` / `convolved` are the real / convolved
    snippets of a pass.
    """

    def __init__(self, feature_dim, packed, precision, jit, lengths):
        cfg = preset("official_fixed" if packed else "official")  # packing needs rezero_padding
        cfg.model.feature_dim, cfg.model.num_classes = feature_dim, 20
        cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1  # every step is a denoising step
        self.model = create_model(cfg, RunConfig(model_dir="", precision=precision, jit_compile=jit, packed=packed))
        batches = make_batches(lengths, feature_dim, 6, packed=packed, gap=self.model.network.packing_gap())
        self.tensors = [{k: tf.constant(v) for k, v in b.items() if k not in ("real", "convolved")} for b in batches]
        self.real = int(np.sum([b["real"] for b in batches]))
        self.convolved = int(np.sum([b["convolved"] for b in batches]))
        self.step = tf.function(self.model.train_step, jit_compile=jit, reduce_retracing=True)
        self.one_pass()  # trace every shape once

    def one_pass(self) -> None:
        for b in self.tensors:
            float(self.step(b)["loss"])


def bench_config(feature_dim, packed, precision, jit, lengths, repeats, loss_only_share=True):
    prepared = PreparedStep(feature_dim, packed, precision, jit, lengths)
    model, tensors = prepared.model, prepared.tensors
    t = time_calls(prepared.one_pass, repeats, warmup=0)
    real, n = prepared.real, len(tensors)
    row = {
        "D": feature_dim, "layout": "packed" if packed else "padded", "precision": precision,
        "xla": jit, "step_ms": 1000 * t["median_s"] / n, "min_ms": 1000 * t["min_s"] / n,
        "max_ms": 1000 * t["max_s"] / n, "real_frac": real / prepared.convolved,
        "real_snippets_per_s": real / t["median_s"],
        "gflops_real": train_flops_per_snippet(feature_dim, 20) * real / t["median_s"] / 1e9,
    }
    if loss_only_share:
        # Time of the losses and the update alone: the same step on a model whose convs are 1x1 and tiny.
        outputs = model.forward_batch(tensors[0], training=True)
        terms = tf.function(lambda o, m: model.compute_losses(tensors[0], o, tf.constant([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]),
                                                              True, m))
        lt = time_calls(lambda: float(terms(outputs[0], outputs[1])["loss"]), repeats, warmup=2)
        row["loss_ms"] = 1000 * lt["median_s"]
    return row


def run(repeats: int = 5, quick: bool = False) -> list[dict]:
    lengths = thumos_lengths()
    configs = [(2048, False, "float32", False), (2048, True, "float32", False),
               (2048, True, "mixed_bfloat16", False), (2048, True, "float32", True),
               (2048, True, "mixed_bfloat16", True), (256, True, "float32", False)]
    if quick:
        configs = [(256, False, "float32", False), (256, True, "float32", False), (256, True, "mixed_bfloat16", False)]
    rows = []
    for d, packed, precision, jit in configs:
        peak_dtype = "bfloat16" if precision == "mixed_bfloat16" else "float32"
        # The machine's speed drifts: the peak is measured just before and after each config (best of both).
        peak_before = matmul_peak_gflops(peak_dtype)
        try:
            row = bench_config(d, packed, precision, jit, lengths, repeats)
        except Exception as e:  # noqa: BLE001  (a failing variant, e.g. XLA, is reported, not fatal)
            rows.append({"D": d, "layout": "packed" if packed else "padded", "precision": precision, "xla": jit,
                         "error": f"{type(e).__name__}: {str(e).splitlines()[0][:80]}"})
            continue
        row["peak_gflops"] = max(peak_before, matmul_peak_gflops(peak_dtype))
        row["floor_frac"] = row["gflops_real"] / row["peak_gflops"]
        row["vs_official"] = row["real_snippets_per_s"] / OFFICIAL_REAL_SNIPPETS_PER_S
        row["loss_share"] = row.get("loss_ms", 0.0) / row["step_ms"]
        rows.append(row)
    rows.append({"D": "peak RSS MiB", "layout": f"{peak_rss_mib():.0f}"})
    return rows


COLUMNS = ["D", "layout", "precision", "xla", "step_ms", "min_ms", "max_ms", "real_frac", "real_snippets_per_s",
           "vs_official", "gflops_real", "peak_gflops", "floor_frac", "loss_ms", "loss_share", "error"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="demo-size configs only")
    args = parser.parse_args()
    rows = run(args.repeats, args.quick)
    print(machine_header())
    print(markdown_table(rows, COLUMNS))


if __name__ == "__main__":
    main()

"""Whole-test-split benchmark: `python -m benchmarks.test_split`.

The THUMOS14 test split as the evaluation sees it: 212 videos of the real test lengths
(T_i = round(duration_i x 25 / 16), 71,804 snippets), D=2048, C=20, the real ground truth;
random features and a randomly initialised model with a non-zero x_ref (speed does not
depend on the values). Times the forward pass over packed sequences, the Sec. 3.3
localization and the mAP evaluation at tIoU 0.1..0.7 separately, each the median of
`repeats` runs. Reference: the official code takes 48 ms forward + 43 ms post-processing
per video and 3.3 s for mAP at 5 thresholds: 22.8 s in total on this kind of machine.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks.common import (
    conv_flops_per_snippet,
    machine_header,
    markdown_table,
    matmul_peak_gflops,
    peak_rss_mib,
    time_calls,
)
from d2net_tf.config import preset
from d2net_tf.data.wtalc import load_wtalc_annotations, vendored_annotation_dir
from d2net_tf.evaluation import GroundTruth, evaluate_detections
from d2net_tf.inference import predict_videos
from d2net_tf.localization import localize_videos
from d2net_tf.localization import localization_config
from d2net_tf.training import RunConfig, create_model

OFFICIAL_TOTAL_S = 22.8


def run(repeats: int = 3, precision: str = "float32", weights: list | None = None) -> list[dict]:
    """Rows of one precision; `weights` (a float32 model's get_weights()) = the same network in
    both precisions, so the mAP change is the precision's alone."""
    test = load_wtalc_annotations(vendored_annotation_dir("Thumos14reduced")).subset("test")
    rng = np.random.default_rng(0)
    lengths = np.maximum(np.round(test.durations * 25 / 16).astype(int), 1)
    test.features = [rng.random((t, 2048), dtype=np.float32) for t in lengths]
    cfg = preset("official")
    model = create_model(cfg, RunConfig(model_dir="", precision=precision))
    model.x_ref.assign(rng.random(1024).astype(np.float32))
    if weights is not None:
        model.set_weights(weights)
    loc = localization_config("official", test.name, cfg.loss.topk_divisor)
    gt = GroundTruth.from_dataset(test)
    outputs = {}

    def forward():
        outputs["videos"] = [(v, t, a) for v, t, a, _ in predict_videos(model.network, test)]

    def localize():
        outputs["det"] = localize_videos(outputs["videos"], test.snippets_per_second, loc)

    def evaluate():
        outputs["result"] = evaluate_detections(gt, outputs["det"], (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))

    rows = []
    total = 0.0
    for name, fn in (("forward (packed)", forward), ("localization", localize), ("evaluation, 7 tIoU", evaluate)):
        t = time_calls(fn, repeats, warmup=1)
        total += t["median_s"]
        rows.append({"stage": name, **t, "per_video_ms": 1000 * t["median_s"] / len(test)})
    # FLOP floor of the forward: conv FLOPs of every snippet at this run's matmul peak.
    peak = matmul_peak_gflops("bfloat16" if precision == "mixed_bfloat16" else "float32")
    gflops = conv_flops_per_snippet(2048, cfg.model.num_classes) * lengths.sum() / rows[0]["median_s"] / 1e9
    rows[0].update(gflops=gflops, peak_gflops=peak, floor_frac=gflops / peak)
    rows.append({"stage": "total", "median_s": total, "per_video_ms": 1000 * total / len(test),
                 "vs_official": OFFICIAL_TOTAL_S / total, "detections": len(outputs["det"]),
                 "snippets": int(lengths.sum()), "precision": precision, "peak_rss_mib": peak_rss_mib(),
                 "mAP@0.5": 100 * float(outputs["result"]["mAP"][4]),
                 "average_mAP": 100 * float(outputs["result"]["average_mAP"])})
    rows[-1]["weights"] = model.get_weights()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="both", choices=["both", "float32", "mixed_bfloat16"],
                        help="both: float32, then mixed_bfloat16 inference of the same weights, and the mAP change")
    parser.add_argument("--cpu_thread_pools", default="tensorflow", choices=["per_stream", "tensorflow"],
                        help="TensorFlow's thread pools: its defaults (what d2net-evaluate and d2net-localize run "
                        "with) or d2net-fit's per_stream (d2net_tf.cpu_runtime)")
    args = parser.parse_args()
    from d2net_tf.cpu_runtime import configure_cpu_runtime

    applied = configure_cpu_runtime(args.cpu_thread_pools)  # before TensorFlow's first op
    print(machine_header())
    print(f"thread pools: {args.cpu_thread_pools} {json.dumps(applied, sort_keys=True)}")
    weights, totals = None, {}
    for precision in (["float32", "mixed_bfloat16"] if args.precision == "both" else [args.precision]):
        rows = run(args.repeats, precision, weights)
        weights = rows[-1].pop("weights")
        totals[precision] = rows[-1]
        print(markdown_table(rows, ["stage", "median_s", "min_s", "max_s", "per_video_ms", "gflops", "peak_gflops",
                                    "floor_frac", "vs_official", "detections", "snippets", "precision",
                                    "peak_rss_mib", "mAP@0.5", "average_mAP"]), flush=True)
    if len(totals) == 2:
        f, b = totals["float32"], totals["mixed_bfloat16"]
        print(f"float32 {f['median_s']:.2f} s (goal < 10 s), mixed_bfloat16 {b['median_s']:.2f} s (goal < 4 s), "
              f"ratio {f['median_s'] / b['median_s']:.2f}x; mAP change (bf16 - fp32, points): "
              f"mAP@0.5 {b['mAP@0.5'] - f['mAP@0.5']:+.3f}, average {b['average_mAP'] - f['average_mAP']:+.3f} "
              "(goal: within 0.1)")


if __name__ == "__main__":
    main()

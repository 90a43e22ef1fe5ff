"""Whole-test-split benchmark: `python -m benchmarks.test_split`.

The THUMOS14 test split as the evaluation sees it: 212 videos of the real test lengths
(T_i = round(duration_i x 25 / 16), 71,804 snippets), D=2048, C=20, the real ground truth;
random features and a randomly initialised model with a non-zero x_ref (speed does not
depend on the values, but then the mAP is about 0 and its change says nothing). With
`--model_dir` and `--data_dir`: a trained model (its best checkpoint, config and localization)
on the evaluation split of the data it was trained on, e.g. a D=2048 model on
`d2net-synthetic --feature_dim 2048` data, whose test split has the same 212 videos and lengths;
then the mAP change of bfloat16 and of Winograd is measured on the weights that are timed.
Times the forward pass over packed sequences, the Sec. 3.3 localization and the mAP evaluation
at tIoU 0.1..0.7 separately, each the median of `repeats` runs, for each precision and
convolution algorithm asked for (`--conv_algorithm direct,winograd`: the same weights, so every
mAP change is the algorithm's or precision's alone, against float32 direct). Reference: the
official code takes 48 ms forward + 43 ms post-processing per video and 3.3 s for mAP at 5
thresholds: 22.8 s in total on this kind of machine.
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
from d2net_tf.config import CONV_ALGORITHMS, preset
from d2net_tf.cpu_runtime import ALLOCATORS, THREAD_POOLS
from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.data.loading import load_dataset, split_train_test
from d2net_tf.data.wtalc import load_wtalc_annotations, vendored_annotation_dir
from d2net_tf.evaluation import GroundTruth, evaluate_detections
from d2net_tf.inference import predict_videos
from d2net_tf.localization import localize_videos
from d2net_tf.localization import localization_config
from d2net_tf.model_dir import read_model_dir, restore_network
from d2net_tf.modeling import build_network
from d2net_tf.modeling.winograd import matmul_taps
from d2net_tf.precision import dtype_policy

OFFICIAL_TOTAL_S = 22.8
TIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def random_test_split():
    """(test split, config, localization, weights) of the default run: THUMOS14's test videos at their
    real lengths with random features, and a random network with a random non-zero x_ref, all seeded
    (the same videos and weights in every run, so two runs' mAP compare)."""
    import keras

    keras.utils.set_random_seed(0)  # the network's initial weights
    test = load_wtalc_annotations(vendored_annotation_dir("Thumos14reduced")).subset("test")
    cfg = preset("official")
    rng = np.random.default_rng(0)
    lengths = np.maximum(np.round(test.durations * I3D_SNIPPETS_PER_SECOND).astype(int), 1)
    test.features = [rng.random((t, cfg.model.feature_dim), dtype=np.float32) for t in lengths]
    network = build_network(cfg.model, cfg.loss.topk_divisor)
    network.x_ref.assign(rng.random(cfg.model.feature_dim // 2).astype(np.float32))
    return test, cfg, localization_config("official", test.name, cfg.loss.topk_divisor), network.get_weights()


def trained_test_split(model_dir: str, data_dir: str):
    """(evaluation split, config, localization, weights) of MODEL_DIR's best checkpoint on DATA_DIR."""
    record = read_model_dir(model_dir)
    network, _ = restore_network(record, "best")
    dataset = load_dataset(data_dir, record.dataset, feature_dim=record.config.model.feature_dim)
    return split_train_test(dataset)[1], record.config, record.localization_for(None), network.get_weights()


def run(test, cfg, loc, weights: list, repeats: int = 3, precision: str = "float32", conv_algorithm: str = "direct",
        max_snippets: int = 50000) -> list[dict]:
    """Rows of one precision and convolution algorithm of the network of config `cfg` with `weights`
    (float32 get_weights(): the same network in every run) on the videos of `test`."""
    with dtype_policy(precision):
        network = build_network(cfg.model, cfg.loss.topk_divisor)
    network.set_weights(weights)
    lengths = np.array([f.shape[0] for f in test.features])
    gt = GroundTruth.from_dataset(test)
    outputs = {}

    def forward():
        outputs["videos"] = [(v, t, a) for v, t, a, _ in predict_videos(network, test, max_snippets,
                                                                         conv_algorithm)]

    def localize():
        outputs["det"] = localize_videos(outputs["videos"], test.snippets_per_second, loc)

    def evaluate():
        outputs["result"] = evaluate_detections(gt, outputs["det"], TIOU_THRESHOLDS)

    rows = []
    total = 0.0
    for name, fn in (("forward (packed)", forward), ("localization", localize), ("evaluation, 7 tIoU", evaluate)):
        t = time_calls(fn, repeats, warmup=1)
        total += t["median_s"]
        rows.append({"stage": name, **t, "per_video_ms": 1000 * t["median_s"] / len(test)})
    # FLOP floor of the forward: the direct convolution's FLOPs of every snippet at this run's matmul
    # peak (Winograd does fewer multiplications: its own floor fraction counts the matmul FLOPs it
    # runs, not its transforms).
    peak = matmul_peak_gflops("bfloat16" if precision == "mixed_bfloat16" else "float32")
    giga_snippets_per_s = lengths.sum() / rows[0]["median_s"] / 1e9
    dim = cfg.model.feature_dim
    gflops = conv_flops_per_snippet(dim, cfg.model.num_classes) * giga_snippets_per_s
    taps = matmul_taps(conv_algorithm, cfg.model.kernel_size)
    matmul_gflops = conv_flops_per_snippet(dim, cfg.model.num_classes, kernel=taps) * giga_snippets_per_s
    rows[0].update(gflops=gflops, peak_gflops=peak, floor_frac=gflops / peak,
                   matmul_floor_frac=matmul_gflops / peak)
    rows.append({"stage": "total", "median_s": total, "per_video_ms": 1000 * total / len(test),
                 "vs_official": OFFICIAL_TOTAL_S / total, "detections": len(outputs["det"]),
                 "snippets": int(lengths.sum()), "precision": precision, "conv_algorithm": conv_algorithm,
                 "max_snippets": max_snippets,
                 "peak_rss_mib": peak_rss_mib(),
                 "mAP@0.5": 100 * float(outputs["result"]["mAP"][TIOU_THRESHOLDS.index(0.5)]),
                 "average_mAP": 100 * float(outputs["result"]["average_mAP"])})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="both", choices=["both", "float32", "mixed_bfloat16"],
                        help="both: float32, then mixed_bfloat16 inference of the same weights, and the mAP change")
    parser.add_argument("--conv_algorithm", default="direct",
                        help=f"comma-separated, of {CONV_ALGORITHMS}: each runs in every precision, same weights")
    parser.add_argument("--cpu_thread_pools", default="tensorflow", choices=list(THREAD_POOLS),
                        help="TensorFlow's thread pools: its defaults (what d2net-evaluate and d2net-localize run "
                        "with) or d2net-fit's per_stream (d2net_tf.cpu_runtime)")
    parser.add_argument("--cpu_allocator", default="bfc", choices=list(ALLOCATORS),
                        help="TensorFlow's CPU allocator: the BFC pool (what d2net-evaluate and d2net-localize run "
                        "with, --cpu_allocator) or TensorFlow's default (d2net_tf.cpu_runtime)")
    parser.add_argument("--max_snippets", type=int, default=50000, help="longest packed sequence (predict_videos)")
    parser.add_argument("--model_dir", help="a trained model directory (with --data_dir) instead of random weights")
    parser.add_argument("--data_dir", help="the data MODEL_DIR was trained on; its evaluation split is timed")
    args = parser.parse_args()
    if (args.model_dir is None) != (args.data_dir is None):
        parser.error("--model_dir and --data_dir go together")
    algorithms = args.conv_algorithm.split(",")
    if not set(algorithms) <= set(CONV_ALGORITHMS):
        parser.error(f"--conv_algorithm: expected a comma-separated list of {CONV_ALGORITHMS}, "
                     f"got {args.conv_algorithm!r}")
    from d2net_tf.cpu_runtime import configure_cpu_runtime

    applied = configure_cpu_runtime(args.cpu_thread_pools, allocator=args.cpu_allocator)  # before TF's first op
    print(machine_header())
    print(f"thread pools: {args.cpu_thread_pools}, allocator: {args.cpu_allocator} "
          f"{json.dumps(applied, sort_keys=True)}")
    if args.model_dir:
        test, cfg, loc, weights = trained_test_split(args.model_dir, args.data_dir)
        print(f"model: {args.model_dir} (best checkpoint), {len(test)} videos of {args.data_dir}")
    else:
        test, cfg, loc, weights = random_test_split()
    totals = {}
    goals = {"float32": 10.0, "mixed_bfloat16": 4.0}
    for precision in (["float32", "mixed_bfloat16"] if args.precision == "both" else [args.precision]):
        for algorithm in algorithms:
            rows = run(test, cfg, loc, weights, args.repeats, precision, algorithm, args.max_snippets)
            totals[precision, algorithm] = rows[-1]
            print(markdown_table(rows, ["stage", "median_s", "min_s", "max_s", "per_video_ms", "gflops",
                                        "peak_gflops", "floor_frac", "matmul_floor_frac", "vs_official",
                                        "detections", "snippets", "precision", "conv_algorithm", "max_snippets",
                                        "peak_rss_mib", "mAP@0.5", "average_mAP"]), flush=True)
    reference = next(iter(totals.values()))
    summary = [{"precision": p, "conv_algorithm": a, "total_s": t["median_s"], "goal_s": goals[p],
                "met": t["median_s"] < goals[p], "mAP@0.5 change": t["mAP@0.5"] - reference["mAP@0.5"],
                "average change": t["average_mAP"] - reference["average_mAP"]} for (p, a), t in totals.items()]
    print(f"mAP changes (points) against {reference['precision']} {reference['conv_algorithm']} (goal: within 0.1):")
    print(markdown_table(summary, list(summary[0])))


if __name__ == "__main__":
    main()

"""Benchmark of evaluation and localization post-processing (numpy only).

    python -m benchmarks.evaluate [--repeats 7]

Rows:
  * evaluate_detections on 50,000 random predictions against the real THUMOS14 test
    ground truth (vendored W-TALC annotations, 212 videos, 3358 segments) at the 7
    THUMOS14 thresholds, both protocols. Two prediction sets: "random" (uniform
    segments, random classes) and "near-GT" (jittered copies of ground truth: the
    harder case for matching, since most predictions have candidates).
  * localize_videos on 212 synthetic videos with T_i = round(duration_i * 25 / 16)
    from the real test durations, C = 20, smooth random TCAMs and attention; both a
    "realistic" variant (2 active classes per video, the rest low) and a worst case
    (all 20 classes relevant). The speed of the localization is measured here and not
    bounded in a test: a wall-clock bound fails on a loaded CI machine.

`run(repeats)` returns one dict per row (name, median_s, min_s, max_s, size info).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND, THUMOS14
from d2net_tf.evaluation import Detections, GroundTruth, evaluate_detections
from d2net_tf.localization import LocalizationConfig, localize_videos

THUMOS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "d2net_tf", "data", "annotations", "Thumos14reduced-Annotations",
)


def thumos_test_ground_truth() -> GroundTruth:
    from d2net_tf.data.wtalc import load_wtalc_annotations

    return GroundTruth.from_dataset(load_wtalc_annotations(THUMOS_DIR), "test")


def random_predictions(gt: GroundTruth, n: int, seed: int, near_gt: bool) -> Detections:
    rng = np.random.default_rng(seed)
    if near_gt:
        k = rng.integers(0, len(gt), n)
        jitter = rng.normal(0, 2.0, (n, 2))
        starts = np.maximum(gt.starts[k] + jitter[:, 0], 0.0)
        ends = np.maximum(gt.ends[k] + jitter[:, 1], starts + 0.1)
        return Detections(gt.video_ids[k], gt.class_ids[k], starts, ends, rng.random(n))
    videos = np.array(gt.video_list)
    v = rng.integers(0, len(videos), n)
    duration = np.array([gt.durations[x] for x in videos])[v]
    starts = rng.uniform(0, 1, n) * duration
    ends = np.minimum(starts + rng.exponential(5.0, n) + 0.5, duration + 0.5)
    return Detections(videos[v], rng.integers(0, len(gt.classlist), n), starts, ends, rng.random(n))


def _smooth(rng: np.random.Generator, s: int, c: int, width: int = 15) -> np.ndarray:
    kernel = np.hanning(width)
    kernel /= kernel.sum()
    x = rng.normal(size=(s + width, c))
    x = np.stack([np.convolve(x[:, j], kernel, mode="same") for j in range(c)], axis=1)
    return x[width // 2 : width // 2 + s] * 4.0


def synthetic_videos(durations: np.ndarray, num_classes: int, seed: int, active: int | None):
    """(video_id, tcam, attention) for each duration; `active` classes per video (None = all)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, d in enumerate(durations):
        s = max(1, int(round(d * I3D_SNIPPETS_PER_SECOND)))
        logits = _smooth(rng, s, num_classes)
        if active is not None:
            bias = np.full(num_classes, -4.0)
            bias[rng.choice(num_classes, active, replace=False)] = 0.0
            logits = logits + bias
        tcam = 1.0 / (1.0 + np.exp(-logits))
        attention = 1.0 / (1.0 + np.exp(-_smooth(rng, s, 1)[:, 0]))
        out.append((f"video_{i:04d}", tcam, attention))
    return out


def _time(fn: Callable[[], object], repeats: int) -> np.ndarray:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def run(repeats: int = 7) -> list[dict]:
    gt = thumos_test_ground_truth()
    rows = []
    for kind in ("random", "near-GT"):
        det = random_predictions(gt, 50_000, seed=0, near_gt=kind == "near-GT")
        for protocol in ("anet", "wtalc"):
            t = _time(lambda: evaluate_detections(gt, det, THUMOS14.tiou_thresholds, protocol=protocol), repeats)
            rows.append({
                "name": f"evaluate 50k {kind} predictions, 7 tIoU, protocol={protocol}",
                "median_s": float(np.median(t)), "min_s": float(t.min()), "max_s": float(t.max()),
                "items": f"{len(det)} predictions / {len(gt)} GT / {len(gt.video_list)} videos",
            })
    durations = np.array([gt.durations[v] for v in gt.video_list])
    for label, active in (("2 active classes/video", 2), ("all 20 classes relevant (worst case)", None)):
        videos = synthetic_videos(durations, 20, seed=1, active=active)
        snippets = sum(v[1].shape[0] for v in videos)
        for preset in ("paper", "official"):
            config = getattr(LocalizationConfig, preset)("thumos14")
            n_det = len(localize_videos(videos, config=config))
            t = _time(lambda: localize_videos(videos, config=config), repeats)
            rows.append({
                "name": f"localize 212 videos, C=20, {label}, {preset}",
                "median_s": float(np.median(t)), "min_s": float(t.min()), "max_s": float(t.max()),
                "items": f"{snippets} snippets (max {max(v[1].shape[0] for v in videos)}) -> {n_det} detections",
            })
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| benchmark | median (s) | min (s) | max (s) | size |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['median_s']:.4f} | {r['min_s']:.4f} | {r['max_s']:.4f} | {r['items']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Evaluation / localization benchmark")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(format_table(run(args.repeats)))


if __name__ == "__main__":
    main()

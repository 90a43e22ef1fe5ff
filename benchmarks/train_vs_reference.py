"""Training throughput against the official network in PyTorch, in the same run:
`python -m benchmarks.train_vs_reference [--repeats N]`.

This machine's speed drifts by 2x over minutes (shared host), so a ratio against a figure
measured on another day says little. Here each round runs one pass (one step on each of the
6 THUMOS14-shaped batches of `benchmarks.train_step`) of the PyTorch re-implementation of the
official training step (`benchmarks.official_reference`: padded batches, nn.Conv1d, fp32),
then one pass of ours in float32 and one in mixed bfloat16 (packed batches). Reported: the
median throughput of each, and the median over rounds of the paired ratio
(reference pass time / our pass time; the same videos, so the same real snippets).
Needs `torch` (`pip install torch==2.13.0`).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time

import numpy as np

from benchmarks.common import markdown_table
from benchmarks.official_reference import ReferenceWorker
from benchmarks.train_step import OFFICIAL_REAL_SNIPPETS_PER_S, PreparedStep, thumos_lengths

OURS = {"ours, packed, float32": "float32", "ours, packed, mixed_bfloat16": "mixed_bfloat16"}


def run(repeats: int = 5) -> list[dict]:
    try:
        worker = ReferenceWorker(2048, 20, 6)
    except Exception as e:  # noqa: BLE001  (no torch: say so in the table)
        return [{"implementation": "reference", "error": f"{type(e).__name__}: {e}"}]
    try:
        lengths = thumos_lengths()
        prepared = {name: PreparedStep(2048, True, precision, False, lengths) for name, precision in OURS.items()}
        times = {name: [] for name in ["reference"] + list(prepared)}
        for _ in range(repeats):
            times["reference"].append(worker.one_pass())
            for name, p in prepared.items():
                t0 = time.perf_counter()
                p.one_pass()
                times[name].append(time.perf_counter() - t0)
    finally:
        worker.close()
    real = next(iter(prepared.values())).real
    assert worker.real == real, (worker.real, real)  # the same videos in both
    ref = np.array(times["reference"])
    rows = [{"implementation": f"official network in PyTorch {worker.info['torch']}, padded, float32",
             "real_snippets_per_s": real / np.median(ref), "step_s": np.median(ref) / 6,
             "real_frac": real / worker.convolved, "paired_ratio": 1.0,
             "vs_issue_figure": real / np.median(ref) / OFFICIAL_REAL_SNIPPETS_PER_S}]
    for name in prepared:
        t = np.array(times[name])
        rows.append({"implementation": name, "real_snippets_per_s": real / np.median(t), "step_s": np.median(t) / 6,
                     "real_frac": prepared[name].real / prepared[name].convolved,
                     "paired_ratio": float(np.median(ref / t)), "paired_ratio_min": float(np.min(ref / t)),
                     "paired_ratio_max": float(np.max(ref / t)),
                     "vs_issue_figure": real / np.median(t) / OFFICIAL_REAL_SNIPPETS_PER_S})
    rows.append({"implementation": f"{repeats} rounds, {real} real snippets per pass of 6 steps"})
    return rows


COLUMNS = ["implementation", "real_snippets_per_s", "step_s", "real_frac", "paired_ratio", "paired_ratio_min",
           "paired_ratio_max", "vs_issue_figure", "error"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(markdown_table(run(args.repeats), COLUMNS))


if __name__ == "__main__":
    main()

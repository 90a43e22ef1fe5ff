"""Paper Tables 3 and 4 on the default (THUMOS-shaped synthetic) dataset.

    python -m benchmarks.ablation --flagfile=configs/ablation_synthetic.flags --seeds 3

Trains each loss variant (ce, focal, dis, d2net, d2net_l1, d2net_bce) with every seed,
evaluates on the test split, and writes a Markdown table (mean +- std over seeds of mAP at
tIoU 0.1..0.7, average mAP, F1 at 0.5) beside the paper's published THUMOS14 numbers
(real data: the synthetic table is not expected to equal them). Finished runs are reused
(their results.json), so an interrupted ablation continues where it stopped.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from d2net_tf.cli import run_cli
from d2net_tf.cli.data_flags import dataset_from_flags
from d2net_tf.cli.training_flags import config_from_flags, define_training_flags, run_config_from_flags
from d2net_tf.data.loading import split_train_test
from d2net_tf.training import train_and_evaluate

define_training_flags()

flags.DEFINE_integer("seeds", 3, "Number of seeds per variant (seeds 0..N-1).")
flags.DEFINE_list("variants", ["ce", "focal", "dis", "d2net", "d2net_l1", "d2net_bce"], "Loss variants to train.")
flags.DEFINE_string("ablation_dir", "runs/ablation", "One model directory per variant and seed goes here.")
flags.DEFINE_string("table", "benchmarks/ABLATION.md", "Markdown table written here.")
FLAGS = flags.FLAGS

# Paper, THUMOS14 (real I3D features, W-TALC-family evaluation, selection on test):
# Table 3 (mAP at tIoU 0.1..0.5, F1 at 0.5) and Table 4 (mAP at 0.5).
PAPER = {
    "ce": {"mAP": [55.0, 47.6, 38.7, 30.7, 23.0], "F1": 23.5},
    "focal": {"mAP": [58.8, 52.4, 44.3, 35.7, 26.7], "F1": 27.2},
    "dis": {"mAP": [65.4, 59.7, 50.1, 40.4, 32.2], "F1": 30.7},
    "d2net": {"mAP": [65.7, 60.2, 52.3, 43.4, 36.0], "F1": 36.7},
    "d2net_l1": {"mAP@0.5": 32.9},
    "d2net_bce": {"mAP@0.5": 33.5},
}


def run_one(variant: str, seed: int, dataset) -> dict:
    model_dir = os.path.join(FLAGS.ablation_dir, f"{variant}-seed{seed}")
    path = os.path.join(model_dir, "results.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    train_set, test_set = split_train_test(dataset)
    cfg = config_from_flags(dataset.feature_dim, dataset.num_classes, {"loss": variant, "seed": seed})
    run = run_config_from_flags(model_dir, verbose=0)
    t0 = time.time()
    result = train_and_evaluate(cfg, run, train_set, test_set, log=lambda m: print(f"  [{variant} s{seed}] {m}", flush=True))
    at_05 = result["mAP"][[round(t, 6) for t in result["tiou_thresholds"]].index(0.5)]
    print(f"{variant} seed {seed}: mAP@0.5 {at_05:.4f} in {time.time() - t0:.0f} s", flush=True)
    return result


def summarize(results: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for variant, runs in results.items():
        maps = np.array([r["mAP"] for r in runs]) * 100
        avg = np.array([r["average_mAP"] for r in runs]) * 100
        f1 = np.array([r["f1_at_0.5"] for r in runs]) * 100
        rows.append({"variant": variant, "n": len(runs), "mAP_mean": maps.mean(0), "mAP_std": maps.std(0),
                     "avg_mean": avg.mean(), "avg_std": avg.std(), "f1_mean": f1.mean(), "f1_std": f1.std(),
                     "thresholds": runs[0]["tiou_thresholds"], "protocol": runs[0]["protocol"],
                     "selected_on": runs[0].get("selected_on")})
    return rows


def format_table(rows: list[dict], command: str) -> str:
    thr = rows[0]["thresholds"]
    head = "| loss | " + " | ".join(f"{t:g}" for t in thr) + " | avg | F1@0.5 | paper mAP 0.1-0.5 (real THUMOS14) | paper F1 |"
    lines = [head, "|" + "---|" * (len(thr) + 5)]
    for r in rows:
        cells = [f"{m:.1f} ± {s:.1f}" for m, s in zip(r["mAP_mean"], r["mAP_std"])]
        paper = PAPER.get(r["variant"], {})
        pm = " / ".join(f"{v:.1f}" for v in paper["mAP"]) if "mAP" in paper else (
            f"@0.5: {paper['mAP@0.5']:.1f}" if "mAP@0.5" in paper else "")
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + f" | {r['avg_mean']:.1f} ± {r['avg_std']:.1f} | "
                     f"{r['f1_mean']:.1f} ± {r['f1_std']:.1f} | {pm} | {paper.get('F1', '')} |")
    date = datetime.date.today().isoformat()
    return (f"Run on {date} with `{command}`: {rows[0]['n']} seeds per variant, mean ± std (%), "
            f"protocol `{rows[0]['protocol']}`, checkpoint selected on `{rows[0]['selected_on']}`, "
            "evaluated on the synthetic test split (212 videos). The paper columns are real-data THUMOS14 "
            "numbers for reference; the synthetic table is not expected to equal them.\n\n" + "\n".join(lines) + "\n")


@run_cli
def main(argv):
    del argv
    dataset = dataset_from_flags()
    results = {v: [run_one(v, s, dataset) for s in range(FLAGS.seeds)] for v in FLAGS.variants}
    command = "python -m benchmarks.ablation " + " ".join(sys.argv[1:])
    table = format_table(summarize(results), command)
    with open(FLAGS.table, "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    app.run(main)

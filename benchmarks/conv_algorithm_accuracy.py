"""What `--conv_algorithm=winograd` and bfloat16 inference change in a trained model's results.

    python -m benchmarks.conv_algorithm_accuracy --data_dir data/demo --model_dir runs/abl-fixed/*-seed*

Restores each MODEL_DIR's best checkpoint, evaluates it on its evaluation split of DATA_DIR (the model
directory's benchmark, protocol and localization) in float32 and mixed_bfloat16, each with the direct
and the Winograd convolution (the same weights), and prints a table: mAP@0.5, average mAP, their change
against float32 direct, and the largest TCAM difference from float32 direct over all snippets; with
several model directories, then the median and the largest |change| over them.
`benchmarks.test_split` times the same choices at D=2048 (random weights, so its mAP is no test).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks.common import machine_header, markdown_table
from d2net_tf.config import CONV_ALGORITHMS
from d2net_tf.data.loading import load_dataset, split_train_test
from d2net_tf.inference import default_tiou_thresholds, evaluate_predictions, predict_videos
from d2net_tf.model_dir import read_model_dir, restore_network
from d2net_tf.modeling import build_network
from d2net_tf.precision import dtype_policy


def network_in(precision: str, network, record):
    """`network`'s weights in a network built under `precision`."""
    if precision == "float32":
        return network
    with dtype_policy(precision):
        other = build_network(record.config.model, network.topk_divisor)
    other.set_weights(network.get_weights())
    return other


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, nargs="+")
    parser.add_argument("--data_dir", required=True, help="the data the model was trained on (W-TALC layout)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "latest"])
    args = parser.parse_args()
    print(machine_header())
    rows = [row for model_dir in args.model_dir for row in model_rows(model_dir, args.data_dir, args.checkpoint)]
    print(markdown_table(rows, ["model_dir", "precision", "conv_algorithm", "mAP@0.5", "average_mAP",
                                "mAP@0.5 change", "average change", "max |TCAM - fp32 direct|"]))
    if len(args.model_dir) > 1:
        summary = []
        for precision, algorithm in dict.fromkeys((r["precision"], r["conv_algorithm"]) for r in rows):
            sel = [r for r in rows if (r["precision"], r["conv_algorithm"]) == (precision, algorithm)]
            entry = {"precision": precision, "conv_algorithm": algorithm, "models": len(sel)}
            for key in ("mAP@0.5 change", "average change"):
                change = np.abs([r[key] for r in sel])
                entry[f"median |{key}|"], entry[f"max |{key}|"] = float(np.median(change)), float(change.max())
            summary.append(entry)
        print("over the model directories (points):")
        print(markdown_table(summary, list(summary[0])))


def model_rows(model_dir: str, data_dir: str, checkpoint: str) -> list[dict]:
    """One row per precision and convolution algorithm of MODEL_DIR on its evaluation split."""
    record = read_model_dir(model_dir)
    network, _ = restore_network(record, checkpoint)
    dataset = load_dataset(data_dir, record.dataset, feature_dim=record.config.model.feature_dim)
    _, test = split_train_test(dataset)
    loc = record.localization_for(None)
    protocol = record.run.get("protocol", "anet")
    rows, reference = [], None
    for precision in ("float32", "mixed_bfloat16"):
        net = network_in(precision, network, record)
        for algorithm in CONV_ALGORITHMS:
            predictions = list(predict_videos(net, test, conv_algorithm=algorithm))
            tcams = {v: t for v, t, _, _ in predictions}
            result, _ = evaluate_predictions(predictions, test, loc, protocol=protocol,
                                             tiou_thresholds=default_tiou_thresholds(test.name))
            at_05 = 100 * result["mAP"][[round(t, 6) for t in result["tiou_thresholds"]].index(0.5)]
            row = {"model_dir": f"{model_dir} ({checkpoint}, {protocol})", "precision": precision,
                   "conv_algorithm": algorithm, "mAP@0.5": at_05, "average_mAP": 100 * result["average_mAP"],
                   "tcams": tcams}
            reference = reference or row
            row["mAP@0.5 change"] = row["mAP@0.5"] - reference["mAP@0.5"]
            row["average change"] = row["average_mAP"] - reference["average_mAP"]
            row["max |TCAM - fp32 direct|"] = max(float(np.abs(t - reference["tcams"][v]).max())
                                                   for v, t in tcams.items())
            rows.append(row)
    for row in rows:
        del row["tcams"]
    return rows


if __name__ == "__main__":
    main()

"""Evaluating a detections file (ActivityNet results JSON) against a ground-truth file or folder."""

from __future__ import annotations

import os
from typing import Sequence

from d2net_tf.evaluation.ground_truth import GroundTruth, load_wtalc_ground_truth
from d2net_tf.evaluation.io import load_detections_json, load_ground_truth_json
from d2net_tf.evaluation.protocols import evaluate_detections


def load_ground_truth(path: str, subset: str | None = None) -> GroundTruth:
    """GroundTruth from an ActivityNet-style JSON file or a W-TALC annotation folder."""
    if os.path.isdir(path):
        return load_wtalc_ground_truth(path, subset)
    return load_ground_truth_json(path, subset=subset)


def evaluate_predictions_file(
    ground_truth: str,
    predictions: str,
    tiou_thresholds: Sequence[float],
    subset: str | None = None,
    protocol: str = "anet",
    remove_ambiguous: bool | None = None,
    wtalc_options: dict | None = None,
) -> dict:
    """`evaluate_detections` of the results JSON `predictions` against `ground_truth` (a file or a
    W-TALC folder, its `subset`); the result also names the two files and the subset."""
    gt = load_ground_truth(ground_truth, subset)
    det = load_detections_json(predictions, gt.classlist)
    result = evaluate_detections(gt, det, tiou_thresholds, protocol=protocol, remove_ambiguous=remove_ambiguous,
                                 **(wtalc_options or {}))
    result.update({"ground_truth": ground_truth, "predictions": predictions, "subset": subset})
    return result

"""Temporal action detection evaluation: mAP at tIoU thresholds, F1, classification mAP.

  ground_truth.py  GroundTruth (the evaluator's ground truth) and the official D2-Net THUMOS14
                   test_gt_segments.npy ground truth; ground truth of a W-TALC annotation folder
  matching.py      greedy one-to-one matching, vectorised over (video, class) groups and thresholds
  metrics.py       interpolated (ActivityNet) and W-TALC AP; video-level classification mAP
  protocols.py     evaluate_detections under the "anet" and "wtalc" protocols (the rules of each)
  io.py            ActivityNet-format JSON files of detections and ground truth
  predictions.py   evaluate_predictions_file: a detections file against a ground-truth file or folder
  tables.py        the Markdown results table

The names below are the package's public interface; import them from `d2net_tf.evaluation`.
"""

from d2net_tf.evaluation.ground_truth import (
    TEST_GT_SEGMENTS_FILE,
    WTALC_GROUND_TRUTH_SOURCES,
    GroundTruth,
    ground_truth_from_test_gt_segments,
    load_wtalc_ground_truth,
    load_wtalc_test_gt_segments,
    read_test_gt_segments,
)
from d2net_tf.evaluation.io import (
    ground_truth_from_dict,
    ground_truth_to_json,
    load_detections_json,
    load_ground_truth_json,
    write_detections_json,
)
from d2net_tf.evaluation.metrics import classification_map, interpolated_prec_rec
from d2net_tf.evaluation.predictions import evaluate_predictions_file, load_ground_truth
from d2net_tf.evaluation.protocols import PROTOCOLS, WTALC_AP_RULES, evaluate_detections
from d2net_tf.evaluation.tables import format_results_table
from d2net_tf.localization import Detections, segment_iou, temporal_iou

__all__ = [
    "Detections",
    "GroundTruth",
    "segment_iou",
    "temporal_iou",
    "PROTOCOLS",
    "WTALC_GROUND_TRUTH_SOURCES",
    "WTALC_AP_RULES",
    "TEST_GT_SEGMENTS_FILE",
    "read_test_gt_segments",
    "ground_truth_from_test_gt_segments",
    "load_wtalc_ground_truth",
    "load_wtalc_test_gt_segments",
    "interpolated_prec_rec",
    "classification_map",
    "evaluate_detections",
    "format_results_table",
    "write_detections_json",
    "load_detections_json",
    "load_ground_truth_json",
    "ground_truth_from_dict",
    "ground_truth_to_json",
    "load_ground_truth",
    "evaluate_predictions_file",
]

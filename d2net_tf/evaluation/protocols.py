"""Detection mAP at tIoU thresholds and F1 under the two evaluation protocols.

Two protocols:

* ``protocol="anet"`` (default) - ActivityNet's official detection evaluator
  (``Evaluation/eval_detection.py``, ``compute_average_precision_detection``):

  - per class, predictions sorted by descending score. Tie rule:
    ``np.argsort(-scores, kind="stable")``, i.e. equal scores keep their input
    order (the official code uses an unstable ``argsort()[::-1]``, whose tie
    order is unspecified);
  - each prediction is matched to the not-yet-matched ground truth (same video,
    same class) with the highest tIoU, provided tIoU >= threshold; otherwise it is
    a false positive. Ground truths with equal tIoU are taken in input order;
  - tIoU on continuous seconds (``localization.segment_iou``, shared by NMS);
  - AP = VOC-2011 interpolated area under precision/recall
    (``interpolated_prec_rec``); mAP = mean over the classes that have ground truth;
  - a prediction on a video without ground truth of its class is a false positive.

* ``protocol="wtalc"`` - the W-TALC-family evaluator (W-TALC, 3C-Net and the
  official D2-Net ``getLocMAP`` in ``detectionMAP.py``):

  - segments become snippet-index sets: ground truth and Ambiguous segments
    ``range(round(start * sps), round(end * sps))`` (Python / numpy half-to-even
    rounding, as the official code), predictions likewise (exact for detections on
    the snippet grid, such as those of ``localize_video``);
  - tIoU = |intersection| / |union| of the integer index sets;
  - per class, predictions sorted by descending score with the same stable tie
    rule as above (the official ``np.argsort(-score)`` is unstable);
  - a prediction is matched to the FIRST unmatched ground truth of its video (in
    ground-truth row order) with tIoU >= threshold;
  - predictions touching an Ambiguous segment (index-set intersection > 0) are
    dropped; predictions on videos without any ground-truth segment are dropped
    (the official code keeps only videos with temporal annotations in
    ``segments.npy``; `GroundTruth.wtalc_videos` when set);
  - mAP over the classes that have ground truth. Three named options
    (keywords of `evaluate_detections`, only read by this protocol):

    ``wtalc_ground_truth`` - which ground truth. ``"segments"`` (default): the
    ``segments.npy`` rows of `gt` (THUMOS14 test: 3,358 instances).
    ``"test_gt_segments"`` (official D2-Net): for THUMOS14 ``getDetections`` scores
    against ``Thumos14reduced-Annotations/test_gt_segments.npy`` (always the copy
    shipped with the official code; vendored here, byte-identical): 20 per-class
    lists of ``(videoname[11:], start fraction, end fraction)``, 3,234 instances
    on 210 of the 212 test videos, converted by ``getLocMAP`` to
    ``range(int(round(f_s * duration * 25 / 16)), int(round(f_e * duration * 25 / 16)))``
    with the video's ``duration.npy`` entry (`ground_truth_from_test_gt_segments`).
    Predictions on the two test videos without a row there still count (false
    positives), as in the official code.

    ``wtalc_ap`` - the AP rule. ``"precision_sum"`` (default; W-TALC's
    ``detectionMAP.py``): ``sum(precision at each true positive) / #ground truth``.
    ``"interpolated"`` (official D2-Net ``getLocMAP``): ``_ap_from_pr``, the
    VOC-interpolated area under precision/recall (`interpolated_prec_rec`). Both
    give 0 without any true positive.

    ``wtalc_class_counter_bug`` - ``getLocMAP`` reads class number ``num_c`` of its
    per-class lists, but increments ``num_c`` only for a class that has at least one
    prediction (after the Ambiguous filter). At the first class without a
    prediction the counter stops, every later class reads that same empty list,
    and so every class from there on scores AP 0 (whatever its own predictions).
    ``True`` reproduces this (official); ``False`` (default, our fix) scores each
    class on its own predictions, a class without predictions has AP 0. Classes
    are taken in class-index order, as ``templabelidx``.

Every result dict carries its ``protocol`` and ``ambiguous_removed``; numbers are
fractions in [0, 1] (the table prints percentages).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from d2net_tf.data.benchmarks import THUMOS14
from d2net_tf.errors import D2NetInputError
from d2net_tf.evaluation.ground_truth import (
    WTALC_GROUND_TRUTH_SOURCES,
    GroundTruth,
    ground_truth_from_test_gt_segments,
)
from d2net_tf.evaluation.matching import group_keys, match_detections, overlaps_ambiguous, snippet_index_ranges
from d2net_tf.evaluation.metrics import interpolated_ap_rows, wtalc_ap_rows
from d2net_tf.localization import Detections

PROTOCOLS = ("anet", "wtalc")
WTALC_AP_RULES = ("precision_sum", "interpolated")


def evaluate_detections(
    gt: GroundTruth,
    det: Detections,
    tiou_thresholds: Sequence[float] = THUMOS14.tiou_thresholds,
    protocol: str = "anet",
    remove_ambiguous: bool | None = None,
    *,
    wtalc_ground_truth: str = "segments",
    wtalc_ap: str = "precision_sum",
    wtalc_class_counter_bug: bool = False,
) -> dict[str, Any]:
    """mAP at each tIoU threshold, their averages, per-class AP and F1 at tIoU 0.5.

    Args:
      gt: GroundTruth of the split.
      det: Detections (seconds); class ids index `gt.classlist`.
      tiou_thresholds: a benchmark's `tiou_thresholds` (d2net_tf.data.benchmarks).
      protocol: "anet" (ActivityNet official) or "wtalc" (W-TALC getLocMAP); see the module doc.
      remove_ambiguous: drop predictions overlapping `gt.ambiguous` segments; None =
        automatic (on when the ground truth has Ambiguous segments, i.e. THUMOS14).
      wtalc_ground_truth: "segments" (default) or "test_gt_segments" (official D2-Net:
        `gt` is replaced by `ground_truth_from_test_gt_segments(gt)` unless it already
        is such ground truth). "wtalc" protocol only; see the module doc.
      wtalc_ap: "precision_sum" (default, W-TALC) or "interpolated" (official D2-Net
        getLocMAP). "wtalc" protocol only.
      wtalc_class_counter_bug: reproduce getLocMAP's class counter (True, official:
        from the first class without predictions on, every class has AP 0) or not
        (False, default). "wtalc" protocol only.
    Returns:
      dict with protocol, tiou_thresholds, mAP (list), average_mAP (over all given
      thresholds), average_mAP_0.1_0.5 / average_mAP_0.1_0.7 (when those thresholds
      are all present), ap_per_class (name -> list), f1_at_0.5, precision_at_0.5,
      recall_at_0.5, ambiguous_removed, num_videos, num_ground_truth,
      num_predictions (evaluated), num_predictions_dropped; for "wtalc" also
      wtalc_ground_truth, wtalc_ap, wtalc_class_counter_bug and
      classes_zeroed_by_counter_bug (names).
    """
    if protocol not in PROTOCOLS:
        raise D2NetInputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if wtalc_ground_truth not in WTALC_GROUND_TRUTH_SOURCES:
        raise D2NetInputError(
            f"wtalc_ground_truth must be one of {WTALC_GROUND_TRUTH_SOURCES}, got {wtalc_ground_truth!r}"
        )
    if wtalc_ap not in WTALC_AP_RULES:
        raise D2NetInputError(f"wtalc_ap must be one of {WTALC_AP_RULES}, got {wtalc_ap!r}")
    if protocol == "wtalc" and wtalc_ground_truth != gt.source:
        if gt.source != "segments":
            raise D2NetInputError(
                f"wtalc_ground_truth={wtalc_ground_truth!r}, but `gt` was built from {gt.source}"
            )
        gt = ground_truth_from_test_gt_segments(gt)
    thresholds = np.asarray([float(t) for t in tiou_thresholds], dtype=np.float64)
    if thresholds.size == 0 or not np.all((thresholds > 0) & (thresholds <= 1)):
        raise D2NetInputError(f"tiou_thresholds must be non-empty values in (0, 1], got {list(tiou_thresholds)}")
    num_classes = len(gt.classlist)
    if len(det) and (det.class_ids.min() < 0 or det.class_ids.max() >= num_classes):
        raise D2NetInputError(
            f"detections: class ids must be in [0, {num_classes}), got range "
            f"[{det.class_ids.min()}, {det.class_ids.max()}]"
        )
    if len(det) and not np.isfinite(det.scores).all():
        raise D2NetInputError("detections: scores contain NaN/inf")

    if remove_ambiguous is None:
        remove_ambiguous = bool(gt.ambiguous)
    n_in = len(det)
    if remove_ambiguous:
        det = det.select(~overlaps_ambiguous(det, gt, protocol))
    videos = gt.video_list
    video_index = {v: i for i, v in enumerate(videos)}
    if protocol == "wtalc":
        with_gt = set(gt.wtalc_videos) if gt.wtalc_videos is not None else set(gt.video_ids.tolist())
        det = det.select(np.isin(det.video_ids, list(with_gt))) if len(det) else det

    # Internal thresholds: the requested ones plus 0.5 for F1.
    all_thr = thresholds if np.any(np.isclose(thresholds, 0.5)) else np.append(thresholds, 0.5)
    i_half = int(np.flatnonzero(np.isclose(all_thr, 0.5))[0])

    gt_key, _ = group_keys(gt.video_ids, gt.class_ids, video_index)
    pred_key, pvid = group_keys(det.video_ids, det.class_ids, video_index)
    pred_key = np.where(pvid < 0, -1, pred_key)  # unknown video: never matches
    if protocol == "wtalc":
        gs, ge = snippet_index_ranges(gt.starts, gt.ends, gt.snippets_per_second)
        ps, pe = snippet_index_ranges(det.starts, det.ends, gt.snippets_per_second)
    else:
        gs, ge, ps, pe = gt.starts, gt.ends, det.starts, det.ends
    tp = match_detections(gt_key, gs, ge, pred_key, ps, pe, det.scores, all_thr, protocol)

    # Per-class AP.
    interpolated = protocol == "anet" or wtalc_ap == "interpolated"
    ap_rows = interpolated_ap_rows if interpolated else wtalc_ap_rows
    counter_bug = protocol == "wtalc" and wtalc_class_counter_bug
    gt_classes = np.unique(gt.class_ids)
    ap = np.zeros((len(gt_classes), len(all_thr)))
    zeroed: list[str] = []
    for row, c in enumerate(gt_classes):
        sel = np.flatnonzero(det.class_ids == c)
        if counter_bug and (zeroed or sel.size == 0):
            zeroed.append(gt.classlist[c])  # getLocMAP's num_c has stopped: AP 0
            continue
        sel = sel[np.argsort(-det.scores[sel], kind="stable")]
        ap[row] = ap_rows(tp[:, sel].astype(np.float64), int(np.sum(gt.class_ids == c)))
    mean_ap = ap.mean(axis=0) if len(gt_classes) else np.zeros(len(all_thr))

    n_tp = int(tp[i_half].sum())
    precision = n_tp / len(det) if len(det) else 0.0
    recall = n_tp / len(gt) if len(gt) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0

    k = len(thresholds)
    result: dict[str, Any] = {
        "protocol": protocol,
        "tiou_thresholds": [float(t) for t in thresholds],
        "mAP": [float(x) for x in mean_ap[:k]],
        "average_mAP": float(mean_ap[:k].mean()),
    }
    for lo, hi in ((0.1, 0.5), (0.1, 0.7)):
        wanted = np.round(np.arange(lo, hi + 1e-9, 0.1), 10)
        idx = [int(np.flatnonzero(np.isclose(thresholds, w))[0]) for w in wanted if np.isclose(thresholds, w).any()]
        if len(idx) == len(wanted):
            result[f"average_mAP_{lo}_{hi}"] = float(mean_ap[idx].mean())
    result.update(
        {
            "ap_per_class": {gt.classlist[c]: [float(x) for x in ap[r, :k]] for r, c in enumerate(gt_classes)},
            "f1_at_0.5": float(f1),
            "precision_at_0.5": float(precision),
            "recall_at_0.5": float(recall),
            "ambiguous_removed": bool(remove_ambiguous),
            "num_videos": len(videos),
            "num_ground_truth": int(len(gt)),
            "num_predictions": int(len(det)),
            "num_predictions_dropped": int(n_in - len(det)),
        }
    )
    if protocol == "wtalc":
        result.update(
            {
                "wtalc_ground_truth": gt.source,
                "wtalc_ap": wtalc_ap,
                "wtalc_class_counter_bug": bool(wtalc_class_counter_bug),
                "classes_zeroed_by_counter_bug": zeroed,
            }
        )
    return result

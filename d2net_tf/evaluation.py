"""Temporal action detection evaluation: mAP at tIoU thresholds, F1, classification mAP.

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

import dataclasses
import functools
import math
import os
from typing import Any, Sequence

import numpy as np

import d2net_tf
from d2net_tf.jsonio import read_json, write_json_atomic
from d2net_tf.data.ground_truth_json import (
    GroundTruthTable,
    ground_truth_document,
    parse_ground_truth,
    parse_segment,
)
from d2net_tf.errors import DataFormatError, D2NetInputError
from d2net_tf.localization import Detections, segment_iou, temporal_iou

__all__ = [
    "Detections",
    "GroundTruth",
    "segment_iou",
    "temporal_iou",
    "THUMOS14_TIOU_THRESHOLDS",
    "ACTIVITYNET_TIOU_THRESHOLDS",
    "PROTOCOLS",
    "WTALC_GROUND_TRUTH_SOURCES",
    "WTALC_AP_RULES",
    "read_test_gt_segments",
    "ground_truth_from_test_gt_segments",
    "interpolated_prec_rec",
    "classification_map",
    "evaluate_detections",
    "format_results_table",
    "write_detections_json",
    "load_detections_json",
    "load_ground_truth_json",
    "ground_truth_to_json",
]

THUMOS14_TIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
ACTIVITYNET_TIOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
PROTOCOLS = ("anet", "wtalc")
WTALC_GROUND_TRUTH_SOURCES = ("segments", "test_gt_segments")
WTALC_AP_RULES = ("precision_sum", "interpolated")
TEST_GT_SEGMENTS_FILE = "test_gt_segments.npy"
# getDetections maps a test_gt_segments.npy row to its video by `videoname[k][11:]`
# ("video_test_0000890" -> "0000890").
_TEST_GT_NAME_OFFSET = len("video_test_")


# --------------------------------------------------------------------------- #
# Ground truth
# --------------------------------------------------------------------------- #
@dataclasses.dataclass
class GroundTruth(GroundTruthTable):
    """Temporal ground truth of one split, as the evaluator reads it.

    The table's attributes (`GroundTruthTable`: video_ids, class_ids, starts, ends,
    classlist, ambiguous, durations, snippets_per_second, subsets), and:
      source: where the segments come from: "segments" (segments.npy / JSON) or
        "test_gt_segments" (`ground_truth_from_test_gt_segments`).
      wtalc_videos: the videos whose predictions the "wtalc" protocol keeps, or None
        (= the videos with a segment). Set for "test_gt_segments" ground truth: the
        official code keeps the videos with segments in segments.npy.
    """

    source: str = "segments"
    wtalc_videos: list[str] | None = None

    def __post_init__(self):
        if self.source not in WTALC_GROUND_TRUTH_SOURCES:
            raise D2NetInputError(f"GroundTruth: source must be one of {WTALC_GROUND_TRUTH_SOURCES}, got {self.source!r}")
        if self.wtalc_videos is not None:
            self.wtalc_videos = [str(v) for v in self.wtalc_videos]
        super().__post_init__()


def read_test_gt_segments(path: str | None = None) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    """The per-class rows of a W-TALC ``test_gt_segments.npy``: ``(video suffix, start, end)``.

    `path` None reads the vendored THUMOS14 copy (the file the official code always
    reads). Start / end are fractions of the video's duration. Read through the
    restricted unpickler; cached per path.
    """
    from d2net_tf.data.wtalc import vendored_annotation_dir  # lazy: the data package is optional here

    if path is None:
        path = os.path.join(vendored_annotation_dir("Thumos14reduced"), TEST_GT_SEGMENTS_FILE)
    return _read_test_gt_segments(os.path.abspath(path))


@functools.lru_cache(maxsize=4)
def _read_test_gt_segments(path: str) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    from d2net_tf.data.safe_npy import load_npy

    if not os.path.exists(path):
        raise DataFormatError(f"{path}: file not found (the W-TALC test_gt_segments ground truth)")
    arr = load_npy(path)
    if arr.dtype != object or arr.ndim != 1:
        raise DataFormatError(f"{path}: expected a 1-D object array of per-class [n, 3] arrays, got {arr.dtype} {arr.shape}")
    out = []
    for k, rows in enumerate(arr):
        parsed = []
        for i, row in enumerate(rows):
            try:
                name, f_s, f_e = row
                name = name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)
                f_s, f_e = float(f_s), float(f_e)
            except (TypeError, ValueError):
                raise DataFormatError(f"{path}: class {k}, row {i}: expected (video, start, end), got {row!r}") from None
            if not (math.isfinite(f_s) and math.isfinite(f_e)):
                raise DataFormatError(f"{path}: class {k}, row {i}: NaN/inf in {row!r}")
            parsed.append((name, f_s, f_e))
        out.append(tuple(parsed))
    return tuple(out)


def ground_truth_from_test_gt_segments(
    base: GroundTruth,
    per_class: Sequence[Sequence[tuple[str, float, float]]] | None = None,
    source: str = TEST_GT_SEGMENTS_FILE,
) -> GroundTruth:
    """The official D2-Net THUMOS14 ground truth (``getDetections`` / ``getLocMAP``) on `base`'s videos.

    Args:
      base: ground truth of the split from segments.npy (`GroundTruth.from_dataset` of
        the test subset). Gives the videos, their durations (seconds), the Ambiguous
        segments and the classlist.
      per_class: rows of class k = `base.classlist[k]`, as `read_test_gt_segments`
        returns them; None = the vendored THUMOS14 file.
      source: names the rows in error messages.
    Returns:
      GroundTruth with one row per test_gt_segments instance (class-major, file order),
      start / end = fraction x duration seconds (the "wtalc" protocol then takes
      ``round(seconds x snippets_per_second)``, the official ``round(f x duration x
      25 / 16)`` bit for bit), `source` "test_gt_segments" and `wtalc_videos` = the
      videos of `base` with a segment.
    Raises:
      D2NetInputError: a row names a video that is not a video of `base` with a
        segment (e.g. a validation split, or the tiny synthetic set), or the class
        count or durations do not fit.
    """
    if base.source != "segments":
        raise D2NetInputError("ground_truth_from_test_gt_segments: `base` must be segments.npy ground truth")
    if per_class is None:
        per_class = read_test_gt_segments()
    if len(per_class) != len(base.classlist):
        raise D2NetInputError(
            f"{source}: {len(per_class)} classes, but the ground truth has {len(base.classlist)}; "
            f"test_gt_segments applies to THUMOS14 (20 classes)"
        )
    with_segments = set(base.video_ids.tolist())
    videos = [v for v in base.video_list if v in with_segments]
    by_suffix: dict[str, str] = {}
    for v in videos:
        key = v[_TEST_GT_NAME_OFFSET:]
        if key in by_suffix:
            raise D2NetInputError(f"{source}: videos {by_suffix[key]!r} and {v!r} share the name suffix {key!r}")
        by_suffix[key] = v
    durations = base.durations or {}
    rows: list[tuple[str, int, float, float]] = []
    missing: set[str] = set()
    for k, class_rows in enumerate(per_class):
        for name, f_s, f_e in class_rows:
            vid = by_suffix.get(name)
            if vid is None:
                missing.add(name)
                continue
            d = float(durations.get(vid, float("nan")))
            if not math.isfinite(d):
                raise D2NetInputError(f"{source}: video {vid!r} has no finite duration in the ground truth")
            rows.append((vid, k, float(f_s) * d, float(f_e) * d))
    if missing:
        names = sorted(missing)
        raise D2NetInputError(
            f"{source}: {len(names)} referenced videos (e.g. {', '.join(names[:3])}) are not among the "
            f"{len(videos)} videos with segments of this ground truth; test_gt_segments applies only to the "
            f"212 THUMOS14 test videos at their real durations"
        )
    return GroundTruth(
        video_ids=np.array([r[0] for r in rows], dtype=str),
        class_ids=np.array([r[1] for r in rows], dtype=np.int32),
        starts=np.array([r[2] for r in rows], dtype=np.float64),
        ends=np.array([r[3] for r in rows], dtype=np.float64),
        classlist=list(base.classlist),
        ambiguous=dict(base.ambiguous),
        durations=dict(base.durations) if base.durations is not None else None,
        snippets_per_second=base.snippets_per_second,
        subsets=dict(base.subsets) if base.subsets is not None else None,
        source="test_gt_segments",
        wtalc_videos=videos,
    )


# --------------------------------------------------------------------------- #
# AP helpers
# --------------------------------------------------------------------------- #
def interpolated_prec_rec(prec: np.ndarray, rec: np.ndarray) -> float:
    """VOC-2011 interpolated AP, exactly ActivityNet's `interpolated_prec_rec`."""
    mprec = np.concatenate([[0.0], np.asarray(prec, np.float64), [0.0]])
    mrec = np.concatenate([[0.0], np.asarray(rec, np.float64), [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def _interpolated_ap_rows(tp: np.ndarray, npos: int) -> np.ndarray:
    """Interpolated AP of each row of `tp` [T, n] (predictions already sorted)."""
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_c = np.cumsum(1.0 - tp, axis=1)
    rec = tp_c / npos
    prec = tp_c / (tp_c + fp_c)
    for i in range(tp.shape[0]):
        out[i] = interpolated_prec_rec(prec[i], rec[i])
    return out


def _wtalc_ap_rows(tp: np.ndarray, npos: int) -> np.ndarray:
    """W-TALC AP: sum(precision at each TP) / npos; 0 without any TP."""
    out = np.zeros(tp.shape[0])
    if npos == 0 or tp.shape[1] == 0:
        return out
    tp_c = np.cumsum(tp, axis=1, dtype=np.float64)
    prec = tp_c / np.arange(1, tp.shape[1] + 1)
    return np.sum(prec * tp, axis=1) / npos


def classification_map(scores: np.ndarray, labels: np.ndarray) -> float:
    """Video-level classification mAP.

    Per class, videos sorted by descending score (stable); AP = mean precision at
    the positives; mean over the classes with at least one positive.

    Args:
      scores: [N, C] float.
      labels: [N, C] multi-hot (nonzero = positive).
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels) > 0
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise D2NetInputError(
            f"classification_map: scores and labels must both be [N, C], got {scores.shape} and {labels.shape}"
        )
    if not np.isfinite(scores).all():
        raise D2NetInputError("classification_map: scores contain NaN/inf")
    order = np.argsort(-scores, axis=0, kind="stable")
    tp = np.take_along_axis(labels, order, axis=0).astype(np.float64)
    npos = tp.sum(axis=0)
    prec = np.cumsum(tp, axis=0) / np.arange(1, scores.shape[0] + 1)[:, None]
    valid = npos > 0
    if not valid.any():
        return float("nan")
    ap = (prec * tp).sum(axis=0)[valid] / npos[valid]
    return float(ap.mean())


# --------------------------------------------------------------------------- #
# Matching
# --------------------------------------------------------------------------- #
def _index_ranges(starts: np.ndarray, ends: np.ndarray, sps: float) -> tuple[np.ndarray, np.ndarray]:
    """Snippet-index ranges [round(s * sps), round(e * sps)) (half-to-even, as Python round)."""
    return np.round(starts * sps), np.round(ends * sps)


def _match(
    gt_key: np.ndarray,
    gt_s: np.ndarray,
    gt_e: np.ndarray,
    pred_key: np.ndarray,
    pred_s: np.ndarray,
    pred_e: np.ndarray,
    pred_scores: np.ndarray,
    thresholds: np.ndarray,
    protocol: str,
) -> np.ndarray:
    """True-positive flags [T, n_pred] of the greedy one-to-one matching.

    Matching is independent per (video, class) group, so all groups advance
    together: step r matches the r-th best prediction of every group at once,
    for all thresholds. The loop length is the largest number of predictions in
    one group. Predictions within a group are taken by descending score, ties in
    input order (the global stable order restricted to the group).
    """
    n_pred = len(pred_key)
    n_thr = len(thresholds)
    tp = np.zeros((n_thr, n_pred), dtype=bool)
    if n_pred == 0 or len(gt_key) == 0:
        return tp
    # Group ground truth by key, keeping input order inside a group.
    gorder = np.argsort(gt_key, kind="stable")
    gkeys, gstart, gcount = np.unique(gt_key[gorder], return_index=True, return_counts=True)
    pos = np.searchsorted(gkeys, pred_key)
    pos_c = np.minimum(pos, len(gkeys) - 1)
    has_gt = (pos < len(gkeys)) & (gkeys[pos_c] == pred_key)
    pidx = np.flatnonzero(has_gt)
    if pidx.size == 0:
        return tp
    group = pos_c[pidx]
    # Groups are bucketed by their number of ground truths (powers of two) so the
    # padded [n_candidates, max_g] tIoU matrices stay small.
    bucket_of_group = np.ceil(np.log2(gcount)).astype(np.int64)
    for bucket in np.unique(bucket_of_group):
        in_bucket = bucket_of_group[group] == bucket
        if not in_bucket.any():
            continue
        _match_padded(
            tp, pidx[in_bucket], group[in_bucket], gorder, gstart, gcount,
            gt_s, gt_e, pred_s, pred_e, pred_scores, thresholds, protocol,
        )
    return tp


def _match_padded(
    tp, pidx, group, gorder, gstart, gcount, gt_s, gt_e, pred_s, pred_e, pred_scores, thresholds, protocol
) -> None:
    """Greedy matching of the candidates `pidx` (groups `group`); writes into `tp` [T, n_pred]."""
    groups, group = np.unique(group, return_inverse=True)
    gstart, gcount = gstart[groups], gcount[groups]
    n_thr = len(thresholds)
    # Padded ground truth per group: [n_groups, max_g].
    max_g = int(gcount.max())
    slot = np.arange(max_g)
    valid = slot[None, :] < gcount[:, None]
    gt_rows = gorder[np.where(valid, gstart[:, None] + slot[None, :], 0)]
    gs_pad = gt_s[gt_rows]
    ge_pad = gt_e[gt_rows]
    # tIoU of each candidate prediction with its group's ground truth: [n_cand, max_g].
    iou = segment_iou(pred_s[pidx, None], pred_e[pidx, None], gs_pad[group], ge_pad[group])
    iou = np.where(valid[group], iou, -1.0)
    # Only predictions that reach the lowest threshold can ever match.
    reach = iou.max(axis=1) >= thresholds.min()
    pidx, group, iou = pidx[reach], group[reach], iou[reach]
    if pidx.size == 0:
        return
    # Rank of each candidate inside its group (score descending, stable).
    order = np.argsort(-pred_scores[pidx], kind="stable")
    order = order[np.argsort(group[order], kind="stable")]
    sorted_group = group[order]
    first = np.searchsorted(sorted_group, sorted_group, side="left")
    rank = np.empty(pidx.size, np.int64)
    rank[order] = np.arange(pidx.size) - first
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.flatnonzero(np.diff(rank[by_rank])) + 1
    locked = np.zeros((n_thr, len(groups), max_g), dtype=bool)
    thr = thresholds[:, None, None]
    t_rows = np.arange(n_thr)[:, None]
    a_cols = np.arange(len(groups))[None, :]  # at most one candidate per group and step
    for step in np.split(by_rank, bounds):
        g = group[step]
        io = iou[step]  # [a, max_g]
        avail = (io[None] >= thr) & ~locked[:, g, :]  # [T, a, max_g]
        if protocol == "anet":
            j = np.argmax(np.where(avail, io[None], -np.inf), axis=2)  # best tIoU, first on ties
        else:
            j = np.argmax(avail, axis=2)  # first ground truth in order
        hit = avail[t_rows, a_cols[:, : step.size], j]  # [T, a]: is the chosen slot available?
        ti, ai = np.nonzero(hit)
        locked[ti, g[ai], j[ti, ai]] = True
        tp[ti, pidx[step[ai]]] = True


def _key(
    video_ids: np.ndarray, class_ids: np.ndarray, video_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(video, class) group keys and video indices (-1 for videos outside the split)."""
    vid = np.array([video_index.get(v, -1) for v in video_ids.tolist()], dtype=np.int64)
    return vid * 100003 + class_ids.astype(np.int64), vid


def _overlaps_ambiguous(det: Detections, gt: GroundTruth, protocol: str) -> np.ndarray:
    """Mask of predictions overlapping an Ambiguous segment of their video."""
    drop = np.zeros(len(det), dtype=bool)
    if not gt.ambiguous or len(det) == 0:
        return drop
    sps = gt.snippets_per_second
    for vid, amb in gt.ambiguous.items():
        sel = np.flatnonzero(det.video_ids == vid)
        if sel.size == 0 or amb.size == 0:
            continue
        if protocol == "wtalc":
            ps, pe = _index_ranges(det.starts[sel], det.ends[sel], sps)
            as_, ae = _index_ranges(amb[:, 0], amb[:, 1], sps)
        else:
            ps, pe, as_, ae = det.starts[sel], det.ends[sel], amb[:, 0], amb[:, 1]
        inter = np.minimum(pe[:, None], ae[None]) - np.maximum(ps[:, None], as_[None])
        drop[sel] = (inter > 0).any(axis=1)
    return drop


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #
def evaluate_detections(
    gt: GroundTruth,
    det: Detections,
    tiou_thresholds: Sequence[float] = THUMOS14_TIOU_THRESHOLDS,
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
      tiou_thresholds: e.g. THUMOS14_TIOU_THRESHOLDS or ACTIVITYNET_TIOU_THRESHOLDS.
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
        det = det.select(~_overlaps_ambiguous(det, gt, protocol))
    videos = gt.video_list
    video_index = {v: i for i, v in enumerate(videos)}
    if protocol == "wtalc":
        with_gt = set(gt.wtalc_videos) if gt.wtalc_videos is not None else set(gt.video_ids.tolist())
        det = det.select(np.isin(det.video_ids, list(with_gt))) if len(det) else det

    # Internal thresholds: the requested ones plus 0.5 for F1.
    all_thr = thresholds if np.any(np.isclose(thresholds, 0.5)) else np.append(thresholds, 0.5)
    i_half = int(np.flatnonzero(np.isclose(all_thr, 0.5))[0])

    gt_key, _ = _key(gt.video_ids, gt.class_ids, video_index)
    pred_key, pvid = _key(det.video_ids, det.class_ids, video_index)
    pred_key = np.where(pvid < 0, -1, pred_key)  # unknown video: never matches
    if protocol == "wtalc":
        gs, ge = _index_ranges(gt.starts, gt.ends, gt.snippets_per_second)
        ps, pe = _index_ranges(det.starts, det.ends, gt.snippets_per_second)
    else:
        gs, ge, ps, pe = gt.starts, gt.ends, det.starts, det.ends
    tp = _match(gt_key, gs, ge, pred_key, ps, pe, det.scores, all_thr, protocol)

    # Per-class AP.
    interpolated = protocol == "anet" or wtalc_ap == "interpolated"
    ap_rows = _interpolated_ap_rows if interpolated else _wtalc_ap_rows
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


def format_results_table(result: dict[str, Any]) -> str:
    """A Markdown table of mAP (%) per tIoU threshold plus averages, with the protocol stated."""
    thr = result["tiou_thresholds"]
    head = ["tIoU"] + [f"{t:g}" for t in thr] + ["avg"]
    vals = ["mAP (%)"] + [f"{100 * m:.2f}" for m in result["mAP"]] + [f"{100 * result['average_mAP']:.2f}"]
    lines = [
        f"protocol: {result['protocol']} | ambiguous removed: {result['ambiguous_removed']} | "
        f"videos: {result['num_videos']} | ground truth: {result.get('num_ground_truth', '?')} | "
        f"predictions: {result['num_predictions']}"
        + (
            f" | wtalc ground truth: {result['wtalc_ground_truth']} | AP: {result['wtalc_ap']} | "
            f"class-counter bug: {result['wtalc_class_counter_bug']}"
            if "wtalc_ground_truth" in result
            else ""
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        "| " + " | ".join(vals) + " |",
        "",
    ]
    for key in ("average_mAP_0.1_0.5", "average_mAP_0.1_0.7"):
        if key in result:
            lines.append(f"{key}: {100 * result[key]:.2f}")
    lines.append(
        f"F1@0.5: {100 * result['f1_at_0.5']:.2f} (precision {100 * result['precision_at_0.5']:.2f}, "
        f"recall {100 * result['recall_at_0.5']:.2f})"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# JSON I/O (ActivityNet format)
# --------------------------------------------------------------------------- #
def write_detections_json(path: str, detections: Detections, classlist: Sequence[str]) -> None:
    """Writes ActivityNet-format results: {"version", "results": {vid: [...]}, "external_data"}."""
    results: dict[str, list] = {}
    for v, c, s, e, x in zip(
        detections.video_ids.tolist(),
        detections.class_ids.tolist(),
        detections.starts.tolist(),
        detections.ends.tolist(),
        detections.scores.tolist(),
    ):
        results.setdefault(v, []).append({"label": classlist[c], "segment": [s, e], "score": x})
    payload = {"version": f"d2net-tf {d2net_tf.__version__}", "results": results, "external_data": {}}
    write_json_atomic(path, payload)


def load_detections_json(path: str, classlist: Sequence[str]) -> Detections:
    """Reads ActivityNet-format results (any producer). Labels must be in `classlist`."""
    data = read_json(path)
    if not isinstance(data, dict) or "results" not in data:
        raise DataFormatError(f"{path}: missing key 'results' (expected ActivityNet results JSON)")
    results = data["results"]
    if not isinstance(results, dict):
        raise DataFormatError(f"{path}: 'results' must be an object {{video_id: [...]}}, got {type(results).__name__}")
    index = {c: i for i, c in enumerate(classlist)}
    vids, cls, st, en, sc = [], [], [], [], []
    for vid, items in results.items():
        if not isinstance(items, list):
            raise DataFormatError(f"{path}: results[{vid!r}]: expected a list, got {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"results[{vid!r}][{i}]"
            if not isinstance(item, dict):
                raise DataFormatError(f"{path}: {where}: expected an object, got {type(item).__name__}")
            for key in ("label", "segment", "score"):
                if key not in item:
                    raise DataFormatError(f"{path}: {where}: missing key {key!r}")
            label = str(item["label"])
            if label not in index:
                raise DataFormatError(f"{path}: {where}.label: unknown label {label!r}")
            s, e = parse_segment(path, where, item["segment"])
            try:
                score = float(item["score"])
            except (TypeError, ValueError):
                raise DataFormatError(f"{path}: {where}.score: expected a number, got {item['score']!r}") from None
            if not math.isfinite(score):
                raise DataFormatError(f"{path}: {where}.score: NaN/inf score")
            vids.append(str(vid))
            cls.append(index[label])
            st.append(s)
            en.append(e)
            sc.append(score)
    if not vids:
        return Detections.empty()
    return Detections(np.array(vids, dtype=str), cls, st, en, sc)


def load_ground_truth_json(
    path: str, subset: str | None = None, classlist: Sequence[str] | None = None
) -> GroundTruth:
    """Reads ActivityNet-style ground truth `{"database": {vid: {"subset", "duration", "annotations"}}}`.

    Classlist: `classlist` if given, else a top-level "classlist" list (written by
    `ground_truth_to_json`), else the sorted unique labels. Extensions read when
    present: per-video "ambiguous": [[s, e], ...] and top-level "snippets_per_second".
    """
    return ground_truth_from_dict(read_json(path), path, subset, classlist)


def ground_truth_from_dict(
    data: Any, path: str, subset: str | None = None, classlist: Sequence[str] | None = None
) -> GroundTruth:
    """`load_ground_truth_json` of already-parsed JSON `data`; `path` names the source in errors."""
    return GroundTruth(**parse_ground_truth(data, path, subset, classlist).table_fields())


def ground_truth_to_json(gt: GroundTruth, subset: str | None = None) -> dict[str, Any]:
    """ActivityNet-style ground-truth dict of `gt` (inverse of `load_ground_truth_json`)."""
    return ground_truth_document(gt, subset)

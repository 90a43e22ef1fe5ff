"""Greedy one-to-one matching of detections to ground truth, vectorised over (video, class)
groups and tIoU thresholds, and the Ambiguous-segment filter."""

from __future__ import annotations

import numpy as np

from d2net_tf.evaluation.ground_truth import GroundTruth
from d2net_tf.localization import Detections, segment_iou


def snippet_index_ranges(starts: np.ndarray, ends: np.ndarray, sps: float) -> tuple[np.ndarray, np.ndarray]:
    """Snippet-index ranges [round(s * sps), round(e * sps)) (half-to-even, as Python round)."""
    return np.round(starts * sps), np.round(ends * sps)


def match_detections(
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
        _match_bucket(
            tp, pidx[in_bucket], group[in_bucket], gorder, gstart, gcount,
            gt_s, gt_e, pred_s, pred_e, pred_scores, thresholds, protocol,
        )
    return tp


def _match_bucket(
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


def group_keys(
    video_ids: np.ndarray, class_ids: np.ndarray, video_index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(video, class) group keys and video indices (-1 for videos outside the split)."""
    vid = np.array([video_index.get(v, -1) for v in video_ids.tolist()], dtype=np.int64)
    return vid * 100003 + class_ids.astype(np.int64), vid


def overlaps_ambiguous(det: Detections, gt: GroundTruth, protocol: str) -> np.ndarray:
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
            ps, pe = snippet_index_ranges(det.starts[sel], det.ends[sel], sps)
            as_, ae = snippet_index_ranges(amb[:, 0], amb[:, 1], sps)
        else:
            ps, pe, as_, ae = det.starts[sel], det.ends[sel], amb[:, 0], amb[:, 1]
        inter = np.minimum(pe[:, None], ae[None]) - np.maximum(ps[:, None], as_[None])
        drop[sel] = (inter > 0).any(axis=1)
    return drop

"""Temporal action localization from a TCAM and bottom-up attention (D2-Net, Sec. 3.3).

Numpy only: this is the post-processing that turns the network outputs of one
video into scored action segments, and it is shared by evaluation and serving
code that must not import TensorFlow. Its graph twin is `tf_ops.localize_tf`.

Units: a video has `s` snippets; snippet `i` covers `[i / sps, (i + 1) / sps)`
seconds (`sps` = snippets per second, 25 / 16 for the W-TALC I3D features), so a
proposal made of snippets `[a, b)` (end exclusive) is the segment
`[a / sps, b / sps]` seconds and every segment lies in `[0, s / sps]`.

Algorithm (paper Sec. 3.3), for one video with TCAM `T [s, C]` and bottom-up
attention `lambda' [s]`:

1. `p_c` = mean of the top `k = ceil(s / topk_divisor)` values of `T[:, c]`.
2. Relevant classes: `p_c > class_threshold_ratio * max(p)`.
3. Refined sequence `r_c = lambda' * T[:, c]`.
4. For every threshold, the 1-D connected components of `r_c > threshold` are
   proposals.
5. Proposal score: outer-inner contrast `S = mean(r_c inside) - mean(r_c outside)`,
   the outside being `inflation` snippets on each side, clipped at the video ends.
6. Class-wise NMS at `nms_tiou`; keep detections with
   `S > final_score_ratio * max S` (max over all of the video's proposals).

Deviations of the official D2-Net code are named options of
`LocalizationConfig`; `LocalizationConfig.official()` selects them.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.errors import D2NetInputError
from d2net_tf.localization.config import LocalizationConfig
from d2net_tf.localization.detections import Detections
from d2net_tf.scores import topk_mean


# --------------------------------------------------------------------------- #
# tIoU and NMS (shared with evaluation)
# --------------------------------------------------------------------------- #
def segment_iou(s1, e1, s2, e2) -> np.ndarray:
    """Temporal IoU of segments [s1, e1] and [s2, e2], elementwise with broadcasting.

    The one tIoU formula of the package (continuous intervals, as ActivityNet's
    `segment_iou`): `inter = max(0, min(e1, e2) - max(s1, s2))`,
    `union = len1 + len2 - inter` (negative lengths count as 0); IoU 0 when the
    union is empty. On integer snippet ranges [a, b) it is the IoU of the index sets.
    """
    inter = np.clip(np.minimum(e1, e2) - np.maximum(s1, s2), 0.0, None)
    union = np.clip(np.subtract(e1, s1), 0.0, None) + np.clip(np.subtract(e2, s2), 0.0, None) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def temporal_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Temporal IoU of every segment in `a` with every segment in `b` (`segment_iou`).

    Args:
      a: [n, 2] (or [2]) segments `[start, end]`.
      b: [m, 2] (or [2]) segments.
    Returns:
      [n, m] float64 (1-D / scalar when an input was 1-D).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a2 = a.reshape(-1, 2)
    b2 = b.reshape(-1, 2)
    iou = segment_iou(a2[:, None, 0], a2[:, None, 1], b2[None, :, 0], b2[None, :, 1])
    if a.ndim == 1 and b.ndim == 1:
        return iou[0, 0]
    if a.ndim == 1:
        return iou[0]
    if b.ndim == 1:
        return iou[:, 0]
    return iou


def _overlapping_pairs(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i, j), i != j, of segments with a positive-length intersection (each pair once)."""
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    # Segment k (by start) overlaps the later segments whose start lies in [s_k, e_k).
    hi = np.searchsorted(s, e, side="left")
    count = np.maximum(hi - np.arange(len(s)) - 1, 0)
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.repeat(np.arange(len(s)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    second = first + 1 + offset
    return order[first], order[second]


def nms_1d(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, tiou: float) -> np.ndarray:
    """Greedy 1-D non-maximum suppression.

    Segments are visited by descending score (stable: equal scores keep input
    order); a kept segment suppresses every later one whose tIoU with it is
    strictly greater than `tiou`.

    Vectorised: the suppression pairs (tIoU > `tiou`) are found with a sort and
    `searchsorted`, then the greedy result is resolved by a fixed-point iteration
    (a segment is kept once all its suppressors are removed, removed as soon as one
    suppressor is kept). Each round decides at least the best undecided segment; for
    the nested proposals of `localize_video` a few rounds suffice.

    Returns:
      int64 indices of the kept segments, by descending score.
    """
    starts = np.asarray(starts, dtype=np.float64).reshape(-1)
    ends = np.asarray(ends, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    if n <= 1:
        return order.astype(np.int64)
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    i, j = _overlapping_pairs(starts, ends)
    if i.size:
        iou = segment_iou(starts[i], ends[i], starts[j], ends[j])
        sel = iou > tiou
        i, j = i[sel], j[sel]
    # Orient each pair as (suppressor = better rank, suppressed).
    sup = np.where(rank[i] < rank[j], i, j)
    sub = np.where(rank[i] < rank[j], j, i)
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 removed
    while True:
        undecided = state == 0
        if not undecided.any():
            break
        kept_sup = np.bincount(sub[state[sup] == 1], minlength=n) > 0
        open_sup = np.bincount(sub[state[sup] == 0], minlength=n) > 0
        state[undecided & kept_sup] = 2
        state[undecided & ~kept_sup & ~open_sup] = 1
    return order[state[order] == 1].astype(np.int64)


# --------------------------------------------------------------------------- #
# Localization
# --------------------------------------------------------------------------- #
def _validate_inputs(tcam, attention, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(tcam, dtype=np.float64)
    a = np.asarray(attention, dtype=np.float64)
    name = f"video {video_id!r}: " if video_id else ""
    if t.ndim != 2:
        raise D2NetInputError(f"{name}tcam must be a 2-D [snippets, classes] array, got shape {t.shape}")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != t.shape[0]:
        raise D2NetInputError(
            f"{name}attention must have shape [{t.shape[0]}] (one value per snippet), got {a.shape}"
        )
    if not (np.isfinite(t).all() and np.isfinite(a).all()):
        raise D2NetInputError(f"{name}tcam and attention must be finite (found NaN/inf)")
    return t, a


def localize_video(
    tcam: np.ndarray,
    attention: np.ndarray,
    snippets_per_second: float = I3D_SNIPPETS_PER_SECOND,
    config: LocalizationConfig = LocalizationConfig(),
    video_id: str = "",
) -> Detections:
    """Action segments of one video (Sec. 3.3).

    Args:
      tcam: [s, C] float, temporal class activations in [0, 1].
      attention: [s] float, bottom-up attention lambda'.
      snippets_per_second: feature rate; snippet i covers [i/sps, (i+1)/sps) s.
      config: LocalizationConfig.
      video_id: stored in `Detections.video_ids`.
    Returns:
      Detections sorted by class, then descending score.
    """
    t, lam = _validate_inputs(tcam, attention, video_id)
    if snippets_per_second <= 0:
        raise D2NetInputError(f"snippets_per_second must be > 0, got {snippets_per_second}")
    s, num_classes = t.shape
    if s == 0 or num_classes == 0:
        return Detections.empty()

    # Sec. 3.3: video-level score p = top-k mean over time, k = ceil(s / topk_divisor).
    p = topk_mean(t, config.topk_divisor)
    # Sec. 3.3: relevant classes p_c > 0.5 max(p).
    classes = np.flatnonzero(p > config.class_threshold_ratio * p.max())
    if classes.size == 0:
        return Detections.empty()

    # Sec. 3.3: refined sequence r_c = lambda' * T_c (official ActivityNet: lambda' * 2 / max lambda').
    weight = lam
    if config.attention_rescale is not None:
        m = lam.max()
        weight = lam * (config.attention_rescale / m) if m > 0 else np.zeros_like(lam)
    r = (t[:, classes] * weight[:, None]).T  # [c, s]

    # Sec. 3.3: proposals = connected components of r_c > threshold, for every threshold.
    # Without a [c, n_thr, s] mask: level[i] = number of thresholds below r_c[i]; a
    # component of threshold t starts where the level rises across t and ends (exclusive)
    # where it falls back, so the work is O(s + number of proposals).
    thr = np.sort(np.asarray(config.thresholds, dtype=np.float64))
    level = np.zeros((r.shape[0], s + 2), np.int64)
    level[:, 1:-1] = np.searchsorted(thr, r, side="left")  # r > thr[t]  <=>  t < level
    step = np.diff(level, axis=1)  # [c, s + 1]: step at i = level(snippet i) - level(snippet i - 1)

    def crossings(rows, pos, lo, hi):
        count = hi - lo
        rows_r, pos_r = np.repeat(rows, count), np.repeat(pos, count)
        t = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
        # By class, threshold, then position (already in position order within a class).
        order = np.argsort(rows_r * len(thr) + t, kind="stable")
        return rows_r[order], pos_r[order]

    rows, pos = np.nonzero(step > 0)
    c_idx, start = crossings(rows, pos, level[rows, pos], level[rows, pos + 1])
    rows, pos = np.nonzero(step < 0)
    _, end = crossings(rows, pos, level[rows, pos + 1], level[rows, pos])
    width = end - start
    ok = width >= config.min_proposal_snippets
    c_idx, start, end, width = c_idx[ok], start[ok], end[ok], width[ok]
    if start.size == 0:
        return Detections.empty()

    # Sec. 3.3: outer-inner contrast S = mean(r_c inside) - mean(r_c outside),
    # outside = `inflation` snippets on each side, clipped at the video ends.
    csum = np.zeros((r.shape[0], s + 1))
    np.cumsum(r, axis=1, out=csum[:, 1:])
    inflation = np.maximum(config.min_inflation, np.floor(config.outer_ratio * width + 0.5)).astype(np.int64)
    left = np.maximum(start - inflation, 0)
    right = np.minimum(end + inflation, s)
    inner = (csum[c_idx, end] - csum[c_idx, start]) / width
    n_out = (start - left) + (right - end)
    out_sum = (csum[c_idx, start] - csum[c_idx, left]) + (csum[c_idx, right] - csum[c_idx, end])
    outer = np.where(n_out > 0, out_sum / np.maximum(n_out, 1), 0.0)  # empty outside: S = mean inside
    score = inner - outer
    if config.max_outer_inner is not None:
        # Official code: drop proposals with (outer - inner + 1) / 2 > 0.7.
        keep = (outer - inner + 1.0) / 2.0 <= config.max_outer_inner
        c_idx, start, end, score = c_idx[keep], start[keep], end[keep], score[keep]
        if start.size == 0:
            return Detections.empty()
    video_max = score.max()

    # Sec. 3.3: keep S > 0.1 * the video's maximum proposal score. Applied before NMS,
    # which is exact: a proposal below the bar only suppresses lower-scored ones.
    # Identical proposals found at several thresholds are merged (same r_c, same score).
    keep = score > config.final_score_ratio * video_max
    c_idx, start, end, score = c_idx[keep], start[keep], end[keep], score[keep]
    key = (c_idx.astype(np.int64) * (s + 1) + start) * (s + 1) + end
    _, first = np.unique(key, return_index=True)
    first.sort()
    c_idx, start, end, score = c_idx[first], start[first], end[first], score[first]

    # Sec. 3.3: class-wise NMS, as one NMS over class-offset intervals (classes never overlap).
    offset = c_idx.astype(np.int64) * (s + 1)
    kept = nms_1d(start + offset, end + offset, score, config.nms_tiou)
    kept = kept[np.lexsort((np.arange(kept.size), c_idx[kept]))]  # by class, then by score
    starts = start[kept].astype(np.float64) / snippets_per_second
    ends = end[kept].astype(np.float64) / snippets_per_second
    class_ids = classes[c_idx[kept]].astype(np.int32)
    score = score[kept]
    return Detections(np.full(class_ids.size, video_id), class_ids, starts, ends, score)


def iter_localize_videos(
    videos: Iterable[tuple[str, np.ndarray, np.ndarray]],
    snippets_per_second: float = I3D_SNIPPETS_PER_SECOND,
    config: LocalizationConfig = LocalizationConfig(),
) -> Iterator[Detections]:
    """Streams `localize_video` over `(video_id, tcam, attention)` items, one Detections per video.

    Consumes the input lazily, so memory stays bounded by one video's arrays
    plus whatever the caller keeps.
    """
    for video_id, tcam, attention in videos:
        yield localize_video(tcam, attention, snippets_per_second, config, video_id=str(video_id))


def localize_videos(
    videos: Iterable[tuple[str, np.ndarray, np.ndarray]],
    snippets_per_second: float = I3D_SNIPPETS_PER_SECOND,
    config: LocalizationConfig = LocalizationConfig(),
) -> Detections:
    """Detections of a whole split: `localize_video` on each `(video_id, tcam, attention)`.

    Only the (small) detection tables are kept; the TCAMs can come from a generator.
    """
    return Detections.concatenate(iter_localize_videos(videos, snippets_per_second, config))

"""Temporal action localization (Sec. 3.3) with TF ops: the graph twin of `numpy_ops`.

`localize_tf` computes the same proposals as `numpy_ops.localize_video` (thresholds,
1-D connected components, outer-inner contrast, class-wise greedy NMS, final score
filter) with TF ops in float64, emitted in the same order (by class, then descending
score), so a SavedModel's `localize` signature returns segments straight away.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from d2net_tf.localization.config import LocalizationConfig
from d2net_tf.scores import topk_mean_tf


def _segment_iou(s1, e1, s2, e2):
    """`numpy_ops.segment_iou` with TF ops (float64)."""
    inter = tf.maximum(tf.minimum(e1, e2) - tf.maximum(s1, s2), 0.0)
    union = tf.maximum(e1 - s1, 0.0) + tf.maximum(e2 - s2, 0.0) - inter
    pos = union > 0
    return tf.where(pos, inter / tf.where(pos, union, tf.ones_like(union)), tf.zeros_like(union))


def nms_1d_tf(starts, ends, scores, tiou: float):
    """Greedy 1-D NMS with TF ops; same result and order as `numpy_ops.nms_1d`.

    Segments are visited by descending score (stable); a kept segment suppresses every
    later one with tIoU > `tiou`. Vectorised like the numpy version: the overlapping
    pairs come from a sort and `searchsorted`, then the greedy result is a fixed point
    (a segment is kept once all its suppressors are removed, removed as soon as one
    suppressor is kept); each round decides at least the best undecided segment.

    Returns:
      int64 [k] indices of the kept segments, by descending score.
    """
    starts = tf.reshape(tf.cast(starts, tf.float64), [-1])
    ends = tf.reshape(tf.cast(ends, tf.float64), [-1])
    scores = tf.reshape(tf.cast(scores, tf.float64), [-1])
    n = tf.shape(scores)[0]
    order = tf.argsort(-scores, stable=True)
    rank = tf.scatter_nd(order[:, None], tf.range(n), [n])

    # Overlapping pairs (i, j): segment k (by start) overlaps the later ones starting in [s_k, e_k).
    by_start = tf.argsort(starts, stable=True)
    s, e = tf.gather(starts, by_start), tf.gather(ends, by_start)
    hi = tf.searchsorted(s, e, side="left", out_type=tf.int32)
    count = tf.maximum(hi - tf.range(n) - 1, 0)
    total = tf.reduce_sum(count)
    first = tf.repeat(tf.range(n), count)
    offset = tf.range(total) - tf.repeat(tf.cumsum(count) - count, count)
    i, j = tf.gather(by_start, first), tf.gather(by_start, first + 1 + offset)
    sel = _segment_iou(tf.gather(starts, i), tf.gather(ends, i), tf.gather(starts, j), tf.gather(ends, j)) > tiou
    i, j = tf.boolean_mask(i, sel), tf.boolean_mask(j, sel)
    better = tf.gather(rank, i) < tf.gather(rank, j)
    sup, sub = tf.where(better, i, j), tf.where(better, j, i)

    def body(state):  # 0 undecided, 1 kept, 2 removed
        sup_state = tf.gather(state, sup)
        kept_sup = tf.math.unsorted_segment_max(tf.cast(sup_state == 1, tf.int32), sub, n) > 0
        open_sup = tf.math.unsorted_segment_max(tf.cast(sup_state == 0, tf.int32), sub, n) > 0
        undecided = state == 0
        state = tf.where(undecided & kept_sup, 2, state)
        return (tf.where(undecided & ~kept_sup & ~open_sup, 1, state),)

    (state,) = tf.while_loop(lambda state: tf.reduce_any(state == 0), body, (tf.zeros([n], tf.int32),),
                             parallel_iterations=1)
    return tf.cast(tf.boolean_mask(order, tf.gather(state, order) == 1), tf.int64)


def localize_tf(tcam, attention, snippets_per_second, config: LocalizationConfig = LocalizationConfig()):
    """Action segments of one video with TF ops (graph twin of `numpy_ops.localize_video`).

    Args:
      tcam: [s, C] float TCAM.
      attention: [s] float bottom-up attention lambda'.
      snippets_per_second: scalar float (> 0).
      config: LocalizationConfig (static: baked into the graph).
    Returns:
      dict class_ids [n] int32, starts_s [n] float64, ends_s [n] float64, scores [n] float64,
      by class then descending score (the order of `localize_video`).
    """
    t = tf.cast(tcam, tf.float64)
    lam = tf.reshape(tf.cast(attention, tf.float64), [-1])
    sps = tf.cast(snippets_per_second, tf.float64)
    s32 = tf.shape(t)[0]
    s = tf.cast(s32, tf.int64)

    # p = top-k mean over time, k = ceil(s / topk_divisor); relevant classes p_c > ratio * max(p).
    p = topk_mean_tf(t, float(config.topk_divisor))
    p_max = tf.reduce_max(p)
    classes = tf.where(tf.logical_and(p > config.class_threshold_ratio * p_max, s32 > 0))[:, 0]  # int64 [c]

    # Refined sequence r_c = lambda' * T_c (official ActivityNet: lambda' * rescale / max lambda').
    weight = lam
    if config.attention_rescale is not None:
        m = tf.reduce_max(lam)
        safe = tf.where(m > 0, m, tf.ones_like(m))
        weight = tf.where(m > 0, lam * (float(config.attention_rescale) / safe), tf.zeros_like(lam))
    r = tf.transpose(tf.gather(t, classes, axis=1) * weight[:, None])  # [c, s]

    # Proposals: connected components of r_c > thr for every threshold, ordered by
    # class, threshold, then position (tf.where is row-major).
    thr = tf.constant(np.sort(np.asarray(config.thresholds, dtype=np.float64)))
    above = tf.cast(r[:, None, :] > thr[None, :, None], tf.int8)  # [c, n_thr, s]
    above = tf.pad(above, [[0, 0], [0, 0], [1, 1]])
    step = above[:, :, 1:] - above[:, :, :-1]  # [c, n_thr, s + 1]
    rise = tf.where(step > 0)
    fall = tf.where(step < 0)
    c_idx, start, end = rise[:, 0], rise[:, 2], fall[:, 2]
    width = end - start
    ok = width >= config.min_proposal_snippets
    c_idx, start, end, width = (tf.boolean_mask(x, ok) for x in (c_idx, start, end, width))

    # Outer-inner contrast with inflation = max(min_inflation, floor(ratio * width + 0.5)).
    csum = tf.concat([tf.zeros([tf.shape(r)[0], 1], tf.float64), tf.cumsum(r, axis=1)], axis=1)  # [c, s + 1]

    def at(idx):
        return tf.gather_nd(csum, tf.stack([c_idx, idx], axis=1))

    width_f = tf.cast(width, tf.float64)
    inflation = tf.cast(
        tf.maximum(tf.constant(float(config.min_inflation), tf.float64), tf.floor(config.outer_ratio * width_f + 0.5)), tf.int64
    )
    left = tf.maximum(start - inflation, 0)
    right = tf.minimum(end + inflation, s)
    inner = (at(end) - at(start)) / width_f
    n_out = (start - left) + (right - end)
    out_sum = (at(start) - at(left)) + (at(right) - at(end))
    outer = tf.where(n_out > 0, out_sum / tf.cast(tf.maximum(n_out, 1), tf.float64), tf.zeros_like(out_sum))
    score = inner - outer
    if config.max_outer_inner is not None:
        keep = (outer - inner + 1.0) / 2.0 <= config.max_outer_inner
        c_idx, start, end, score = (tf.boolean_mask(x, keep) for x in (c_idx, start, end, score))

    # Keep S > ratio * max S (before NMS, as numpy), then merge identical proposals (first kept).
    video_max = tf.reduce_max(score)
    keep = score > config.final_score_ratio * video_max
    c_idx, start, end, score = (tf.boolean_mask(x, keep) for x in (c_idx, start, end, score))
    key = (c_idx * (s + 1) + start) * (s + 1) + end
    uniq, uid = tf.unique(key, out_idx=tf.int32)
    first = tf.math.unsorted_segment_min(tf.range(tf.shape(key)[0]), uid, tf.shape(uniq)[0])
    c_idx, start, end, score = (tf.gather(x, first) for x in (c_idx, start, end, score))

    # Class-wise NMS as one NMS over class-offset intervals, then by class (stable) then score.
    offset = c_idx * (s + 1)
    kept = nms_1d_tf(tf.cast(start + offset, tf.float64), tf.cast(end + offset, tf.float64), score, config.nms_tiou)
    kept = tf.gather(kept, tf.argsort(tf.gather(c_idx, kept), stable=True))
    return {
        "class_ids": tf.cast(tf.gather(classes, tf.gather(c_idx, kept)), tf.int32),
        "starts_s": tf.cast(tf.gather(start, kept), tf.float64) / sps,
        "ends_s": tf.cast(tf.gather(end, kept), tf.float64) / sps,
        "scores": tf.gather(score, kept),
    }

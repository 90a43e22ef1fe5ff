"""The denoising losses of D2-Net: pDMI (paper Sec. 3.2, Eq. 5-7) on the snippet-level joint
matrix U1 (Eq. 8-9, against the bottom-up attention of Eq. 8) and the video-level U2 (Eq. 10).

Shapes as in `losses.discriminative`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from d2net_tf.config import LossConfig
from d2net_tf.losses.discriminative import cosine

_TINY = 1e-12


def pdmi(u: tf.Tensor, tol: float = 1e-5, relative: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 7: pDMI(U) = log(sigma_1 / sigma_r) over the non-zero singular values of U [..., m, n].

    Singular values <= tol (absolute, as the official video-level pDMI) or <= tol x sigma_1
    (`relative`) count as zero. The SVD runs in float64: the exact zeros of a rank-deficient
    U then come out near 1e-16 x sigma_1, far below any cut-off, whether U was computed in
    float32 or bfloat16 (in float32, TF's SVD reported them at 9.5e-7 x sigma_1 on this CPU).
    Returns (loss [...] float32, ok [...]): where U is zero, not finite, or has no singular
    value above the cut-off besides sigma_1, the term is dropped (loss 0, ok False). Gradients stay finite for
    rank-deficient U, equal singular values and zero rows (the singular-value gradient
    u_i v_i^T needs no gap between singular values).
    """
    u = tf.cast(u, tf.float64)
    finite = tf.reduce_all(tf.math.is_finite(u), axis=[-2, -1])
    u = tf.where(finite[..., None, None], u, tf.zeros_like(u))
    s = tf.linalg.svd(u, compute_uv=False)  # [..., k], descending
    s1 = s[..., 0]
    cut = tol * s1 if relative else tf.constant(tol, tf.float64)
    nonzero = s > cut[..., None] if relative else s > cut
    # Rank >= 2: a rank-1 U gives log(sigma_1 / sigma_1) = 0 either way; it is reported as dropped.
    ok = finite & (s1 > _TINY) & (tf.reduce_sum(tf.cast(nonzero, tf.int32), axis=-1) >= 2)
    s_r = tf.reduce_min(tf.where(nonzero, s, tf.fill(tf.shape(s), np.float64(np.inf))), axis=-1)
    s_r = tf.where(ok, s_r, tf.ones_like(s_r))
    s1 = tf.where(ok, s1, tf.ones_like(s1))
    loss = tf.cast(tf.math.log(s1) - tf.math.log(s_r), tf.float32)
    return tf.where(ok, loss, tf.zeros_like(loss)), ok


def bottom_up_attention(x: tf.Tensor, x_ref: tf.Tensor, row_index: tf.Tensor | None = None) -> tf.Tensor:
    """Eq. 8: lambda'(t) = 0.5 (1 - cos(x(t), x_ref)). x [..., D], x_ref [D] -> x's shape
    without D; with `row_index` [B, T], x is the packed rows [L, D] and the result [B, T]
    (`discriminative.weighted_sums`)."""
    x = tf.cast(x, tf.float32)
    attention = 0.5 * (1.0 - cosine(x, tf.cast(x_ref, tf.float32)))
    return attention if row_index is None else tf.gather(attention, row_index)


def snippet_selection(attention_bu: tf.Tensor, mask: tf.Tensor, cfg: LossConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Pseudo-foreground (lambda' > thr) and pseudo-background (lambda' < thr) snippets, [B, T] float."""
    mask = tf.cast(mask, tf.float32)
    fg = tf.cast(attention_bu > cfg.attention_fg_threshold, tf.float32) * mask
    bg = tf.cast(attention_bu < cfg.attention_bg_threshold, tf.float32) * mask
    return fg, bg


def snippet_joint_matrix(
    lam_fg: tf.Tensor, lam_bg: tf.Tensor, fg: tf.Tensor, bg: tf.Tensor, count_normalised: bool
) -> tf.Tensor:
    """Eq. 9: U1 = P1 Y1 per video, [B, 2, 2].

    P1 = [[lambda_f, lambda_b], [1 - lambda_f, 1 - lambda_b]] (2 x z) over the selected
    snippets, Y1 = (1/z) [[1_nf, 0], [0, 1_nb]]; official: Y1 columns divided by n_f, n_b.
    lam_fg / lam_bg: top-down attention used at pseudo-foreground / -background snippets.
    """
    n_f = tf.reduce_sum(fg, 1)
    n_b = tf.reduce_sum(bg, 1)
    sf = tf.reduce_sum(lam_fg * fg, 1)
    sb = tf.reduce_sum(lam_bg * bg, 1)
    col_f = tf.stack([sf, n_f - sf], -1)  # [B, 2]: sum lambda_f, sum (1 - lambda_f)
    col_b = tf.stack([sb, n_b - sb], -1)
    if count_normalised:
        col_f = col_f / tf.maximum(n_f, 1.0)[:, None]
        col_b = col_b / tf.maximum(n_b, 1.0)[:, None]
    else:
        z = tf.maximum(n_f + n_b, 1.0)[:, None]
        col_f, col_b = col_f / z, col_b / z
    return tf.stack([col_f, col_b], axis=-1)  # [B, 2 (rows), 2 (cols)]


def video_joint_matrix(p: tf.Tensor, labels: tf.Tensor, cfg: LossConfig, rows: tf.Tensor | None = None) -> tf.Tensor:
    """Eq. 10: U2 = P2 Y2 = [p_1 ... p_n] (1/n) [y_1 ... y_n]^T, [C, C], over the videos in
    `rows` [B] (default: all).

    Official: p clipped to [clip_eps, 1 - clip_eps] first (`clip_before_video_pdmi`); each p_i
    zeroed where not > `video_score_floor` x max(p_i) and normalised to sum 1; Y normalised
    per class by its count among the rows.
    """
    p = tf.cast(p, tf.float32)
    y = tf.cast(labels, tf.float32)
    if cfg.clip_before_video_pdmi:
        p = tf.clip_by_value(p, cfg.clip_eps, 1.0 - cfg.clip_eps)
    if cfg.video_score_floor > 0:
        p = p * tf.cast(p > cfg.video_score_floor * tf.reduce_max(p, -1, keepdims=True), tf.float32)
        total = tf.reduce_sum(p, -1, keepdims=True)
        p = p / tf.where(total > 0, total, 1.0)
    if rows is not None:
        r = tf.cast(rows, tf.float32)[:, None]
        p, y = p * r, y * r
    if cfg.count_normalised_y:
        y = y / tf.maximum(tf.reduce_sum(y, 0, keepdims=True), 1.0)
    else:
        n = tf.cast(tf.shape(y)[0], tf.float32) if rows is None else tf.maximum(tf.reduce_sum(r), 1.0)
        y = y / n
    return tf.matmul(p, y, transpose_a=True)

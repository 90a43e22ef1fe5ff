"""D2-Net losses: pure functions of tensors plus an explicit validity mask.

Shapes: B videos, T snippets, C classes, D embedding width. `mask` is [B, T]
float (1 = real snippet). Equation numbers refer to the paper (ICCV 2021);
deviations taken from the official code are the named `LossConfig` options.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from d2net_tf.config import LossConfig

_TINY = 1e-12


def topk_count(mask: tf.Tensor, divisor: float) -> tf.Tensor:
    """k = ceil(s / divisor) per video, s = valid length; at least 1. [B] int32."""
    s = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
    return tf.maximum(tf.cast(tf.math.ceil(s / divisor), tf.int32), 1)


def video_scores(tcam: tf.Tensor, mask: tf.Tensor, divisor: float = 8.0) -> tf.Tensor:
    """Video prediction p: mean of the top-k TCAM values over valid time (Eq. 4 context). [B, C]."""
    tcam = tf.cast(tcam, tf.float32)
    k = topk_count(mask, divisor)  # [B]
    valid = tf.cast(mask, tf.bool)[:, :, None]
    # The largest k_max = max_b k_b values per (video, class), not a full sort over time
    # (T/8 of the work and of the gradient's scatter).
    scores = tf.transpose(tf.where(valid, tcam, -1.0), [0, 2, 1])  # [B, C, T]
    ranked = tf.math.top_k(scores, k=tf.reduce_max(k), sorted=True).values  # [B, C, k_max]
    rank = tf.range(tf.shape(ranked)[2])[None, None, :]
    take = tf.cast(rank < k[:, None, None], tf.float32)
    return tf.reduce_sum(ranked * take, axis=2) / tf.cast(k, tf.float32)[:, None]


def top_down_attention(tcam: tf.Tensor, class_mask: tf.Tensor | None = None) -> tf.Tensor:
    """lambda(t) = max_c T[t, c] (Sec. 3.1); over the classes in `class_mask` [B, C] when given. [B, T]."""
    tcam = tf.cast(tcam, tf.float32)
    if class_mask is not None:
        tcam = tcam * tf.cast(class_mask, tf.float32)[:, None, :]
    return tf.reduce_max(tcam, axis=-1)


def foreground_background_weights(
    attention: tf.Tensor, mask: tf.Tensor, cfg: LossConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 2 weights [B, T]: lambda where lambda > tau, lambda_b = 1 - lambda where lambda_b > tau_b.

    `inclusive_thresholds` (official): >= (the official code zeroes the values < tau, so
    lambda = 0.5 counts for foreground and for background)."""
    mask = tf.cast(mask, tf.float32)
    lam_b = 1.0 - attention
    above = tf.greater_equal if cfg.inclusive_thresholds else tf.greater
    w_fg = attention * tf.cast(above(attention, cfg.fg_threshold), tf.float32) * mask
    w_bg = lam_b * tf.cast(above(lam_b, cfg.bg_threshold), tf.float32) * mask
    return w_fg, w_bg


def foreground_background_embeddings(
    x: tf.Tensor, attention: tf.Tensor, mask: tf.Tensor, cfg: LossConfig
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 2: attention-weighted foreground and background embeddings x_fg, x_bg [B, D], and
    whether each video has foreground / background weight, has_fg, has_bg [B] float.

    x_fg = sum_{lambda > tau} lambda x, x_bg likewise with lambda_b = 1 - lambda; with
    `weighted_mean_embeddings` (official) each sum is divided by the sum of its weights
    (zero vector when there is no weight).
    """
    x = tf.cast(x, tf.float32)
    w_fg, w_bg = foreground_background_weights(attention, mask, cfg)
    # Both weighted sums as one batched [2, T] x [T, D] matmul per video: with its gradient,
    # 10 ms instead of 52 ms for two einsums "bt,btd->bd" at B=10, T=750, D=1024 (2-core CPU).
    x_fg_bg = tf.matmul(tf.stack([w_fg, w_bg], axis=1), x)  # [B, 2, D]
    x_fg, x_bg = x_fg_bg[:, 0], x_fg_bg[:, 1]
    sum_fg, sum_bg = tf.reduce_sum(w_fg, axis=1), tf.reduce_sum(w_bg, axis=1)
    has_fg, has_bg = tf.cast(sum_fg > 0, tf.float32), tf.cast(sum_bg > 0, tf.float32)
    if cfg.weighted_mean_embeddings:
        x_fg = x_fg / tf.where(sum_fg > 0, sum_fg, 1.0)[:, None]
        x_bg = x_bg / tf.where(sum_bg > 0, sum_bg, 1.0)[:, None]
    return x_fg, x_bg, has_fg, has_bg


def cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine similarity along the last axis; 0 when either vector is zero."""
    return tf.reduce_sum(tf.math.l2_normalize(a, -1, 1e-12) * tf.math.l2_normalize(b, -1, 1e-12), -1)


def pair_weights(
    x_fg: tf.Tensor, x_bg: tf.Tensor, perm: tf.Tensor, gamma: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 3: w_fb, w_fg, w_bg [B], with x~ = x[perm] from a different video (not detached).

    Every video is paired (`pair_within_subsets=False`); see `subset_pair_weights` for the
    official pairing within the videos that have foreground / background."""
    xt_fg, xt_bg = tf.gather(x_fg, perm), tf.gather(x_bg, perm)
    w_fb = tf.nn.relu(cosine(x_fg, xt_bg))
    w_fg = gamma * (1.0 - cosine(x_fg, xt_fg))
    w_bg = gamma * (1.0 - cosine(x_bg, xt_bg))
    return w_fb, w_fg, w_bg


def induced_partner(perm: tf.Tensor, member: tf.Tensor) -> tf.Tensor:
    """The pairing `perm` [B] induced on a subset (`member` [B] bool): partner[i] is the first
    member reached from i by following perm (perm[i], perm[perm[i]], ...), which is i itself
    when no other member is on its cycle. Also defined for non-members (the first member
    reached from them); -1 when the subset is empty. [B] int32."""
    perm = tf.cast(perm, tf.int32)
    member = tf.cast(member, tf.bool)
    n = tf.shape(perm)[0]

    def body(i, cur, partner):
        partner = tf.where((partner < 0) & tf.gather(member, cur), cur, partner)
        return i + 1, tf.gather(perm, cur), partner

    _, _, partner = tf.while_loop(lambda i, cur, partner: i < n, body,
                                  (tf.constant(0), perm, tf.fill([n], -1)))
    return partner


def subset_pair_weights(
    x_fg: tf.Tensor, x_bg: tf.Tensor, has_fg: tf.Tensor, has_bg: tf.Tensor, rows: tf.Tensor,
    perm: tf.Tensor, cfg: LossConfig,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 3 as the official code pairs: w_fb, w_fg, w_bg [B].

    FG = videos with foreground weight, BG = with background weight (both within `rows`, the
    videos that count). w_fg pairs each FG video with its partner in FG under the pairing
    `perm` induced on FG (`induced_partner`; may be itself, giving 0), w_bg likewise in BG; a
    video outside FG (BG) gets w_fg = 0 (w_bg = 0). w_fb pairs the first m = min(|FG|, |BG|)
    FG videos (batch order) with the first BG video reached by following perm. With
    `separation_row_shift` (official bug: `wt[fg_idx, 2]` indexes the list of rows with
    positions in the FG list) the w_fb of the j-th FG video lands on the j-th row. A video
    whose cycle of perm holds no BG video pairs with the first BG video in batch order.
    The official code draws four random permutations for these; here one `perm` serves all
    (each weight has the same distribution; in a twin run both sides get the same pairing).
    """
    fg = tf.cast(has_fg, tf.bool) & tf.cast(rows, tf.bool)
    bg = tf.cast(has_bg, tf.bool) & tf.cast(rows, tf.bool)
    fg_f, bg_f = tf.cast(fg, tf.float32), tf.cast(bg, tf.float32)
    p_fg = tf.maximum(induced_partner(perm, fg), 0)
    # A video whose cycle of perm holds no other background video pairs with the first one in
    # batch order (the official code always pairs with a real background video).
    p_bg = induced_partner(perm, bg)
    p_bg = tf.where(p_bg < 0, tf.argmax(tf.cast(bg, tf.int32), output_type=tf.int32), p_bg)
    w_fg = cfg.gamma * (1.0 - cosine(x_fg, tf.gather(x_fg, p_fg))) * fg_f
    w_bg = cfg.gamma * (1.0 - cosine(x_bg, tf.gather(x_bg, p_bg))) * bg_f
    rank_fg = tf.cumsum(tf.cast(fg, tf.int32)) - 1  # position in the FG list
    m = tf.minimum(tf.reduce_sum(tf.cast(fg, tf.int32)), tf.reduce_sum(tf.cast(bg, tf.int32)))
    separated = fg & (rank_fg < m)
    values = tf.nn.relu(cosine(x_fg, tf.gather(x_bg, p_bg))) * tf.cast(separated, tf.float32)
    if cfg.separation_row_shift:
        rows_b = tf.cast(rows, tf.bool)
        rank_row = tf.cumsum(tf.cast(rows_b, tf.int32)) - 1
        # target[i] = the row whose position in the list of rows is rank_fg[i]
        hit = rows_b[None, :] & tf.equal(rank_row[None, :], rank_fg[:, None])
        target = tf.argmax(tf.cast(hit, tf.int32), axis=1, output_type=tf.int32)
        w_fb = tf.math.unsorted_segment_sum(values, target, tf.shape(values)[0])
    else:
        w_fb = values
    return w_fb, w_fg, w_bg


def discriminative_loss(
    p: tf.Tensor,
    labels: tf.Tensor,
    w_fb: tf.Tensor,
    w_fg: tf.Tensor,
    w_bg: tf.Tensor,
    valid: tf.Tensor,
    cfg: LossConfig,
    beta: float | None = None,
) -> tf.Tensor:
    """Eq. 4: L_Dis = -sum_{y=1} (1 - p + w_fg + w_fb)^beta log p - sum_{y=0} (p + w_bg + w_fb)^beta log(1 - p).

    With beta = 0 and zero w this is the BCE (`ce`); with zero w, the focal loss (`focal`).
    `valid` [B] selects the videos that count (official: >= 5 snippets and a label).
    Reduction: sum or (official) mean over classes, positive terms x C (official); mean over valid videos.
    """
    beta = cfg.beta if beta is None else beta
    y = tf.cast(labels, tf.float32)
    p = tf.clip_by_value(tf.cast(p, tf.float32), cfg.clip_eps, 1.0 - cfg.clip_eps)
    pos_mod = 1.0 - p + (w_fg + w_fb)[:, None]
    neg_mod = p + (w_bg + w_fb)[:, None]
    if beta != 0:
        pos_mod, neg_mod = tf.pow(pos_mod, beta), tf.pow(neg_mod, beta)
    else:
        pos_mod, neg_mod = tf.ones_like(p), tf.ones_like(p)
    pos_w = float(p.shape[-1]) if cfg.positive_weight_num_classes else 1.0
    per = -pos_w * y * pos_mod * tf.math.log(p) - (1.0 - y) * neg_mod * tf.math.log(1.0 - p)
    per_video = tf.reduce_mean(per, -1) if cfg.mean_over_classes else tf.reduce_sum(per, -1)
    valid = tf.cast(valid, tf.float32)
    return tf.reduce_sum(per_video * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)


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


def bottom_up_attention(x: tf.Tensor, x_ref: tf.Tensor) -> tf.Tensor:
    """Eq. 8: lambda'(t) = 0.5 (1 - cos(x(t), x_ref)). x [B, T, D], x_ref [D] -> [B, T]."""
    x = tf.cast(x, tf.float32)
    return 0.5 * (1.0 - cosine(x, tf.cast(x_ref, tf.float32)[None, None, :]))


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


def random_pairing(n: int, seed: tf.Tensor, allow_self: bool = True) -> tf.Tensor:
    """The Eq. 3 pairing of a step from a stateless seed [2]: a uniformly random permutation
    of range(n) (as the official torch.randperm; may map a video to itself) or, with
    `allow_self=False`, a random derangement (`random_derangement`)."""
    if allow_self:
        return tf.argsort(tf.random.stateless_uniform([n], seed))
    return random_derangement(n, seed)


def random_derangement(n: int, seed: tf.Tensor) -> tf.Tensor:
    """A random permutation of range(n) without fixed points (n >= 2), from a stateless seed [2]."""
    # A cyclic shift by 1..n-1 of a random order never maps an element to itself.
    order = tf.argsort(tf.random.stateless_uniform([n], seed))
    shift = tf.random.stateless_uniform([], seed + 1, minval=1, maxval=tf.maximum(n, 2), dtype=tf.int32)
    inv = tf.math.invert_permutation(order)
    return tf.gather(order, (inv + shift) % n)


def _masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def _rows(stats: dict[str, tf.Tensor], cfg: LossConfig) -> tf.Tensor:
    """[B] float: the videos that count in p, the pairing, U2, the snippet term and x_ref
    (official: the valid ones; `exclude_invalid_videos=False`: all)."""
    return stats["valid"] if cfg.exclude_invalid_videos else tf.ones_like(stats["valid"])


# Per-video statistics: everything the batch-level losses need, with a leading batch axis.
# A multi-replica step all-gathers them (axis 0) and evaluates `losses_from_statistics` on
# the global batch, so N replicas compute exactly the single-device losses.


def per_video_statistics(
    tcam: tf.Tensor,
    embeddings: tf.Tensor,
    labels: tf.Tensor,
    mask: tf.Tensor,
    cfg: LossConfig,
) -> dict[str, tf.Tensor]:
    """Per-video quantities of a (local) batch, each [B, ...] (no cross-video reduction).

    p [B, C] video scores, labels [B, C], valid [B] (>= `min_valid_snippets` snippets and a
    label), x_fg / x_bg [B, D] and has_fg / has_bg [B] (Eq. 2), bg_emb [B, D] (Eq. 8 source,
    no gradient).
    """
    mask = tf.cast(mask, tf.float32)
    labels = tf.cast(labels, tf.float32)
    p = video_scores(tcam, mask, cfg.topk_divisor)
    lam = top_down_attention(tcam)
    s = tf.reduce_sum(mask, 1)
    valid = tf.cast((s >= cfg.min_valid_snippets) & (tf.reduce_sum(labels, 1) > 0), tf.float32)
    x_fg, x_bg, has_fg, has_bg = foreground_background_embeddings(embeddings, lam, mask, cfg)
    if cfg.xref_source == "most_background_snippet":
        idx = tf.argmax(tf.where(mask > 0, 1.0 - lam, -1.0), axis=1, output_type=tf.int32)
        bg_emb = tf.gather(tf.cast(embeddings, tf.float32), idx, batch_dims=1)
    else:  # "background_embedding" (validated by LossConfig)
        bg_emb = x_bg
    return {"p": p, "labels": labels, "valid": valid, "x_fg": x_fg, "x_bg": x_bg,
            "has_fg": has_fg, "has_bg": has_bg, "bg_emb": tf.stop_gradient(bg_emb)}


def updated_reference(stats: dict[str, tf.Tensor], x_ref: tf.Tensor, cfg: LossConfig) -> tf.Tensor:
    """Eq. 8 EMA of the background reference: x_ref <- m x_ref + (1 - m) mean(bg_emb) [D].

    Official (`xref_from_videos_with_background`): the mean over the videos (that count) with
    background weight, and no update when there is none; otherwise over every video that counts."""
    rows = _rows(stats, cfg)
    w = rows * stats["has_bg"] if cfg.xref_from_videos_with_background else rows
    total = tf.reduce_sum(w)
    mean = tf.reduce_sum(tf.stop_gradient(stats["bg_emb"]) * w[:, None], 0) / tf.maximum(total, 1.0)
    m = cfg.xref_momentum
    x_ref = tf.cast(x_ref, tf.float32)
    return tf.where(total > 0, m * x_ref + (1.0 - m) * mean, x_ref)


def snippet_statistics(
    tcam: tf.Tensor,
    embeddings: tf.Tensor,
    labels: tf.Tensor,
    mask: tf.Tensor,
    x_ref: tf.Tensor,
    cfg: LossConfig,
) -> dict[str, tf.Tensor]:
    """Per-video quantities of the snippet-level denoising (Eq. 8-9) against `x_ref`:
    u1 [B, 2, 2] and contributes [B] (has pseudo-foreground and pseudo-background) for `d2net`,
    snip_sum / snip_weight [B] for `d2net_l1` / `d2net_bce`; empty for the other variants."""
    if not cfg.variant.startswith("d2net"):
        return {}
    mask = tf.cast(mask, tf.float32)
    lam = top_down_attention(tcam)
    att_bu = tf.stop_gradient(bottom_up_attention(embeddings, x_ref))
    fg, bg = snippet_selection(att_bu, mask, cfg)
    lam_fg = top_down_attention(tcam, labels) if cfg.labelled_class_fg_attention else lam
    if cfg.variant == "d2net":
        contributes = tf.cast((tf.reduce_sum(fg, 1) > 0) & (tf.reduce_sum(bg, 1) > 0), tf.float32)
        return {"u1": snippet_joint_matrix(lam_fg, lam, fg, bg, cfg.count_normalised_y), "contributes": contributes}
    # Table 4 ablation: L1 / BCE on the same pseudo labels in place of pDMI
    # (snippets: lambda vs 1 at pseudo-fg, 0 at pseudo-bg; videos: p vs y).
    if cfg.variant == "d2net_l1":
        snip = fg * tf.abs(1.0 - lam_fg) + bg * tf.abs(lam)
    else:
        eps = cfg.clip_eps
        snip = -fg * tf.math.log(tf.maximum(lam_fg, eps)) - bg * tf.math.log(tf.maximum(1.0 - lam, eps))
    weight = fg + bg
    return {"snip_sum": tf.reduce_sum(snip * weight, 1), "snip_weight": tf.reduce_sum(weight, 1)}


# The official snippet pDMI clamps U1 at 1e-10 before its SVD.
_U1_FLOOR = 1e-10


def losses_from_statistics(
    stats: dict[str, tf.Tensor], perm: tf.Tensor, cfg: LossConfig, denoise: tf.Tensor | bool = True
) -> dict[str, tf.Tensor]:
    """All loss terms (see `d2net_losses`) from the per-video and snippet statistics of the
    whole batch. `perm` [B] is the Eq. 3 pairing over the rows of `stats`."""
    p, labels, valid = stats["p"], stats["labels"], stats["valid"]
    x_fg, x_bg = stats["x_fg"], stats["x_bg"]
    rows = _rows(stats, cfg)
    zeros_b = tf.zeros_like(valid)
    if cfg.variant in ("ce", "focal"):
        w_fb = w_fg = w_bg = zeros_b
    elif cfg.pair_within_subsets:
        w_fb, w_fg, w_bg = subset_pair_weights(x_fg, x_bg, stats["has_fg"], stats["has_bg"], rows, perm, cfg)
    else:
        w_fb, w_fg, w_bg = pair_weights(x_fg, x_bg, perm, cfg.gamma)
    beta = 0.0 if cfg.variant == "ce" else None
    dis = discriminative_loss(p, labels, w_fb, w_fg, w_bg, valid, cfg, beta=beta)

    snippet = video = tf.constant(0.0)
    dropped = tf.constant(0.0)
    if cfg.variant == "d2net":
        l1, ok1 = pdmi(tf.maximum(stats["u1"], _U1_FLOOR), cfg.pdmi_snippet_rel_tol, relative=True)
        contributes = stats["contributes"] * rows
        if cfg.snippet_mean_over_contributing:
            snippet = _masked_mean(l1, contributes)
        else:
            snippet = tf.reduce_sum(l1 * rows) / tf.cast(tf.shape(l1)[0], tf.float32)
        video, ok2 = pdmi(video_joint_matrix(p, labels, cfg, rows), cfg.pdmi_video_tol)
        dropped = tf.reduce_sum((1.0 - tf.cast(ok1, tf.float32)) * contributes) + 1.0 - tf.cast(ok2, tf.float32)
    elif cfg.variant in ("d2net_l1", "d2net_bce"):
        pc = tf.clip_by_value(p, cfg.clip_eps, 1.0 - cfg.clip_eps)
        if cfg.variant == "d2net_l1":
            per = tf.abs(pc - labels)
        else:
            per = -(labels * tf.math.log(pc) + (1.0 - labels) * tf.math.log(1.0 - pc))
        video = _masked_mean(tf.reduce_mean(per, -1), rows)
        snippet = tf.reduce_sum(stats["snip_sum"] * rows) / tf.maximum(tf.reduce_sum(stats["snip_weight"] * rows), 1.0)
    on = tf.cast(denoise, tf.float32)
    snippet, video = snippet * on, video * on

    total = dis + cfg.alpha_snippet * snippet + cfg.alpha_video * video  # Eq. 1, Eq. 11
    return {
        "loss": total,
        "dis": dis,
        "snippet": snippet,
        "video": video,
        "w_fb": tf.reduce_mean(w_fb),
        "w_fg": tf.reduce_mean(w_fg),
        "w_bg": tf.reduce_mean(w_bg),
        "pdmi_dropped": dropped,
    }


def d2net_losses(
    tcam: tf.Tensor,
    embeddings: tf.Tensor,
    labels: tf.Tensor,
    mask: tf.Tensor,
    x_ref: tf.Tensor,
    perm: tf.Tensor,
    cfg: LossConfig,
    denoise: tf.Tensor | bool = True,
    gather: Callable[[dict], dict] | None = None,
) -> dict[str, tf.Tensor]:
    """All loss terms of a mini-batch for the variant `cfg.variant` (Eq. 1 and 11).

    Returns a dict with `loss` (the total) and every term: `dis`, `snippet`, `video`,
    `w_fb`, `w_fg`, `w_bg` (batch means), `pdmi_dropped` (count of dropped pDMI terms),
    `x_ref` [D] (the background reference after this step's Eq. 8 EMA update). The snippet
    term is measured against the updated x_ref (`snippet_uses_updated_xref`, official) or
    the one passed in.

    `gather` (default: the identity) concatenates per-video statistics of every replica along
    axis 0: with it each replica passes its share of the global batch and gets the losses of
    the global batch (`perm` then pairs the global batch). The snippet statistics are measured
    against x_ref after this step's update, which needs the whole batch: they are gathered second.
    """
    gather = gather or (lambda stats: stats)
    stats = gather(per_video_statistics(tcam, embeddings, labels, mask, cfg))
    new_ref = updated_reference(stats, x_ref, cfg)
    ref = new_ref if cfg.snippet_uses_updated_xref else x_ref
    stats.update(gather(snippet_statistics(tcam, embeddings, labels, mask, ref, cfg)))
    terms = losses_from_statistics(stats, perm, cfg, denoise)
    terms["x_ref"] = new_ref
    return terms

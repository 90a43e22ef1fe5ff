"""D2-Net losses: pure functions of tensors plus an explicit validity mask.

Shapes: B videos, T snippets, C classes, D embedding width. `mask` is [B, T]
float (1 = real snippet). Equation numbers refer to the paper (ICCV 2021);
deviations taken from the official code are the named `LossConfig` options.
"""

from __future__ import annotations

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


def foreground_background_embeddings(
    x: tf.Tensor, attention: tf.Tensor, mask: tf.Tensor, cfg: LossConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 2: attention-weighted foreground and background embeddings x_fg, x_bg [B, D].

    x_fg = sum_{lambda > tau} lambda x, x_bg likewise with lambda_b = 1 - lambda; with
    `weighted_mean_embeddings` (official) each sum is divided by the sum of its weights.
    """
    x = tf.cast(x, tf.float32)
    mask = tf.cast(mask, tf.float32)
    lam_b = 1.0 - attention
    w_fg = attention * tf.cast(attention > cfg.fg_threshold, tf.float32) * mask
    w_bg = lam_b * tf.cast(lam_b > cfg.bg_threshold, tf.float32) * mask
    # Both weighted sums as one batched [2, T] x [T, D] matmul per video: with its gradient,
    # 10 ms instead of 52 ms for two einsums "bt,btd->bd" at B=10, T=750, D=1024 (2-core CPU).
    x_fg_bg = tf.matmul(tf.stack([w_fg, w_bg], axis=1), x)  # [B, 2, D]
    x_fg, x_bg = x_fg_bg[:, 0], x_fg_bg[:, 1]
    if cfg.weighted_mean_embeddings:
        x_fg = x_fg / (tf.reduce_sum(w_fg, axis=1, keepdims=True) + _TINY)
        x_bg = x_bg / (tf.reduce_sum(w_bg, axis=1, keepdims=True) + _TINY)
    return x_fg, x_bg


def cosine(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Cosine similarity along the last axis; 0 when either vector is zero."""
    return tf.reduce_sum(tf.math.l2_normalize(a, -1, 1e-12) * tf.math.l2_normalize(b, -1, 1e-12), -1)


def pair_weights(
    x_fg: tf.Tensor, x_bg: tf.Tensor, perm: tf.Tensor, gamma: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 3: w_fb, w_fg, w_bg [B], with x~ = x[perm] from a different video (not detached)."""
    xt_fg, xt_bg = tf.gather(x_fg, perm), tf.gather(x_bg, perm)
    w_fb = tf.nn.relu(cosine(x_fg, xt_bg))
    w_fg = gamma * (1.0 - cosine(x_fg, xt_fg))
    w_bg = gamma * (1.0 - cosine(x_bg, xt_bg))
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


def pdmi(u: tf.Tensor, rel_tol: float = 1e-6) -> tuple[tf.Tensor, tf.Tensor]:
    """Eq. 7: pDMI(U) = log(sigma_1 / sigma_r) over the non-zero singular values of U [..., m, n].

    Singular values <= rel_tol * sigma_1 count as zero. Returns (loss [...], ok [...]):
    where U is zero or not finite the term is dropped (loss 0, ok False). Gradients stay
    finite for rank-deficient U, equal singular values and zero rows (the singular-value
    gradient u_i v_i^T needs no gap between singular values).
    """
    u = tf.cast(u, tf.float32)
    finite = tf.reduce_all(tf.math.is_finite(u), axis=[-2, -1])
    u = tf.where(finite[..., None, None], u, tf.zeros_like(u))
    s = tf.linalg.svd(u, compute_uv=False)  # [..., k], descending
    s1 = s[..., 0]
    ok = finite & (s1 > _TINY)
    nonzero = s > rel_tol * s1[..., None]
    s_r = tf.reduce_min(tf.where(nonzero, s, tf.fill(tf.shape(s), np.float32(np.inf))), axis=-1)
    s_r = tf.where(ok, s_r, tf.ones_like(s_r))
    s1 = tf.where(ok, s1, tf.ones_like(s1))
    loss = tf.math.log(s1) - tf.math.log(s_r)
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


def video_joint_matrix(p: tf.Tensor, labels: tf.Tensor, cfg: LossConfig) -> tf.Tensor:
    """Eq. 10: U2 = P2 Y2 = [p_1 ... p_n] (1/n) [y_1 ... y_n]^T, [C, C].

    Official: each p_i zeroed below `video_score_floor` x max(p_i) and normalised to sum 1;
    Y normalised per class by its count in the batch.
    """
    p = tf.cast(p, tf.float32)
    y = tf.cast(labels, tf.float32)
    if cfg.video_score_floor > 0:
        p = p * tf.cast(p >= cfg.video_score_floor * tf.reduce_max(p, -1, keepdims=True), tf.float32)
        p = p / (tf.reduce_sum(p, -1, keepdims=True) + _TINY)
    if cfg.count_normalised_y:
        y = y / tf.maximum(tf.reduce_sum(y, 0, keepdims=True), 1.0)
    else:
        y = y / tf.cast(tf.shape(y)[0], tf.float32)
    return tf.matmul(p, y, transpose_a=True)


def random_derangement(n: int, seed: tf.Tensor) -> tf.Tensor:
    """A random permutation of range(n) without fixed points (n >= 2), from a stateless seed [2]."""
    # A cyclic shift by 1..n-1 of a random order never maps an element to itself.
    order = tf.argsort(tf.random.stateless_uniform([n], seed))
    shift = tf.random.stateless_uniform([], seed + 1, minval=1, maxval=tf.maximum(n, 2), dtype=tf.int32)
    inv = tf.math.invert_permutation(order)
    return tf.gather(order, (inv + shift) % n)


def _masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


# Per-video statistics: everything the batch-level losses need, with a leading batch axis.
# A multi-replica step all-gathers them (axis 0) and evaluates `losses_from_statistics` on
# the global batch, so N replicas compute exactly the single-device losses.
STATISTICS = ("p", "labels", "valid", "x_fg", "x_bg", "bg_emb", "u1", "snip_sum", "snip_weight")


def per_video_statistics(
    tcam: tf.Tensor,
    embeddings: tf.Tensor,
    labels: tf.Tensor,
    mask: tf.Tensor,
    x_ref: tf.Tensor,
    cfg: LossConfig,
) -> dict[str, tf.Tensor]:
    """Per-video quantities of a (local) batch, each [B, ...] (no cross-video reduction).

    p [B, C] video scores, labels [B, C], valid [B] (counts in L_Dis), x_fg / x_bg [B, D]
    (Eq. 2), bg_emb [B, D] (Eq. 8 source, no gradient), and for the denoising variants
    u1 [B, 2, 2] (Eq. 9, `d2net`) or snip_sum / snip_weight [B] (`d2net_l1` / `d2net_bce`).
    """
    mask = tf.cast(mask, tf.float32)
    labels = tf.cast(labels, tf.float32)
    p = video_scores(tcam, mask, cfg.topk_divisor)
    lam = top_down_attention(tcam)
    s = tf.reduce_sum(mask, 1)
    valid = tf.cast((s >= cfg.min_valid_snippets) & (tf.reduce_sum(labels, 1) > 0), tf.float32)
    x_fg, x_bg = foreground_background_embeddings(embeddings, lam, mask, cfg)

    if cfg.xref_source == "most_background_snippet":
        idx = tf.argmax(tf.where(mask > 0, 1.0 - lam, -1.0), axis=1, output_type=tf.int32)
        bg_emb = tf.gather(tf.cast(embeddings, tf.float32), idx, batch_dims=1)
    elif cfg.xref_source == "background_embedding":
        bg_emb = x_bg
    else:
        raise ValueError(f"xref_source must be 'most_background_snippet' or 'background_embedding', got {cfg.xref_source!r}")
    stats = {"p": p, "labels": labels, "valid": valid, "x_fg": x_fg, "x_bg": x_bg,
             "bg_emb": tf.stop_gradient(bg_emb)}

    if cfg.variant.startswith("d2net"):
        att_bu = tf.stop_gradient(bottom_up_attention(embeddings, x_ref))
        fg, bg = snippet_selection(att_bu, mask, cfg)
        lam_fg = top_down_attention(tcam, labels) if cfg.labelled_class_fg_attention else lam
        if cfg.variant == "d2net":
            stats["u1"] = snippet_joint_matrix(lam_fg, lam, fg, bg, cfg.count_normalised_y)
        elif cfg.variant in ("d2net_l1", "d2net_bce"):
            # Table 4 ablation: L1 / BCE on the same pseudo labels in place of pDMI
            # (snippets: lambda vs 1 at pseudo-fg, 0 at pseudo-bg; videos: p vs y).
            if cfg.variant == "d2net_l1":
                snip = fg * tf.abs(1.0 - lam_fg) + bg * tf.abs(lam)
            else:
                eps = cfg.clip_eps
                snip = -fg * tf.math.log(tf.maximum(lam_fg, eps)) - bg * tf.math.log(tf.maximum(1.0 - lam, eps))
            weight = fg + bg
            stats["snip_sum"] = tf.reduce_sum(snip * weight, 1)
            stats["snip_weight"] = tf.reduce_sum(weight, 1)
        else:
            raise ValueError(f"unknown loss variant {cfg.variant!r}")
    elif cfg.variant not in ("ce", "focal", "dis"):
        raise ValueError(f"unknown loss variant {cfg.variant!r}")
    return stats


def losses_from_statistics(
    stats: dict[str, tf.Tensor], perm: tf.Tensor, cfg: LossConfig, denoise: tf.Tensor | bool = True
) -> dict[str, tf.Tensor]:
    """All loss terms (see `d2net_losses`) from the per-video statistics of the whole batch.

    `perm` [B] is the Eq. 3 pairing over the rows of `stats`.
    """
    p, labels, valid = stats["p"], stats["labels"], stats["valid"]
    x_fg, x_bg = stats["x_fg"], stats["x_bg"]
    zeros_b = tf.zeros_like(valid)
    if cfg.variant in ("ce", "focal"):
        w_fb = w_fg = w_bg = zeros_b
    else:
        w_fb, w_fg, w_bg = pair_weights(x_fg, x_bg, perm, cfg.gamma)
    beta = 0.0 if cfg.variant == "ce" else None
    dis = discriminative_loss(p, labels, w_fb, w_fg, w_bg, valid, cfg, beta=beta)

    # Eq. 8: background embedding of the batch for the x_ref EMA.
    bg_embedding = tf.reduce_mean(tf.stop_gradient(stats["bg_emb"]), 0)

    snippet = video = tf.constant(0.0)
    dropped = tf.constant(0.0)
    if cfg.variant.startswith("d2net"):
        if cfg.variant == "d2net":
            l1, ok1 = pdmi(stats["u1"], cfg.pdmi_rel_tol)
            snippet = tf.reduce_mean(l1)
            u2 = video_joint_matrix(p, labels, cfg)
            video, ok2 = pdmi(u2, cfg.pdmi_rel_tol)
            dropped = tf.reduce_sum(1.0 - tf.cast(ok1, tf.float32)) + 1.0 - tf.cast(ok2, tf.float32)
        else:
            pc = tf.clip_by_value(p, cfg.clip_eps, 1.0 - cfg.clip_eps)
            if cfg.variant == "d2net_l1":
                vid = tf.reduce_mean(tf.abs(pc - labels))
            elif cfg.variant == "d2net_bce":
                vid = -tf.reduce_mean(labels * tf.math.log(pc) + (1.0 - labels) * tf.math.log(1.0 - pc))
            else:
                raise ValueError(f"unknown loss variant {cfg.variant!r}")
            snippet = tf.reduce_sum(stats["snip_sum"]) / tf.maximum(tf.reduce_sum(stats["snip_weight"]), 1.0)
            video = vid
        on = tf.cast(denoise, tf.float32)
        snippet, video = snippet * on, video * on
    elif cfg.variant not in ("ce", "focal", "dis"):
        raise ValueError(f"unknown loss variant {cfg.variant!r}")

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
        "bg_embedding": bg_embedding,
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
) -> dict[str, tf.Tensor]:
    """All loss terms of a mini-batch for the variant `cfg.variant` (Eq. 1 and 11).

    Returns a dict with `loss` (the total) and every term: `dis`, `snippet`, `video`,
    `w_fb`, `w_fg`, `w_bg` (batch means), `pdmi_dropped` (count of dropped pDMI terms),
    `bg_embedding` [D] (the batch's background embedding for the x_ref EMA, Eq. 8).
    Equals `losses_from_statistics(per_video_statistics(...), perm, cfg, denoise)`.
    """
    stats = per_video_statistics(tcam, embeddings, labels, mask, x_ref, cfg)
    return losses_from_statistics(stats, perm, cfg, denoise)

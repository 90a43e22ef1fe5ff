"""The discriminative loss of D2-Net (paper Sec. 3.1, Eq. 2-4) and its Eq. 3 pairing.

Pure functions of tensors plus an explicit validity mask. Shapes: B videos, T snippets,
C classes, D embedding width; `mask` is [B, T] float (1 = real snippet). Deviations taken
from the official code are the named `LossConfig` options.
"""

from __future__ import annotations

import tensorflow as tf

from d2net_tf.config import LossConfig


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


def weighted_sums(weights: tf.Tensor, x: tf.Tensor, row_index: tf.Tensor | None = None) -> tf.Tensor:
    """sum_t weights[b, k, t] x[b, t] -> [B, K, D], for weights [B, K, T].

    x is [B, T, D] (padded layout), or with `row_index` [B, T] the packed rows [L, D] of a
    packed batch, snippet [b, t] being row row_index[b, t] (`data.pipeline.pack_videos`).
    Packed, the sums are one [B K, L] x [L, D] matmul of the weights scattered to their rows,
    and the gradient reaches the packed rows directly: no [B, T, D] copy of the embeddings,
    which has ~2.3x the rows at THUMOS14 lengths (B=10, T=750).
    """
    if row_index is None:
        return tf.matmul(weights, x)
    b, k, t = tf.unstack(tf.shape(weights))
    rows = tf.broadcast_to(tf.cast(row_index, tf.int32)[:, None, :], [b, k, t])
    bk = tf.broadcast_to(tf.reshape(tf.range(b * k), [b, k, 1]), [b, k, t])
    # Positions past a video's end (weight 0: the callers' masks) point at some row; adding 0 there is harmless.
    scattered = tf.scatter_nd(tf.stack([bk, rows], -1), weights, tf.stack([b * k, tf.shape(x)[0]]))
    return tf.reshape(tf.matmul(scattered, x), tf.stack([b, k, tf.shape(x)[-1]]))


def foreground_background_embeddings(
    x: tf.Tensor, attention: tf.Tensor, mask: tf.Tensor, cfg: LossConfig, row_index: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Eq. 2: attention-weighted foreground and background embeddings x_fg, x_bg [B, D], and
    whether each video has foreground / background weight, has_fg, has_bg [B] float.

    x_fg = sum_{lambda > tau} lambda x, x_bg likewise with lambda_b = 1 - lambda; with
    `weighted_mean_embeddings` (official) each sum is divided by the sum of its weights
    (zero vector when there is no weight). x: [B, T, D], or packed rows [L, D] with
    `row_index` (`weighted_sums`).
    """
    x = tf.cast(x, tf.float32)
    w_fg, w_bg = foreground_background_weights(attention, mask, cfg)
    # Both weighted sums as one matmul: with its gradient, 10 ms instead of 52 ms for two
    # einsums "bt,btd->bd" at B=10, T=750, D=1024 (2-core CPU).
    x_fg_bg = weighted_sums(tf.stack([w_fg, w_bg], axis=1), x, row_index)  # [B, 2, D]
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

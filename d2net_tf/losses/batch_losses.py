"""All loss terms of a batch (paper Eq. 1 and 11) from per-video statistics.

The per-video statistics are everything the batch-level losses need, with a leading batch
axis and no cross-video reduction. A multi-replica step all-gathers them (axis 0) and
evaluates `losses_from_statistics` on the global batch, so N replicas compute exactly the
single-device losses (`d2net_losses(..., gather=)`). Which statistics a variant needs and
how it reduces them: `losses.variants`.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from d2net_tf.config import LossConfig
from d2net_tf.losses.denoising import bottom_up_attention, snippet_selection
from d2net_tf.losses.discriminative import (
    discriminative_loss,
    foreground_background_embeddings,
    pair_weights,
    subset_pair_weights,
    top_down_attention,
)
from d2net_tf.losses.variants import variant_for
from d2net_tf.scores import video_scores_tf


def _rows(stats: dict[str, tf.Tensor], cfg: LossConfig) -> tf.Tensor:
    """[B] float: the videos that count in p, the pairing, U2, the snippet term and x_ref
    (official: the valid ones; `exclude_invalid_videos=False`: all)."""
    return stats["valid"] if cfg.exclude_invalid_videos else tf.ones_like(stats["valid"])


def per_video_statistics(
    tcam: tf.Tensor,
    embeddings: tf.Tensor,
    labels: tf.Tensor,
    mask: tf.Tensor,
    cfg: LossConfig,
    row_index: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Per-video quantities of a (local) batch, each [B, ...] (no cross-video reduction).

    p [B, C] video scores, labels [B, C], valid [B] (>= `min_valid_snippets` snippets and a
    label), x_fg / x_bg [B, D] and has_fg / has_bg [B] (Eq. 2), bg_emb [B, D] (Eq. 8 source,
    no gradient). `embeddings` [B, T, D], or the packed rows [L, D] with `row_index` [B, T]
    (`discriminative.weighted_sums`).
    """
    mask = tf.cast(mask, tf.float32)
    labels = tf.cast(labels, tf.float32)
    p = video_scores_tf(tcam, mask, cfg.topk_divisor)
    lam = top_down_attention(tcam)
    s = tf.reduce_sum(mask, 1)
    valid = tf.cast((s >= cfg.min_valid_snippets) & (tf.reduce_sum(labels, 1) > 0), tf.float32)
    x_fg, x_bg, has_fg, has_bg = foreground_background_embeddings(embeddings, lam, mask, cfg, row_index)
    if cfg.xref_source == "most_background_snippet":
        idx = tf.argmax(tf.where(mask > 0, 1.0 - lam, -1.0), axis=1, output_type=tf.int32)
        if row_index is None:
            bg_emb = tf.gather(tf.cast(embeddings, tf.float32), idx, batch_dims=1)
        else:
            bg_emb = tf.gather(tf.cast(embeddings, tf.float32), tf.gather(row_index, idx, batch_dims=1))
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
    row_index: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Per-video quantities of the snippet-level denoising (Eq. 8-9) against `x_ref`: the
    `statistics` of the variant's denoising term (none without one). `embeddings` and
    `row_index` as in `per_video_statistics`."""
    denoising = variant_for(cfg).denoising
    if denoising is None:
        return {}
    mask = tf.cast(mask, tf.float32)
    lam = top_down_attention(tcam)
    att_bu = tf.stop_gradient(bottom_up_attention(embeddings, x_ref, row_index))
    fg, bg = snippet_selection(att_bu, mask, cfg)
    lam_fg = top_down_attention(tcam, labels) if cfg.labelled_class_fg_attention else lam
    return denoising.snippet_statistics(lam, lam_fg, fg, bg, cfg)


def losses_from_statistics(
    stats: dict[str, tf.Tensor], perm: tf.Tensor, cfg: LossConfig, denoise: tf.Tensor | bool = True
) -> dict[str, tf.Tensor]:
    """All loss terms (see `d2net_losses`) from the per-video and snippet statistics of the
    whole batch. `perm` [B] is the Eq. 3 pairing over the rows of `stats`."""
    variant = variant_for(cfg)
    p, labels, valid = stats["p"], stats["labels"], stats["valid"]
    x_fg, x_bg = stats["x_fg"], stats["x_bg"]
    rows = _rows(stats, cfg)
    zeros_b = tf.zeros_like(valid)
    if not variant.pair_weights:
        w_fb = w_fg = w_bg = zeros_b
    elif cfg.pair_within_subsets:
        w_fb, w_fg, w_bg = subset_pair_weights(x_fg, x_bg, stats["has_fg"], stats["has_bg"], rows, perm, cfg)
    else:
        w_fb, w_fg, w_bg = pair_weights(x_fg, x_bg, perm, cfg.gamma)
    beta = None if variant.focusing else 0.0
    dis = discriminative_loss(p, labels, w_fb, w_fg, w_bg, valid, cfg, beta=beta)

    snippet = video = tf.constant(0.0)
    dropped = tf.constant(0.0)
    if variant.denoising is not None:
        snippet, video, dropped = variant.denoising.reduce(stats, rows, cfg)
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
    row_index: tf.Tensor | None = None,
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

    `embeddings` is [B, T, D], or with `row_index` [B, T] the packed rows [L, D] of a packed
    batch (`discriminative.weighted_sums`: the same terms without a per-video copy).
    """
    gather = gather or (lambda stats: stats)
    stats = gather(per_video_statistics(tcam, embeddings, labels, mask, cfg, row_index))
    new_ref = updated_reference(stats, x_ref, cfg)
    ref = new_ref if cfg.snippet_uses_updated_xref else x_ref
    stats.update(gather(snippet_statistics(tcam, embeddings, labels, mask, ref, cfg, row_index)))
    terms = losses_from_statistics(stats, perm, cfg, denoise)
    terms["x_ref"] = new_ref
    return terms

"""The loss variants (`LossConfig.variant`): which terms of Eq. 1 / Eq. 11 a variant trains with.

Each variant is a small object that says whether L_Dis (Eq. 4) has the Eq. 3 pair weights
and the focusing exponent, and which denoising term it adds: pDMI (Eq. 9-10, D2-Net) or the
paper's Table 4 ablations, L1 / BCE on the same pseudo labels. A denoising term names the
per-video statistics it needs and reduces them over the batch, so `batch_losses` produces
and consumes exactly those. The names are `config.LOSS_VARIANTS`, which `LossConfig`
validates in `__post_init__`.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from d2net_tf.config import LOSS_VARIANTS, LossConfig
from d2net_tf.losses.denoising import pdmi, snippet_joint_matrix, video_joint_matrix

# Per-video statistics of every variant (`batch_losses.per_video_statistics`).
PER_VIDEO_STATISTICS = ("p", "labels", "valid", "x_fg", "x_bg", "has_fg", "has_bg", "bg_emb")

# The official snippet pDMI clamps U1 at 1e-10 before its SVD.
_U1_FLOOR = 1e-10


def masked_mean(values: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


class PdmiDenoising:
    """D2-Net's denoising (Eq. 11): L_DS = pDMI(U1) per video (Eq. 9), L_DV = pDMI(U2) of the batch (Eq. 10)."""

    statistics = ("u1", "contributes")

    def snippet_statistics(self, lam, lam_fg, fg, bg, cfg: LossConfig) -> dict[str, tf.Tensor]:
        """u1 [B, 2, 2] (Eq. 9) and contributes [B] (the video has pseudo-foreground and -background)."""
        contributes = tf.cast((tf.reduce_sum(fg, 1) > 0) & (tf.reduce_sum(bg, 1) > 0), tf.float32)
        return {"u1": snippet_joint_matrix(lam_fg, lam, fg, bg, cfg.count_normalised_y), "contributes": contributes}

    def reduce(self, stats, rows, cfg: LossConfig) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(snippet, video, number of dropped pDMI terms) of the batch."""
        p, labels = stats["p"], stats["labels"]
        l1, ok1 = pdmi(tf.maximum(stats["u1"], _U1_FLOOR), cfg.pdmi_snippet_rel_tol, relative=True)
        contributes = stats["contributes"] * rows
        if cfg.snippet_mean_over_contributing:
            snippet = masked_mean(l1, contributes)
        else:
            snippet = tf.reduce_sum(l1 * rows) / tf.cast(tf.shape(l1)[0], tf.float32)
        video, ok2 = pdmi(video_joint_matrix(p, labels, cfg, rows), cfg.pdmi_video_tol)
        dropped = tf.reduce_sum((1.0 - tf.cast(ok1, tf.float32)) * contributes) + 1.0 - tf.cast(ok2, tf.float32)
        return snippet, video, dropped


@dataclasses.dataclass(frozen=True)
class PseudoLabelDenoising:
    """Table 4 ablation: L1 or BCE on D2-Net's pseudo labels in place of pDMI (snippets: lambda
    against 1 at pseudo-foreground, 0 at pseudo-background; videos: p against y)."""

    kind: str  # "l1" | "bce"
    statistics = ("snip_sum", "snip_weight")

    def snippet_statistics(self, lam, lam_fg, fg, bg, cfg: LossConfig) -> dict[str, tf.Tensor]:
        """snip_sum / snip_weight [B]: the weighted per-snippet losses and their weight."""
        if self.kind == "l1":
            snip = fg * tf.abs(1.0 - lam_fg) + bg * tf.abs(lam)
        else:
            eps = cfg.clip_eps
            snip = -fg * tf.math.log(tf.maximum(lam_fg, eps)) - bg * tf.math.log(tf.maximum(1.0 - lam, eps))
        weight = fg + bg
        return {"snip_sum": tf.reduce_sum(snip * weight, 1), "snip_weight": tf.reduce_sum(weight, 1)}

    def reduce(self, stats, rows, cfg: LossConfig) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(snippet, video, 0): no pDMI term to drop."""
        p, labels = stats["p"], stats["labels"]
        pc = tf.clip_by_value(p, cfg.clip_eps, 1.0 - cfg.clip_eps)
        if self.kind == "l1":
            per = tf.abs(pc - labels)
        else:
            per = -(labels * tf.math.log(pc) + (1.0 - labels) * tf.math.log(1.0 - pc))
        video = masked_mean(tf.reduce_mean(per, -1), rows)
        snippet = tf.reduce_sum(stats["snip_sum"] * rows) / tf.maximum(tf.reduce_sum(stats["snip_weight"] * rows), 1.0)
        return snippet, video, tf.constant(0.0)


@dataclasses.dataclass(frozen=True)
class LossVariant:
    """One loss variant.

    Args:
      name: str, one of `config.LOSS_VARIANTS`.
      pair_weights: bool, L_Dis with the Eq. 3 weights w_fb, w_fg, w_bg (else zero: BCE / focal).
      focusing: bool, L_Dis with the focusing exponent beta (Eq. 4; False: beta = 0, the BCE).
      denoising: PdmiDenoising | PseudoLabelDenoising | None, the L_D term of Eq. 1.
    """

    name: str
    pair_weights: bool
    focusing: bool
    denoising: PdmiDenoising | PseudoLabelDenoising | None = None

    @property
    def statistics(self) -> tuple[str, ...]:
        """The per-video statistics the variant's losses read."""
        return PER_VIDEO_STATISTICS + (self.denoising.statistics if self.denoising else ())


VARIANTS = {v.name: v for v in (
    LossVariant("ce", pair_weights=False, focusing=False),
    LossVariant("focal", pair_weights=False, focusing=True),
    LossVariant("dis", pair_weights=True, focusing=True),
    LossVariant("d2net", pair_weights=True, focusing=True, denoising=PdmiDenoising()),
    LossVariant("d2net_l1", pair_weights=True, focusing=True, denoising=PseudoLabelDenoising("l1")),
    LossVariant("d2net_bce", pair_weights=True, focusing=True, denoising=PseudoLabelDenoising("bce")),
)}
if tuple(VARIANTS) != LOSS_VARIANTS:  # one object per name LossConfig accepts
    raise ImportError(f"loss variants {tuple(VARIANTS)} are not config.LOSS_VARIANTS {LOSS_VARIANTS}")


def variant_for(cfg: LossConfig) -> LossVariant:
    """The variant `cfg.variant` (a valid name: `LossConfig` validates it)."""
    return VARIANTS[cfg.variant]

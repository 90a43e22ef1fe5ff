"""Typed configuration of D2-Net: architecture, losses and training, with paper/official presets.

Flagfiles select a preset and override fields; the resolved config is written
into the model directory as `config.json`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

LOSS_VARIANTS = ("ce", "focal", "dis", "d2net", "d2net_l1", "d2net_bce")
DATASETS = ("thumos14", "activitynet12")
SELECT_ON = ("heldout", "test", "last")  # checkpoint selection of a training run


@dataclasses.dataclass
class ModelConfig:
    """Architecture (paper Sec. 3, Fig. 2)."""

    feature_dim: int = 2048
    num_classes: int = 20
    kernel_size: int = 3
    dilation: int = 1
    classifier_kernel_size: int = 1  # paper: same as kernel_size; official THUMOS14: 1
    classifier_dilation: int = 1
    residual: bool = True  # official: h = lrelu(conv(h)) + h around the first two layers
    dropout: float = 0.7  # official: dropout before the classifier in training; paper: 0
    init: str = "official"  # "official": conv weights ~ N(0, 0.01), zero bias; "glorot": Keras default


@dataclasses.dataclass
class LossConfig:
    """Losses (Eq. 1-11). Official-code deviations are the named fields below."""

    variant: str = "d2net"  # one of LOSS_VARIANTS
    topk_divisor: float = 8.0  # k = ceil(s / topk_divisor) (official ActivityNet1.2: 4)
    fg_threshold: float = 0.5  # Eq. 2: tau for lambda
    bg_threshold: float = 0.5  # Eq. 2: tau for lambda_b = 1 - lambda (official ActivityNet: 0.8)
    weighted_mean_embeddings: bool = True  # official: Eq. 2 sums divided by the sum of weights
    gamma: float = 0.01  # Eq. 3 intra-class compactness weight
    beta: float = 2.0  # Eq. 4 focusing parameter
    clip_eps: float = 1e-3  # official: p clipped to [1e-3, 1 - 1e-3]; paper: tiny
    positive_weight_num_classes: bool = True  # official: positive-class terms weighted by C
    mean_over_classes: bool = True  # official: mean over classes; paper: sum
    min_valid_snippets: int = 5  # official: videos with fewer valid snippets are skipped in L_Dis
    # Snippet level (Eq. 8-9).
    attention_fg_threshold: float = 0.5  # lambda' > this: pseudo-foreground
    attention_bg_threshold: float = 0.5  # lambda' < this: pseudo-background (official ActivityNet: 0.3)
    labelled_class_fg_attention: bool = True  # official: fg lambda = max over labelled classes
    count_normalised_y: bool = True  # official: Y columns normalised by their counts (Eq. 9, Eq. 10)
    xref_momentum: float = 0.9  # Eq. 8 EMA
    xref_source: str = "most_background_snippet"  # official; "background_embedding": Eq. 2 x_bg
    # Video level (Eq. 10).
    video_score_floor: float = 0.2  # official: p_i zeroed below 0.2 max(p_i), then sum-normalised; 0: off
    # Eq. 1 / Eq. 11 weights and schedule.
    alpha_snippet: float = 0.1  # paper: alpha = 0.2 for both; official: 0.1 each
    alpha_video: float = 0.1
    denoise_start_step: int = 1000  # official: denoising switched on after 1000 iterations
    denoise_every: int = 2  # official: applied every second iteration
    pdmi_rel_tol: float = 1e-6  # singular values <= rel_tol * sigma_1 count as zero (Eq. 7)


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 10  # official default 20
    max_seqlen: int = 750
    learning_rate: float = 1e-4
    weight_decay: float = 5e-4  # paper 0.005, official 0.0005
    weight_decay_mode: str = "l2"  # "l2": PyTorch Adam(weight_decay) (added to the gradient); "decoupled": AdamW
    num_steps: int = 20000
    seed: int = 0


@dataclasses.dataclass
class D2NetConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "D2NetConfig":
        return cls(
            model=ModelConfig(**d.get("model", {})),
            loss=LossConfig(**d.get("loss", {})),
            train=TrainConfig(**d.get("train", {})),
        )


def preset(name: str = "official", dataset: str = "thumos14") -> D2NetConfig:
    """The paper's or the official code's settings for THUMOS14 or ActivityNet1.2."""
    if name not in ("paper", "official"):
        raise ValueError(f"preset must be 'paper' or 'official', got {name!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    anet = dataset == "activitynet12"
    kernel, dilation = (5, 2) if anet else (3, 1)
    model = ModelConfig(num_classes=100 if anet else 20, kernel_size=kernel, dilation=dilation)
    if name == "official":
        model.classifier_kernel_size, model.classifier_dilation = (5, 2) if anet else (1, 1)
        loss = LossConfig()
        if anet:
            loss.topk_divisor, loss.bg_threshold, loss.attention_bg_threshold = 4.0, 0.8, 0.3
        train = TrainConfig()
        return D2NetConfig(model, loss, train)
    model.classifier_kernel_size, model.classifier_dilation = kernel, dilation
    model.residual, model.dropout, model.init = False, 0.0, "glorot"
    alpha = 1e-3 if anet else 0.2
    loss = LossConfig(
        weighted_mean_embeddings=False,
        clip_eps=1e-7,
        positive_weight_num_classes=False,
        mean_over_classes=False,
        min_valid_snippets=1,
        labelled_class_fg_attention=False,
        count_normalised_y=False,
        xref_source="background_embedding",
        video_score_floor=0.0,
        alpha_snippet=alpha,
        alpha_video=alpha,
        denoise_start_step=0,
        denoise_every=1,
    )
    train = TrainConfig(weight_decay=5e-3)
    return D2NetConfig(model, loss, train)

"""Settings of the Sec. 3.3 post-processing, shared by the numpy localization and its TF twin.

Plain Python (no numpy, no TensorFlow): a model directory's config.json stores one of
these (`to_dict` / `from_dict`), so every command localizes with the settings the model
was trained and selected with.
"""

from __future__ import annotations

import dataclasses

from d2net_tf.data.benchmarks import THUMOS14, benchmark_for, find_benchmark
from d2net_tf.errors import D2NetInputError

PRESETS = ("official", "paper")


def _thresholds(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = int(round((stop - start) / step)) + 1
    return tuple(round(start + i * step, 10) for i in range(n))


@dataclasses.dataclass(frozen=True)
class LocalizationConfig:
    """Post-processing settings of Sec. 3.3.

    Args:
      topk_divisor: float, default 8.0. `k = max(1, ceil(s / topk_divisor))` snippets
        in the top-k mean that gives the video-level class score `p` (`d2net_tf.scores`);
        the same value as `LossConfig.topk_divisor`, never truncated to an int.
      class_threshold_ratio: float, default 0.5. Classes with `p_c > ratio * max(p)`
        are localized.
      thresholds: tuple of float, default 0.025, 0.05, ..., 0.5 (paper). Thresholds on
        `r_c`; the official code stops at 0.475.
      min_proposal_snippets: int, default 1 (paper). The official code drops
        proposals shorter than 2 snippets.
      outer_ratio: float, default 0.25. The outside region is
        `inflation = max(min_inflation, floor(outer_ratio * width + 0.5))` snippets
        on each side (round half up), clipped at the video ends.
      min_inflation: int, default 1. Lower bound on `inflation`, so that one-snippet
        proposals also have an outside region (`floor(0.25 + 0.5) = 0`).
      max_outer_inner: float or None, default None (paper). Official code: drop a
        proposal when `(outer - inner + 1) / 2 > max_outer_inner` (0.7), with
        `inner` / `outer` the means of `r_c` inside / outside.
      nms_tiou: float, default 0.5 (paper); 0.3 in the official THUMOS14 code.
      final_score_ratio: float, default 0.1. Keep detections with
        `S > ratio * max S` over the video's proposals.
      attention_rescale: float or None, default None. Official ActivityNet code:
        the refined sequence is `r_c = T_c * lambda' * attention_rescale / max(lambda')`
        (attention_rescale = 2) instead of `T_c * lambda'`.
    """

    topk_divisor: float = 8.0
    class_threshold_ratio: float = 0.5
    thresholds: tuple[float, ...] = _thresholds(0.025, 0.5, 0.025)
    min_proposal_snippets: int = 1
    outer_ratio: float = 0.25
    min_inflation: int = 1
    max_outer_inner: float | None = None
    nms_tiou: float = 0.5
    final_score_ratio: float = 0.1
    attention_rescale: float | None = None

    def __post_init__(self):
        if not self.topk_divisor > 0:
            raise D2NetInputError(f"LocalizationConfig.topk_divisor must be > 0, got {self.topk_divisor}")
        if len(self.thresholds) == 0:
            raise D2NetInputError("LocalizationConfig.thresholds must not be empty")
        if self.min_proposal_snippets < 1:
            raise D2NetInputError(
                f"LocalizationConfig.min_proposal_snippets must be >= 1, got {self.min_proposal_snippets}"
            )
        if not 0.0 <= self.nms_tiou <= 1.0:
            raise D2NetInputError(f"LocalizationConfig.nms_tiou must be in [0, 1], got {self.nms_tiou}")

    def to_dict(self) -> dict:
        """The fields as JSON values (config.json of a model directory)."""
        d = dataclasses.asdict(self)
        d["thresholds"] = list(self.thresholds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LocalizationConfig":
        """The inverse of `to_dict`; an unknown field is a D2NetInputError."""
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise D2NetInputError(f"LocalizationConfig: unknown fields {unknown}")
        d = dict(d)
        if "thresholds" in d:
            d["thresholds"] = tuple(float(t) for t in d["thresholds"])
        return cls(**d)

    @classmethod
    def paper(cls, dataset: str = "thumos14") -> "LocalizationConfig":
        """The settings as described in the paper (Sec. 3.3); identical for both benchmarks."""
        benchmark_for(dataset)
        return cls()

    @classmethod
    def official(cls, dataset: str = "thumos14") -> "LocalizationConfig":
        """The settings of the official D2-Net code.

        THUMOS14: thresholds 0.025..0.475, proposals >= 2 snippets, contrast filter
        0.7, NMS tIoU 0.3. ActivityNet1.2 additionally: the attention rescaling
        `2 / max(lambda')` (`BenchmarkSpec.official_localization`).
        """
        return cls(
            thresholds=_thresholds(0.025, 0.475, 0.025),
            min_proposal_snippets=2,
            max_outer_inner=0.7,
            nms_tiou=0.3,
            **benchmark_for(dataset).official_localization,
        )


def localization_config(preset: str, dataset_name: str, topk_divisor: float) -> LocalizationConfig:
    """The `preset` (official | paper) settings for `dataset_name`, with the run's top-k divisor
    (`LossConfig.topk_divisor`: classification and localization score videos alike). A dataset
    of no known benchmark gets the THUMOS14 settings."""
    if preset not in PRESETS:
        raise D2NetInputError(f"localization preset must be one of {PRESETS}, got {preset!r}")
    dataset = (find_benchmark(dataset_name) or THUMOS14).name
    base = LocalizationConfig.official(dataset) if preset == "official" else LocalizationConfig.paper(dataset)
    return dataclasses.replace(base, topk_divisor=float(topk_divisor))

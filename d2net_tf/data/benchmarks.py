"""The public benchmarks D2-Net is evaluated on: one record each (THUMOS14, ActivityNet1.2).

Everything that depends on which benchmark a dataset is (its W-TALC file prefix, its
train / test subsets, its feature rate, its tIoU thresholds and the settings in which the
official code differs between the two) is read from `benchmark_for(dataset_name)`, so that
no module re-derives it from a name string. This module sits at the bottom of the import
graph: plain Python, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Mapping

from d2net_tf.errors import D2NetInputError

# The W-TALC I3D features: one snippet per 16 frames of 25 fps video. Both benchmarks use
# them; it is also the rate assumed where no benchmark is known (a per-video dataset
# without a rate in its JSON, features extracted by d2net_tf.features).
I3D_SNIPPETS_PER_SECOND = 25.0 / 16.0


def _frozen(d: Mapping) -> Mapping:
    return types.MappingProxyType(dict(d))


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: what its files are called and where its settings differ.

    Attributes:
      name: str, the `--dataset` value and the `dataset` of a model directory's config.json
        ("thumos14", "activitynet12").
      file_prefix: str, the W-TALC prefix of its files (`{prefix}-I3D-JOINTFeatures.npy`,
        `{prefix}-Annotations/`) and the name of the loaded dataset.
      train_subset, test_subset: str, subset names of the training and evaluation videos.
      num_classes: int, number of action classes.
      snippets_per_second: float, feature rate.
      tiou_thresholds: tuple of float, the tIoU thresholds its mAP is reported at.
      has_ambiguous: bool, the annotations mark Ambiguous segments (`Ambiguous_test.txt`).
      kernel_size, dilation: int, first two temporal conv layers (official and paper).
      official_model, official_loss: ModelConfig / LossConfig fields the official code sets
        for this benchmark (`d2net_tf.config.preset("official", ...)`).
      official_localization: LocalizationConfig fields of the official post-processing.
      paper_alpha: float, Eq. 11 weight of both denoising terms in the paper preset.
    """

    name: str
    file_prefix: str
    train_subset: str
    test_subset: str
    num_classes: int
    snippets_per_second: float
    tiou_thresholds: tuple[float, ...]
    has_ambiguous: bool
    kernel_size: int
    dilation: int
    official_model: Mapping[str, object]
    official_loss: Mapping[str, object]
    official_localization: Mapping[str, object]
    paper_alpha: float
    # Lower-cased name prefixes (without "_", "-", ".", " ") that identify this benchmark.
    aliases: tuple[str, ...] = ()

    @property
    def splits(self) -> tuple[str, str]:
        """(train_subset, test_subset)."""
        return self.train_subset, self.test_subset

    def tiou(self, threshold: float) -> int:
        """Index of `threshold` in `tiou_thresholds` (e.g. where mAP@0.5 sits in a result list)."""
        for i, t in enumerate(self.tiou_thresholds):
            if abs(t - threshold) < 1e-9:
                return i
        raise D2NetInputError(f"{self.name}: tIoU {threshold} is not one of {self.tiou_thresholds}")


THUMOS14 = BenchmarkSpec(
    name="thumos14",
    file_prefix="Thumos14reduced",
    train_subset="validation",
    test_subset="test",
    num_classes=20,
    snippets_per_second=I3D_SNIPPETS_PER_SECOND,
    tiou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    has_ambiguous=True,
    kernel_size=3,
    dilation=1,
    official_model=_frozen({"classifier_kernel_size": 1, "classifier_dilation": 1}),
    official_loss=_frozen({}),
    official_localization=_frozen({}),
    paper_alpha=0.2,
    aliases=("thumos",),
)

ACTIVITYNET12 = BenchmarkSpec(
    name="activitynet12",
    file_prefix="ActivityNet1.2",
    train_subset="training",
    test_subset="validation",
    num_classes=100,
    snippets_per_second=I3D_SNIPPETS_PER_SECOND,
    tiou_thresholds=tuple(round(0.5 + 0.05 * i, 2) for i in range(10)),
    has_ambiguous=False,
    kernel_size=5,
    dilation=2,
    official_model=_frozen({"classifier_kernel_size": 5, "classifier_dilation": 2}),
    # Official ActivityNet1.2 script: k = ceil(s / 4), lambda_b = 1 - lambda >= 0.8, pseudo-bg
    # attention < 0.3.
    official_loss=_frozen({"topk_divisor": 4.0, "bg_threshold": 0.8, "attention_bg_threshold": 0.3}),
    # Official ActivityNet1.2 localization: r_c = T_c * lambda' * 2 / max(lambda').
    official_localization=_frozen({"attention_rescale": 2.0}),
    paper_alpha=1e-3,
    aliases=("activitynet", "anet"),
)

BENCHMARKS = (THUMOS14, ACTIVITYNET12)
BENCHMARK_NAMES = tuple(b.name for b in BENCHMARKS)


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "_-. ")


def find_benchmark(dataset_name: str) -> BenchmarkSpec | None:
    """The benchmark `dataset_name` is (its `name`, its file prefix or an alias prefix such as
    "thumos" / "anet"), or None for a dataset of no known benchmark."""
    key = _normalise(dataset_name)
    for b in BENCHMARKS:
        if key in (b.name, _normalise(b.file_prefix)) or any(key.startswith(a) for a in b.aliases):
            return b
    return None


def feature_rate(dataset_name: str) -> float:
    """Snippets per second of `dataset_name`'s features: its benchmark's rate, else the I3D rate."""
    b = find_benchmark(dataset_name)
    return b.snippets_per_second if b is not None else I3D_SNIPPETS_PER_SECOND


def benchmark_for(dataset_name: str) -> BenchmarkSpec:
    """Like `find_benchmark`, but an unknown name is a `D2NetInputError`."""
    b = find_benchmark(dataset_name)
    if b is None:
        raise D2NetInputError(
            f"unknown dataset {dataset_name!r}: expected one of {BENCHMARK_NAMES} "
            f"(or {', '.join(repr(x.file_prefix) for x in BENCHMARKS)})"
        )
    return b

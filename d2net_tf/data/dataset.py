"""In-memory description of a video dataset: features, video-level labels, ground truth.

Units: features are per snippet ([T, D] float32); segments are in seconds; the
feature rate `snippets_per_second` converts between the two (25 / 16 for the
W-TALC I3D features: 16-frame snippets of 25 fps video).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.errors import DataFormatError


@dataclasses.dataclass
class VideoDataset:
    """A dataset of untrimmed videos with video-level labels and temporal ground truth.

    Attributes:
      name: dataset name (e.g. "Thumos14reduced").
      classlist: class names, index = class id.
      video_ids: [N] video names.
      subsets: [N] subset of each video ("validation", "test", ...).
      labels: [N, C] float32 multi-hot video-level labels.
      segments: N arrays [n_i, 2] float64, ground-truth [start_s, end_s] in seconds.
      segment_labels: N arrays [n_i] int32, class id of each segment.
      durations: [N] float64 seconds.
      features: N arrays [T_i, D] float32 (None where the features are missing).
      snippets_per_second: feature rate.
      ambiguous: video id -> [k, 2] seconds of segments marked ambiguous (THUMOS14).
    """

    name: str
    classlist: list[str]
    video_ids: np.ndarray
    subsets: np.ndarray
    labels: np.ndarray
    segments: list[np.ndarray]
    segment_labels: list[np.ndarray]
    durations: np.ndarray
    features: list[np.ndarray | None]
    snippets_per_second: float = I3D_SNIPPETS_PER_SECOND
    ambiguous: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classlist)

    @property
    def feature_dim(self) -> int:
        for f in self.features:
            if f is not None:
                return int(f.shape[1])
        raise DataFormatError(f"dataset {self.name!r} has no video with features")

    def __len__(self) -> int:
        return len(self.video_ids)

    def indices(self, subset: str | Sequence[str] | None) -> np.ndarray:
        """Indices of the videos in `subset` (all videos when None)."""
        if subset is None:
            return np.arange(len(self))
        subset = [subset] if isinstance(subset, str) else list(subset)
        idx = np.flatnonzero(np.isin(self.subsets, subset))
        if idx.size == 0:
            raise DataFormatError(
                f"dataset {self.name!r}: no video in subset {subset}; "
                f"subsets present: {sorted(set(self.subsets.tolist()))}"
            )
        return idx

    def select(self, indices: np.ndarray) -> "VideoDataset":
        """A new dataset holding only the videos at `indices` (features not copied)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            video_ids=self.video_ids[indices],
            subsets=self.subsets[indices],
            labels=self.labels[indices],
            segments=[self.segments[i] for i in indices],
            segment_labels=[self.segment_labels[i] for i in indices],
            durations=self.durations[indices],
            features=[self.features[i] for i in indices],
            ambiguous={v: a for v, a in self.ambiguous.items() if v in set(self.video_ids[indices].tolist())},
        )

    def subset(self, subset: str | Sequence[str] | None) -> "VideoDataset":
        return self.select(self.indices(subset))

    def ground_truth_table(self) -> dict[str, np.ndarray]:
        """Flat ground-truth table: video_ids, labels (class ids), starts, ends (seconds)."""
        counts = [len(s) for s in self.segments]
        vids = np.repeat(self.video_ids.astype(str), counts)
        segs = np.concatenate([np.reshape(s, (-1, 2)) for s in self.segments]) if sum(counts) else np.zeros((0, 2))
        labs = np.concatenate(self.segment_labels) if sum(counts) else np.zeros((0,), np.int32)
        return {
            "video_ids": vids,
            "labels": labs.astype(np.int32),
            "starts": segs[:, 0].astype(np.float64),
            "ends": segs[:, 1].astype(np.float64),
        }


def validate_features(
    features: np.ndarray, *, source: str, video_id: str, feature_dim: int | None
) -> np.ndarray:
    """Checks one video's features: 2-D float, right width, finite. Returns float32 [T, D]."""
    video_id = str(video_id)
    arr = np.asarray(features)
    if arr.ndim != 2:
        raise DataFormatError(
            f"{source}: video {video_id!r}: features must be a 2-D [T, D] array, got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(f"{source}: video {video_id!r}: features must be numeric, got dtype {arr.dtype}")
    if feature_dim is not None and arr.shape[1] != feature_dim:
        raise DataFormatError(
            f"{source}: video {video_id!r}: feature dimension {arr.shape[1]}, expected {feature_dim}"
        )
    if arr.shape[0] == 0:
        raise DataFormatError(f"{source}: video {video_id!r}: zero-length video (0 snippets)")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise DataFormatError(f"{source}: video {video_id!r}: {bad} NaN/inf feature values")
    return arr


def drop_unusable_videos(
    dataset: VideoDataset, min_snippets: int, warn: Callable[[str], None]
) -> VideoDataset:
    """Drops videos whose features are missing or shorter than `min_snippets`, with one warning."""
    keep = np.array(
        [f is not None and f.shape[0] >= min_snippets for f in dataset.features], dtype=bool
    )
    dropped = int((~keep).sum())
    if dropped:
        missing = sum(f is None for f in dataset.features)
        warn(
            f"{dataset.name}: skipped {dropped} of {len(dataset)} videos "
            f"({missing} without features, {dropped - missing} shorter than {min_snippets} snippets)"
        )
        return dataset.select(np.flatnonzero(keep))
    return dataset

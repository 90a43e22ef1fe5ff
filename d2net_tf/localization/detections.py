"""Detections: the scored action segments the localization produces and the evaluation reads."""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from d2net_tf.errors import D2NetInputError


@dataclasses.dataclass
class Detections:
    """Scored action segments of one or many videos (flat table, one row per detection).

    Attributes:
      video_ids: [n] str, video of each detection.
      class_ids: [n] int32, class index (into a classlist).
      starts: [n] float64, start in seconds.
      ends: [n] float64, end in seconds (> start).
      scores: [n] float64 confidence (higher = more confident).
    """

    video_ids: np.ndarray
    class_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.video_ids = np.asarray(self.video_ids, dtype=str).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        self.starts = np.asarray(self.starts, dtype=np.float64).reshape(-1)
        self.ends = np.asarray(self.ends, dtype=np.float64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.class_ids)
        if not (len(self.video_ids) == len(self.starts) == len(self.ends) == len(self.scores) == n):
            raise D2NetInputError(
                "Detections: video_ids, class_ids, starts, ends and scores must have the same length, got "
                f"{[len(self.video_ids), n, len(self.starts), len(self.ends), len(self.scores)]}"
            )

    # Aliases matching the per-video output description ("starts_s", "ends_s").
    @property
    def starts_s(self) -> np.ndarray:
        return self.starts

    @property
    def ends_s(self) -> np.ndarray:
        return self.ends

    def __len__(self) -> int:
        return len(self.class_ids)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros(0, str), np.zeros(0, np.int32), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Iterable["Detections"]) -> "Detections":
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.video_ids for p in parts]) if any(len(p) for p in parts) else np.zeros(0, str),
            np.concatenate([p.class_ids for p in parts]),
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )

    def select(self, mask_or_index: np.ndarray) -> "Detections":
        return Detections(
            self.video_ids[mask_or_index],
            self.class_ids[mask_or_index],
            self.starts[mask_or_index],
            self.ends[mask_or_index],
            self.scores[mask_or_index],
        )

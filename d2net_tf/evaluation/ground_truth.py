"""The evaluator's ground truth: `GroundTruth`, and the official D2-Net THUMOS14 W-TALC ground truth.

`GroundTruth` is the data layer's `GroundTruthTable` plus what the "wtalc" protocol needs to
know about where the segments come from (segments.npy or test_gt_segments.npy).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Sequence

import numpy as np

from d2net_tf.data.benchmarks import THUMOS14
from d2net_tf.data.ground_truth_json import GroundTruthTable
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.data.wtalc import load_wtalc_annotations, vendored_annotation_dir
from d2net_tf.errors import D2NetInputError, DataFormatError

WTALC_GROUND_TRUTH_SOURCES = ("segments", "test_gt_segments")
TEST_GT_SEGMENTS_FILE = "test_gt_segments.npy"
# getDetections maps a test_gt_segments.npy row to its video by `videoname[k][11:]`
# ("video_test_0000890" -> "0000890").
_TEST_GT_NAME_OFFSET = len("video_test_")


@dataclasses.dataclass
class GroundTruth(GroundTruthTable):
    """Temporal ground truth of one split, as the evaluator reads it.

    The table's attributes (`GroundTruthTable`: video_ids, class_ids, starts, ends,
    classlist, ambiguous, durations, snippets_per_second, subsets), and:
      source: where the segments come from: "segments" (segments.npy / JSON) or
        "test_gt_segments" (`ground_truth_from_test_gt_segments`).
      wtalc_videos: the videos whose predictions the "wtalc" protocol keeps, or None
        (= the videos with a segment). Set for "test_gt_segments" ground truth: the
        official code keeps the videos with segments in segments.npy.
    """

    source: str = "segments"
    wtalc_videos: list[str] | None = None

    def __post_init__(self):
        if self.source not in WTALC_GROUND_TRUTH_SOURCES:
            raise D2NetInputError(f"GroundTruth: source must be one of {WTALC_GROUND_TRUTH_SOURCES}, got {self.source!r}")
        if self.wtalc_videos is not None:
            self.wtalc_videos = [str(v) for v in self.wtalc_videos]
        super().__post_init__()


def read_test_gt_segments(path: str | None = None) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    """The per-class rows of a W-TALC ``test_gt_segments.npy``: ``(video suffix, start, end)``.

    `path` None reads the vendored THUMOS14 copy (the file the official code always
    reads). Start / end are fractions of the video's duration. Read through the
    restricted unpickler; cached per path.
    """
    if path is None:
        path = os.path.join(vendored_annotation_dir(THUMOS14.file_prefix), TEST_GT_SEGMENTS_FILE)
    return _read_test_gt_segments(os.path.abspath(path))


@functools.lru_cache(maxsize=4)
def _read_test_gt_segments(path: str) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    if not os.path.exists(path):
        raise DataFormatError(f"{path}: file not found (the W-TALC test_gt_segments ground truth)")
    arr = load_npy(path)
    if arr.dtype != object or arr.ndim != 1:
        raise DataFormatError(f"{path}: expected a 1-D object array of per-class [n, 3] arrays, got {arr.dtype} {arr.shape}")
    out = []
    for k, rows in enumerate(arr):
        parsed = []
        for i, row in enumerate(rows):
            try:
                name, f_s, f_e = row
                name = name.decode("utf-8") if isinstance(name, (bytes, np.bytes_)) else str(name)
                f_s, f_e = float(f_s), float(f_e)
            except (TypeError, ValueError):
                raise DataFormatError(f"{path}: class {k}, row {i}: expected (video, start, end), got {row!r}") from None
            if not (math.isfinite(f_s) and math.isfinite(f_e)):
                raise DataFormatError(f"{path}: class {k}, row {i}: NaN/inf in {row!r}")
            parsed.append((name, f_s, f_e))
        out.append(tuple(parsed))
    return tuple(out)


def ground_truth_from_test_gt_segments(
    base: GroundTruth,
    per_class: Sequence[Sequence[tuple[str, float, float]]] | None = None,
    source: str = TEST_GT_SEGMENTS_FILE,
) -> GroundTruth:
    """The official D2-Net THUMOS14 ground truth (``getDetections`` / ``getLocMAP``) on `base`'s videos.

    Args:
      base: ground truth of the split from segments.npy (`GroundTruth.from_dataset` of
        the test subset). Gives the videos, their durations (seconds), the Ambiguous
        segments and the classlist.
      per_class: rows of class k = `base.classlist[k]`, as `read_test_gt_segments`
        returns them; None = the vendored THUMOS14 file.
      source: names the rows in error messages.
    Returns:
      GroundTruth with one row per test_gt_segments instance (class-major, file order),
      start / end = fraction x duration seconds (the "wtalc" protocol then takes
      ``round(seconds x snippets_per_second)``, the official ``round(f x duration x
      25 / 16)`` bit for bit), `source` "test_gt_segments" and `wtalc_videos` = the
      videos of `base` with a segment.
    Raises:
      D2NetInputError: a row names a video that is not a video of `base` with a
        segment (e.g. a validation split, or the tiny synthetic set), or the class
        count or durations do not fit.
    """
    if base.source != "segments":
        raise D2NetInputError("ground_truth_from_test_gt_segments: `base` must be segments.npy ground truth")
    if per_class is None:
        per_class = read_test_gt_segments()
    if len(per_class) != len(base.classlist):
        raise D2NetInputError(
            f"{source}: {len(per_class)} classes, but the ground truth has {len(base.classlist)}; "
            f"test_gt_segments applies to THUMOS14 (20 classes)"
        )
    with_segments = set(base.video_ids.tolist())
    videos = [v for v in base.video_list if v in with_segments]
    by_suffix: dict[str, str] = {}
    for v in videos:
        key = v[_TEST_GT_NAME_OFFSET:]
        if key in by_suffix:
            raise D2NetInputError(f"{source}: videos {by_suffix[key]!r} and {v!r} share the name suffix {key!r}")
        by_suffix[key] = v
    durations = base.durations or {}
    rows: list[tuple[str, int, float, float]] = []
    missing: set[str] = set()
    for k, class_rows in enumerate(per_class):
        for name, f_s, f_e in class_rows:
            vid = by_suffix.get(name)
            if vid is None:
                missing.add(name)
                continue
            d = float(durations.get(vid, float("nan")))
            if not math.isfinite(d):
                raise D2NetInputError(f"{source}: video {vid!r} has no finite duration in the ground truth")
            rows.append((vid, k, float(f_s) * d, float(f_e) * d))
    if missing:
        names = sorted(missing)
        raise D2NetInputError(
            f"{source}: {len(names)} referenced videos (e.g. {', '.join(names[:3])}) are not among the "
            f"{len(videos)} videos with segments of this ground truth; test_gt_segments applies only to the "
            f"212 THUMOS14 test videos at their real durations"
        )
    return GroundTruth(
        video_ids=np.array([r[0] for r in rows], dtype=str),
        class_ids=np.array([r[1] for r in rows], dtype=np.int32),
        starts=np.array([r[2] for r in rows], dtype=np.float64),
        ends=np.array([r[3] for r in rows], dtype=np.float64),
        classlist=list(base.classlist),
        ambiguous=dict(base.ambiguous),
        durations=dict(base.durations) if base.durations is not None else None,
        snippets_per_second=base.snippets_per_second,
        subsets=dict(base.subsets) if base.subsets is not None else None,
        source="test_gt_segments",
        wtalc_videos=videos,
    )


def load_wtalc_ground_truth(annotation_dir: str, subset: str | Sequence[str] | None = None) -> GroundTruth:
    """GroundTruth of `subset` of a W-TALC annotation folder (all videos when None)."""
    return GroundTruth.from_dataset(load_wtalc_annotations(annotation_dir), subset)


def load_wtalc_test_gt_segments(
    annotation_dir: str, subset: str = "test", path: str | None = None
) -> GroundTruth:
    """The official D2-Net THUMOS14 W-TALC ground truth (test_gt_segments.npy) of a W-TALC annotation folder.

    Videos, durations and Ambiguous segments come from `annotation_dir` (its `subset`
    videos); the instances from `path`, default `annotation_dir`/test_gt_segments.npy
    when that file exists, else the vendored THUMOS14 copy (the official code always
    reads its own copy, whatever the annotation path). The embedded synthetic
    `thumos14` data copies the real annotation folder, so it applies there; the
    `tiny` synthetic set (4 rescaled test videos) raises D2NetInputError.
    """
    if path is None:
        local = os.path.join(annotation_dir, TEST_GT_SEGMENTS_FILE)
        path = local if os.path.exists(local) else None
    base = load_wtalc_ground_truth(annotation_dir, subset)
    return ground_truth_from_test_gt_segments(base, read_test_gt_segments(path), path or TEST_GT_SEGMENTS_FILE)

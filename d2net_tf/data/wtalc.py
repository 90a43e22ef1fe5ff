"""Loader for the W-TALC layout (W-TALC, 3C-Net, the official D2-Net code).

Layout (DATASET is `Thumos14reduced` or `ActivityNet1.2`):
  DATA_DIR/{DATASET}-I3D-JOINTFeatures.npy   object array, one float32 [T_i, 2048] per video
  DATA_DIR/{DATASET}-Annotations/            videoname, subset, labels_all, segments, labels,
                                             classlist, duration (.npy), Ambiguous_test.txt
Strings may be bytes or str. Files are read through a restricted unpickler
(`safe_npy.load_npy`), never `np.load(allow_pickle=True)`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Callable

import numpy as np

from d2net_tf.data.benchmarks import feature_rate
from d2net_tf.data.dataset import VideoDataset, drop_unusable_videos, validate_features
from d2net_tf.data.ground_truth_json import GroundTruthTable, ground_truth_document
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.errors import DataFormatError
from d2net_tf.jsonio import write_json_atomic

ANNOTATION_FILES = ("videoname", "subset", "labels_all", "segments", "labels", "classlist", "duration")
VENDORED_ANNOTATIONS = os.path.join(os.path.dirname(__file__), "annotations")


def vendored_annotation_dir(dataset_name: str) -> str:
    """The annotation folder shipped with the package for `dataset_name`."""
    path = os.path.join(VENDORED_ANNOTATIONS, f"{dataset_name}-Annotations")
    if not os.path.isdir(path):
        raise DataFormatError(
            f"no vendored annotations for dataset {dataset_name!r}; "
            f"known: {sorted(d[:-len('-Annotations')] for d in os.listdir(VENDORED_ANNOTATIONS))}"
        )
    return path


def _to_str(x) -> str:
    if isinstance(x, (bytes, np.bytes_)):
        return x.decode("utf-8")
    return str(x)


def _str_list(x, *, source: str, field: str, video: str) -> list[str]:
    if isinstance(x, (str, bytes, np.str_, np.bytes_)):
        return [_to_str(x)]
    try:
        return [_to_str(v) for v in x]
    except TypeError:
        raise DataFormatError(f"{source}: {field} of video {video!r} must be a list of class names, got {x!r}")


def _segment_list(x, *, source: str, video: str) -> list[list[float]]:
    try:
        return np.asarray(x, dtype=np.float64).reshape(-1, 2).tolist()
    except (TypeError, ValueError):
        raise DataFormatError(f"{source}: segments of video {video!r} must be [start, end] pairs, got {x!r}")


def read_ambiguous(path: str) -> list[tuple[str, float, float]]:
    """Reads THUMOS14 `Ambiguous_test.txt` (`video start end` per line, seconds), in file order."""
    out: list[tuple[str, float, float]] = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise DataFormatError(f"{path}:{lineno}: expected 'video start end', got {line.strip()!r}")
            try:
                s, e = float(parts[1]), float(parts[2])
            except ValueError:
                raise DataFormatError(f"{path}:{lineno}: start/end must be numbers, got {line.strip()!r}")
            out.append((parts[0], s, e))
    return out


@dataclasses.dataclass
class WtalcAnnotations:
    """A `{DATASET}-Annotations/` folder decoded to Python values, in file order.

    Kept as the files hold them (label lists with their order, duration's [N, 1] shape)
    so that a subset can be written back in the same layout (the synthetic `tiny` set).
    """

    dataset: str
    videoname: list[str]
    subset: list[str]
    duration: np.ndarray  # [N] float64 seconds
    segments: list[list[list[float]]]  # per video: [[start_s, end_s], ...]
    labels: list[list[str]]  # per video: class of each segment
    labels_all: list[list[str]]  # per video: video-level classes
    classlist: list[str]
    ambiguous: list[tuple[str, float, float]]  # (video, start_s, end_s)
    duration_2d: bool  # THUMOS14 stores duration as [N, 1]


def read_wtalc_annotations(annotation_dir: str, dataset_name: str | None = None) -> WtalcAnnotations:
    """The one reader of a W-TALC annotation folder (the loader and the synthetic generator use it).

    Checks that every file is present and holds one entry per video; `dataset_name`
    defaults to the folder name without `-Annotations`.
    """
    if not os.path.isdir(annotation_dir):
        raise DataFormatError(f"{annotation_dir}: annotation folder does not exist")
    if dataset_name is None:
        base = os.path.basename(os.path.normpath(annotation_dir))
        dataset_name = base[: -len("-Annotations")] if base.endswith("-Annotations") else base
    arrays = {}
    for field in ANNOTATION_FILES:
        path = os.path.join(annotation_dir, f"{field}.npy")
        if not os.path.exists(path):
            raise DataFormatError(f"{path}: missing annotation file ({field}.npy is required)")
        arrays[field] = load_npy(path)
    names = [_to_str(v) for v in np.ravel(arrays["videoname"])]
    n = len(names)
    for field in ("subset", "labels_all", "segments", "labels", "duration"):
        length = len(arrays[field])
        if length != n:
            raise DataFormatError(
                f"{os.path.join(annotation_dir, field + '.npy')}: {length} entries, "
                f"expected {n} (one per video in videoname.npy)"
            )
    amb_path = os.path.join(annotation_dir, "Ambiguous_test.txt")
    return WtalcAnnotations(
        dataset=dataset_name,
        videoname=names,
        subset=[_to_str(s) for s in np.ravel(arrays["subset"])],
        duration=np.asarray(arrays["duration"], dtype=np.float64).reshape(n),
        segments=[_segment_list(x, source=annotation_dir, video=v) for x, v in zip(arrays["segments"], names)],
        labels=[_str_list(x, source=annotation_dir, field="labels", video=v) for x, v in zip(arrays["labels"], names)],
        labels_all=[_str_list(x, source=annotation_dir, field="labels_all", video=v)
                    for x, v in zip(arrays["labels_all"], names)],
        classlist=[_to_str(c) for c in np.ravel(arrays["classlist"])],
        ambiguous=read_ambiguous(amb_path) if os.path.exists(amb_path) else [],
        duration_2d=np.asarray(arrays["duration"]).ndim == 2,
    )


def load_wtalc_annotations(annotation_dir: str, dataset_name: str | None = None) -> VideoDataset:
    """Reads a `{DATASET}-Annotations/` folder into a validated VideoDataset; features are left as None."""
    ann = read_wtalc_annotations(annotation_dir, dataset_name)
    classlist = ann.classlist
    class_index = {c: i for i, c in enumerate(classlist)}
    n = len(ann.videoname)

    def class_id(name: str, field: str, video: str) -> int:
        if name not in class_index:
            raise DataFormatError(
                f"{os.path.join(annotation_dir, field + '.npy')}: video {video!r} has label {name!r}, "
                f"which is not in classlist.npy"
            )
        return class_index[name]

    labels = np.zeros((n, len(classlist)), np.float32)
    segments, segment_labels = [], []
    seg_src = os.path.join(annotation_dir, "segments.npy")
    for i, vid in enumerate(ann.videoname):
        for name in ann.labels_all[i]:
            labels[i, class_id(name, "labels_all", vid)] = 1.0
        seg_names = ann.labels[i]
        seg = np.asarray(ann.segments[i], dtype=np.float64).reshape(-1, 2) if len(seg_names) else np.zeros((0, 2))
        if len(seg) != len(seg_names):
            raise DataFormatError(
                f"{seg_src}: video {vid!r} has {len(seg)} segments but labels.npy gives {len(seg_names)} labels"
            )
        if len(seg) and not (seg[:, 1] >= seg[:, 0]).all():
            raise DataFormatError(f"{seg_src}: video {vid!r} has a segment with end < start")
        segments.append(seg)
        segment_labels.append(np.array([class_id(c, "labels", vid) for c in seg_names], np.int32))

    ambiguous: dict[str, list[list[float]]] = {}
    for v, s, e in ann.ambiguous:
        ambiguous.setdefault(v, []).append([s, e])
    return VideoDataset(
        name=ann.dataset,
        classlist=classlist,
        video_ids=np.array(ann.videoname),
        subsets=np.array(ann.subset),
        labels=labels,
        segments=segments,
        segment_labels=segment_labels,
        durations=ann.duration,
        features=[None] * n,
        snippets_per_second=feature_rate(ann.dataset),
        ambiguous={v: np.asarray(a, np.float64) for v, a in ambiguous.items()},
    )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def wtalc_to_activitynet(
    dataset: VideoDataset, warn: Callable[[str], None] = _stderr, *, source: str | None = None
) -> dict[str, Any]:
    """The one W-TALC -> ActivityNet-style ground-truth conversion (`ground_truth_json` layout).

    Writes each video's subset, duration and Ambiguous segments. Segments with
    end <= start (ten in ActivityNet1.2) are not valid ActivityNet segments (the JSON
    reader rejects them), so they are skipped with one warning naming `source`.
    """
    gt = GroundTruthTable.from_dataset(dataset)
    gt.subsets = {str(v): str(s) for v, s in zip(dataset.video_ids.tolist(), dataset.subsets.tolist())}
    bad = gt.ends <= gt.starts
    if bad.any():
        warn(f"{source or dataset.name}: skipped {int(bad.sum())} ground-truth segments with end <= start")
        gt = gt.select_rows(~bad)
    return ground_truth_document(gt)


def write_ground_truth(
    annotation_dir: str, output: str, subset: str | None = None, warn: Callable[[str], None] = _stderr
) -> dict[str, Any]:
    """Writes the ActivityNet-style ground truth of a W-TALC annotation folder (`subset` None:
    every video) to `output`, atomically; returns what was written."""
    dataset = load_wtalc_annotations(annotation_dir)
    if subset is not None:
        dataset = dataset.subset(subset)
    payload = wtalc_to_activitynet(dataset, warn, source=annotation_dir)
    write_json_atomic(output, payload)
    return payload


def load_wtalc_dataset(
    data_dir: str,
    dataset_name: str,
    *,
    feature_dim: int | None = None,
    min_snippets: int = 2,
    warn: Callable[[str], None] = print,
) -> VideoDataset:
    """Loads `{dataset_name}-I3D-JOINTFeatures.npy` and its annotations from `data_dir`.

    Features of each video are validated ([T, feature_dim], finite); videos whose
    features are missing (None/empty entry) or shorter than `min_snippets` are
    skipped with one warning that counts them.
    """
    feat_path = os.path.join(data_dir, f"{dataset_name}-I3D-JOINTFeatures.npy")
    ann_dir = os.path.join(data_dir, f"{dataset_name}-Annotations")
    if not os.path.exists(feat_path):
        raise DataFormatError(f"{feat_path}: feature file not found (expected the W-TALC layout in {data_dir})")
    dataset = load_wtalc_annotations(ann_dir, dataset_name)
    feats = load_npy(feat_path)
    if feats.dtype != object or feats.ndim != 1:
        raise DataFormatError(f"{feat_path}: expected a 1-D object array of [T_i, D] arrays, got {feats.dtype} {feats.shape}")
    if len(feats) != len(dataset):
        raise DataFormatError(
            f"{feat_path}: {len(feats)} videos, expected {len(dataset)} (one per video in videoname.npy)"
        )
    features: list[np.ndarray | None] = []
    for vid, f in zip(dataset.video_ids, feats):
        if f is None or (hasattr(f, "size") and np.asarray(f).size == 0 and np.asarray(f).ndim < 2):
            features.append(None)
            continue
        arr = np.asarray(f)
        if arr.ndim == 2 and arr.shape[0] == 0:
            features.append(None)
            continue
        arr = validate_features(arr, source=feat_path, video_id=vid, feature_dim=feature_dim)
        features.append(arr)
        if feature_dim is None:
            feature_dim = arr.shape[1]
    dataset.features = features
    return drop_unusable_videos(dataset, min_snippets, warn)

"""Loader for the W-TALC layout (W-TALC, 3C-Net, the official D2-Net code).

Layout (DATASET is `Thumos14reduced` or `ActivityNet1.2`):
  DATA_DIR/{DATASET}-I3D-JOINTFeatures.npy   object array, one float32 [T_i, 2048] per video
  DATA_DIR/{DATASET}-Annotations/            videoname, subset, labels_all, segments, labels,
                                             classlist, duration (.npy), Ambiguous_test.txt
Strings may be bytes or str. Files are read through a restricted unpickler
(`safe_npy.load_npy`), never `np.load(allow_pickle=True)`.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from d2net_tf.data.benchmarks import feature_rate
from d2net_tf.data.dataset import VideoDataset, drop_unusable_videos, validate_features
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.errors import DataFormatError

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


def read_ambiguous(path: str) -> dict[str, np.ndarray]:
    """Reads THUMOS14 `Ambiguous_test.txt` (`video start end` per line) into video -> [k, 2] seconds."""
    out: dict[str, list[list[float]]] = {}
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
            out.setdefault(parts[0], []).append([s, e])
    return {v: np.asarray(a, np.float64) for v, a in out.items()}


def load_wtalc_annotations(annotation_dir: str, dataset_name: str | None = None) -> VideoDataset:
    """Reads a `{DATASET}-Annotations/` folder; features are left as None."""
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

    classlist = [_to_str(c) for c in np.ravel(arrays["classlist"])]
    class_index = {c: i for i, c in enumerate(classlist)}
    names = np.array([_to_str(v) for v in np.ravel(arrays["videoname"])])
    n = len(names)
    for field in ("subset", "labels_all", "segments", "labels", "duration"):
        length = len(arrays[field])
        if length != n:
            raise DataFormatError(
                f"{os.path.join(annotation_dir, field + '.npy')}: {length} entries, "
                f"expected {n} (one per video in videoname.npy)"
            )
    subsets = np.array([_to_str(s) for s in np.ravel(arrays["subset"])])
    durations = np.asarray(arrays["duration"], dtype=np.float64).reshape(n)

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
    for i, vid in enumerate(names.tolist()):
        for name in _str_list(arrays["labels_all"][i], source=annotation_dir, field="labels_all", video=vid):
            labels[i, class_id(name, "labels_all", vid)] = 1.0
        seg_names = _str_list(arrays["labels"][i], source=annotation_dir, field="labels", video=vid)
        seg = np.asarray(arrays["segments"][i], dtype=np.float64).reshape(-1, 2) if len(seg_names) else np.zeros((0, 2))
        if len(seg) != len(seg_names):
            raise DataFormatError(
                f"{seg_src}: video {vid!r} has {len(seg)} segments but labels.npy gives {len(seg_names)} labels"
            )
        if len(seg) and not (seg[:, 1] >= seg[:, 0]).all():
            raise DataFormatError(f"{seg_src}: video {vid!r} has a segment with end < start")
        segments.append(seg)
        segment_labels.append(np.array([class_id(c, "labels", vid) for c in seg_names], np.int32))

    ambiguous = {}
    amb_path = os.path.join(annotation_dir, "Ambiguous_test.txt")
    if os.path.exists(amb_path):
        ambiguous = read_ambiguous(amb_path)
    return VideoDataset(
        name=dataset_name,
        classlist=classlist,
        video_ids=names,
        subsets=subsets,
        labels=labels,
        segments=segments,
        segment_labels=segment_labels,
        durations=durations,
        features=[None] * n,
        snippets_per_second=feature_rate(dataset_name),
        ambiguous=ambiguous,
    )


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

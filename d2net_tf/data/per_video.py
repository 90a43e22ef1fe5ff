"""Loader for the per-video layout, for users who bring their own features.

Layout:
  FEATURE_DIR/{video_id}.npy        plain float [T, D] arrays (no pickle)
  GROUND_TRUTH.json                 ActivityNet style:
      {"database": {vid: {"subset": str, "duration": seconds,
                          "annotations": [{"label": str, "segment": [start_s, end_s]}]}},
       "classlist": [...]             (optional; default: sorted labels)
       "snippets_per_second": float}  (optional; default: the `snippets_per_second` argument)
Video-level labels are the set of labels of a video's annotations.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from d2net_tf.data.dataset import VideoDataset, drop_unusable_videos, validate_features
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.errors import DataFormatError
from d2net_tf.jsonio import read_json


def load_per_video_dataset(
    feature_dir: str,
    ground_truth_json: str,
    *,
    snippets_per_second: float | None = None,
    feature_dim: int | None = None,
    min_snippets: int = 2,
    name: str = "custom",
    warn: Callable[[str], None] = print,
) -> VideoDataset:
    """Loads a per-video dataset; videos without a feature file are skipped with one warning."""
    gt = read_json(ground_truth_json)
    if not isinstance(gt, dict):
        raise DataFormatError(f"{ground_truth_json}: expected a JSON object at the top level")
    if "database" not in gt or not isinstance(gt["database"], dict):
        raise DataFormatError(f"{ground_truth_json}: missing the 'database' object")
    if not os.path.isdir(feature_dir):
        raise DataFormatError(f"{feature_dir}: feature folder does not exist")
    sps = gt.get("snippets_per_second", snippets_per_second)
    if sps is None or not float(sps) > 0:
        raise DataFormatError(
            f"{ground_truth_json}: the feature rate is unknown: give 'snippets_per_second' in the JSON "
            f"or the snippets_per_second argument (a positive number)"
        )
    db = gt["database"]
    all_labels = sorted({a.get("label") for v in db.values() for a in v.get("annotations", [])} - {None})
    classlist = [str(c) for c in gt.get("classlist", all_labels)]
    class_index = {c: i for i, c in enumerate(classlist)}

    vids, subsets, durations, labels, segments, seg_labels, features = [], [], [], [], [], [], []
    for vid, entry in db.items():
        where = f"{ground_truth_json}: database[{vid!r}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{where}: expected an object")
        for key in ("subset", "duration"):
            if key not in entry:
                raise DataFormatError(f"{where}: missing field {key!r}")
        y = np.zeros(len(classlist), np.float32)
        segs, labs = [], []
        for j, ann in enumerate(entry.get("annotations", [])):
            label, seg = ann.get("label"), ann.get("segment")
            if label not in class_index:
                raise DataFormatError(f"{where}.annotations[{j}]: label {label!r} is not in the class list")
            if not (isinstance(seg, (list, tuple)) and len(seg) == 2):
                raise DataFormatError(f"{where}.annotations[{j}]: segment must be [start_s, end_s], got {seg!r}")
            s, e = float(seg[0]), float(seg[1])
            if not (np.isfinite(s) and np.isfinite(e) and e > s):
                raise DataFormatError(f"{where}.annotations[{j}]: segment end must be > start, got {seg!r}")
            segs.append([s, e])
            labs.append(class_index[label])
            y[class_index[label]] = 1.0
        path = os.path.join(feature_dir, f"{vid}.npy")
        feat = None
        if os.path.exists(path):
            feat = validate_features(load_npy(path), source=path, video_id=vid, feature_dim=feature_dim)
            feature_dim = feat.shape[1] if feature_dim is None else feature_dim
        vids.append(vid)
        subsets.append(str(entry["subset"]))
        durations.append(float(entry["duration"]))
        labels.append(y)
        segments.append(np.asarray(segs, np.float64).reshape(-1, 2))
        seg_labels.append(np.asarray(labs, np.int32))
        features.append(feat)
    dataset = VideoDataset(
        name=name,
        classlist=classlist,
        video_ids=np.array(vids),
        subsets=np.array(subsets),
        labels=np.stack(labels) if labels else np.zeros((0, len(classlist)), np.float32),
        segments=segments,
        segment_labels=seg_labels,
        durations=np.asarray(durations, np.float64),
        features=features,
        snippets_per_second=float(sps),
    )
    return drop_unusable_videos(dataset, min_snippets, warn)

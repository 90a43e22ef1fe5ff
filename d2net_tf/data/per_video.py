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
from d2net_tf.data.ground_truth_json import parse_ground_truth
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
    mmap: bool = False,
) -> VideoDataset:
    """Loads a per-video dataset; videos without a feature file are skipped with one warning.

    mmap: features are lazy memory-mapped reads (`sources.NpyVideo`: the headers are checked
    now, the values when a batch reads them) instead of arrays loaded now."""
    gt = read_json(ground_truth_json)
    if not isinstance(gt, dict):
        raise DataFormatError(f"{ground_truth_json}: expected a JSON object at the top level")
    if not os.path.isdir(feature_dir):
        raise DataFormatError(f"{feature_dir}: feature folder does not exist")
    sps = gt.get("snippets_per_second", snippets_per_second)
    if sps is None or not float(sps) > 0:
        raise DataFormatError(
            f"{ground_truth_json}: the feature rate is unknown: give 'snippets_per_second' in the JSON "
            f"or the snippets_per_second argument (a positive number)"
        )
    db = gt.get("database")
    for vid, entry in (db.items() if isinstance(db, dict) else ()):
        for key in ("subset", "duration"):  # needed for training data; optional for evaluation
            if isinstance(entry, dict) and key not in entry:
                raise DataFormatError(f"{ground_truth_json}: database[{vid!r}]: missing field {key!r}")
    # Entries, segments and labels are validated by the ground-truth JSON parser the evaluator uses.
    table = parse_ground_truth(gt, ground_truth_json)
    classlist = table.classlist
    rows_of: dict[str, list[int]] = {}
    for i, v in enumerate(table.video_ids.tolist()):
        rows_of.setdefault(v, []).append(i)
    vids, subsets, durations, labels, segments, seg_labels, features = [], [], [], [], [], [], []
    for vid in table.video_list:
        if not np.isfinite(table.durations[vid]):
            raise DataFormatError(f"{ground_truth_json}: database[{vid!r}]: duration must be a number")
        rows = np.asarray(rows_of.get(vid, []), dtype=np.int64)
        y = np.zeros(len(classlist), np.float32)
        y[table.class_ids[rows]] = 1.0
        path = os.path.join(feature_dir, f"{vid}.npy")
        feat = None
        if os.path.exists(path) and mmap:
            from d2net_tf.data.sources import open_npy_video

            feat = open_npy_video(path, vid, feature_dim)
            feature_dim = feat.shape[1] if feature_dim is None else feature_dim
        elif os.path.exists(path):
            feat = validate_features(load_npy(path), source=path, video_id=vid, feature_dim=feature_dim)
            feature_dim = feat.shape[1] if feature_dim is None else feature_dim
        vids.append(vid)
        subsets.append(table.subsets[vid])
        durations.append(table.durations[vid])
        labels.append(y)
        segments.append(np.stack([table.starts[rows], table.ends[rows]], axis=1))
        seg_labels.append(table.class_ids[rows])
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

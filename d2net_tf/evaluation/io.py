"""ActivityNet-format JSON files: detections (results) and ground truth."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

import d2net_tf
from d2net_tf.data.ground_truth_json import ground_truth_document, parse_ground_truth, parse_segment
from d2net_tf.errors import DataFormatError
from d2net_tf.evaluation.ground_truth import GroundTruth
from d2net_tf.jsonio import read_json, write_json_atomic
from d2net_tf.localization import Detections


def write_detections_json(path: str, detections: Detections, classlist: Sequence[str]) -> None:
    """Writes ActivityNet-format results: {"version", "results": {vid: [...]}, "external_data"}."""
    results: dict[str, list] = {}
    for v, c, s, e, x in zip(
        detections.video_ids.tolist(),
        detections.class_ids.tolist(),
        detections.starts.tolist(),
        detections.ends.tolist(),
        detections.scores.tolist(),
    ):
        results.setdefault(v, []).append({"label": classlist[c], "segment": [s, e], "score": x})
    payload = {"version": f"d2net-tf {d2net_tf.__version__}", "results": results, "external_data": {}}
    write_json_atomic(path, payload)


def load_detections_json(path: str, classlist: Sequence[str]) -> Detections:
    """Reads ActivityNet-format results (any producer). Labels must be in `classlist`."""
    data = read_json(path)
    if not isinstance(data, dict) or "results" not in data:
        raise DataFormatError(f"{path}: missing key 'results' (expected ActivityNet results JSON)")
    results = data["results"]
    if not isinstance(results, dict):
        raise DataFormatError(f"{path}: 'results' must be an object {{video_id: [...]}}, got {type(results).__name__}")
    index = {c: i for i, c in enumerate(classlist)}
    vids, cls, st, en, sc = [], [], [], [], []
    for vid, items in results.items():
        if not isinstance(items, list):
            raise DataFormatError(f"{path}: results[{vid!r}]: expected a list, got {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"results[{vid!r}][{i}]"
            if not isinstance(item, dict):
                raise DataFormatError(f"{path}: {where}: expected an object, got {type(item).__name__}")
            for key in ("label", "segment", "score"):
                if key not in item:
                    raise DataFormatError(f"{path}: {where}: missing key {key!r}")
            label = str(item["label"])
            if label not in index:
                raise DataFormatError(f"{path}: {where}.label: unknown label {label!r}")
            s, e = parse_segment(path, where, item["segment"])
            try:
                score = float(item["score"])
            except (TypeError, ValueError):
                raise DataFormatError(f"{path}: {where}.score: expected a number, got {item['score']!r}") from None
            if not math.isfinite(score):
                raise DataFormatError(f"{path}: {where}.score: NaN/inf score")
            vids.append(str(vid))
            cls.append(index[label])
            st.append(s)
            en.append(e)
            sc.append(score)
    if not vids:
        return Detections.empty()
    return Detections(np.array(vids, dtype=str), cls, st, en, sc)


def load_ground_truth_json(
    path: str, subset: str | None = None, classlist: Sequence[str] | None = None
) -> GroundTruth:
    """Reads ActivityNet-style ground truth `{"database": {vid: {"subset", "duration", "annotations"}}}`.

    Classlist: `classlist` if given, else a top-level "classlist" list (written by
    `ground_truth_to_json`), else the sorted unique labels. Extensions read when
    present: per-video "ambiguous": [[s, e], ...] and top-level "snippets_per_second".
    """
    return ground_truth_from_dict(read_json(path), path, subset, classlist)


def ground_truth_from_dict(
    data: Any, path: str, subset: str | None = None, classlist: Sequence[str] | None = None
) -> GroundTruth:
    """`load_ground_truth_json` of already-parsed JSON `data`; `path` names the source in errors."""
    return GroundTruth(**parse_ground_truth(data, path, subset, classlist).table_fields())


def ground_truth_to_json(gt: GroundTruth, subset: str | None = None) -> dict[str, Any]:
    """ActivityNet-style ground-truth dict of `gt` (inverse of `load_ground_truth_json`)."""
    return ground_truth_document(gt, subset)

"""The temporal ground truth of a split as one flat table, and its ActivityNet-style JSON form.

    {"version", "taxonomy": [], "classlist": [...], "snippets_per_second": float,
     "database": {vid: {"subset", "duration", "annotations": [{"label", "segment": [s, e]}],
                        "ambiguous": [[s, e], ...]}}}

The ActivityNet layout plus three extensions (the class order, the feature rate and the
THUMOS14 Ambiguous segments). It lives in the data layer because both the per-video loader
and the evaluator read it; `d2net_tf.evaluation.GroundTruth` adds the evaluator's fields.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

import d2net_tf
from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.errors import D2NetInputError, DataFormatError


@dataclasses.dataclass
class GroundTruthTable:
    """Temporal ground truth of one split (flat table, one row per segment).

    Attributes:
      video_ids: [m] str.
      class_ids: [m] int32 index into `classlist`.
      starts, ends: [m] float64 seconds.
      classlist: class names.
      ambiguous: video id -> [k, 2] seconds of Ambiguous segments (THUMOS14).
      durations: video id -> seconds, or None. Its keys, when given, are the
        videos of the split (including videos without segments).
      snippets_per_second: feature rate (used by the "wtalc" protocol).
      subsets: video id -> subset name, when known (read from ground-truth JSON).
    """

    video_ids: np.ndarray
    class_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    classlist: list[str]
    ambiguous: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    durations: dict[str, float] | None = None
    snippets_per_second: float = I3D_SNIPPETS_PER_SECOND
    subsets: dict[str, str] | None = None

    def __post_init__(self):
        self.video_ids = np.asarray(self.video_ids, dtype=str).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int32).reshape(-1)
        self.starts = np.asarray(self.starts, dtype=np.float64).reshape(-1)
        self.ends = np.asarray(self.ends, dtype=np.float64).reshape(-1)
        self.classlist = [str(c) for c in self.classlist]
        self.ambiguous = {str(k): np.asarray(v, np.float64).reshape(-1, 2) for k, v in self.ambiguous.items()}
        n = len(self.video_ids)
        if not (len(self.class_ids) == len(self.starts) == len(self.ends) == n):
            raise D2NetInputError("GroundTruth: video_ids, class_ids, starts and ends must have the same length")
        if n and (self.class_ids.min() < 0 or self.class_ids.max() >= len(self.classlist)):
            raise D2NetInputError(
                f"GroundTruth: class ids must be in [0, {len(self.classlist)}), "
                f"got range [{self.class_ids.min()}, {self.class_ids.max()}]"
            )

    @property
    def video_list(self) -> list[str]:
        """Videos of the split: the durations' keys when given, else the videos with segments."""
        if self.durations is not None:
            return list(self.durations)
        return list(dict.fromkeys(self.video_ids.tolist()))

    def __len__(self) -> int:
        return len(self.video_ids)

    def table_fields(self) -> dict[str, Any]:
        """This table's fields (to build a subclass from it)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(GroundTruthTable)}

    def select_rows(self, keep: np.ndarray) -> "GroundTruthTable":
        """The same split with only the segment rows where `keep` is True."""
        return dataclasses.replace(self, video_ids=self.video_ids[keep], class_ids=self.class_ids[keep],
                                   starts=self.starts[keep], ends=self.ends[keep])

    @classmethod
    def from_dataset(cls, dataset, subset: str | Sequence[str] | None = None, **fields):
        """Ground truth of `subset` of a `VideoDataset` (e.g. from `load_wtalc_annotations`)."""
        ds = dataset.subset(subset) if subset is not None else dataset
        table = ds.ground_truth_table()
        vids = [str(v) for v in ds.video_ids.tolist()]
        return cls(
            video_ids=table["video_ids"],
            class_ids=table["labels"],
            starts=table["starts"],
            ends=table["ends"],
            classlist=list(ds.classlist),
            ambiguous={v: a for v, a in ds.ambiguous.items() if v in set(vids)},
            durations={v: float(d) for v, d in zip(vids, np.asarray(ds.durations, np.float64).reshape(-1))},
            snippets_per_second=float(ds.snippets_per_second),
            **fields,
        )


def parse_segment(path: str, where: str, seg: Any) -> tuple[float, float]:
    """`[start, end]` of a JSON entry as two finite floats with end > start."""
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise DataFormatError(f"{path}: {where}.segment: expected [start, end], got {seg!r}")
    try:
        s, e = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: {where}.segment: expected two numbers, got {seg!r}") from None
    if not (math.isfinite(s) and math.isfinite(e)):
        raise DataFormatError(f"{path}: {where}.segment: NaN/inf in {seg!r}")
    if e <= s:
        raise DataFormatError(f"{path}: {where}.segment: end must be > start, got {seg!r}")
    return s, e


def parse_ground_truth(
    data: Any, path: str, subset: str | None = None, classlist: Sequence[str] | None = None
) -> GroundTruthTable:
    """The table of already-parsed ground-truth JSON `data`; `path` names the source in errors.

    Validates every entry (objects, annotations list, numeric duration, finite segments with
    end > start, known labels). Classlist: `classlist` if given, else a top-level "classlist"
    list, else the sorted unique labels. The videos' subsets are in `subsets`.
    """
    if not isinstance(data, dict) or "database" not in data:
        raise DataFormatError(f"{path}: missing key 'database' (expected ActivityNet ground-truth JSON)")
    db = data["database"]
    if not isinstance(db, dict):
        raise DataFormatError(f"{path}: 'database' must be an object {{video_id: {{...}}}}")
    rows: list[tuple[str, str, float, float]] = []
    durations: dict[str, float] = {}
    subsets: dict[str, str] = {}
    ambiguous: dict[str, np.ndarray] = {}
    for vid, entry in db.items():
        where = f"database[{vid!r}]"
        if not isinstance(entry, dict):
            raise DataFormatError(f"{path}: {where}: expected an object")
        if subset is not None:
            if "subset" not in entry:
                raise DataFormatError(f"{path}: {where}: missing key 'subset'")
            if str(entry["subset"]) != subset:
                continue
        if "subset" in entry:
            subsets[str(vid)] = str(entry["subset"])
        if "annotations" not in entry:
            raise DataFormatError(f"{path}: {where}: missing key 'annotations'")
        if not isinstance(entry["annotations"], list):
            raise DataFormatError(f"{path}: {where}.annotations: expected a list")
        dur = entry.get("duration")
        if dur is not None:
            try:
                durations[str(vid)] = float(dur)
            except (TypeError, ValueError):
                raise DataFormatError(f"{path}: {where}.duration: expected a number, got {dur!r}") from None
        else:
            durations[str(vid)] = float("nan")
        for i, ann in enumerate(entry["annotations"]):
            w = f"{where}.annotations[{i}]"
            if not isinstance(ann, dict):
                raise DataFormatError(f"{path}: {w}: expected an object")
            for key in ("label", "segment"):
                if key not in ann:
                    raise DataFormatError(f"{path}: {w}: missing key {key!r}")
            s, e = parse_segment(path, w, ann["segment"])
            rows.append((str(vid), str(ann["label"]), s, e))
        if entry.get("ambiguous"):
            ambiguous[str(vid)] = np.array(
                [parse_segment(path, f"{where}.ambiguous[{i}]", a) for i, a in enumerate(entry["ambiguous"])]
            )
    if subset is not None and not durations:
        present = sorted({str(e.get("subset")) for e in db.values() if isinstance(e, dict)})
        raise DataFormatError(f"{path}: no video in subset {subset!r}; subsets present: {present}")
    if classlist is None:
        if "classlist" in data:
            classlist = [str(c) for c in data["classlist"]]
        else:
            classlist = sorted({r[1] for r in rows})
    index = {c: i for i, c in enumerate(classlist)}
    for vid, label, _, _ in rows:
        if label not in index:
            raise DataFormatError(f"{path}: database[{vid!r}]: unknown label {label!r}")
    sps = data.get("snippets_per_second", I3D_SNIPPETS_PER_SECOND)
    return GroundTruthTable(
        video_ids=np.array([r[0] for r in rows], dtype=str),
        class_ids=np.array([index[r[1]] for r in rows], dtype=np.int32),
        starts=np.array([r[2] for r in rows], dtype=np.float64),
        ends=np.array([r[3] for r in rows], dtype=np.float64),
        classlist=list(classlist),
        ambiguous=ambiguous,
        durations=durations,
        snippets_per_second=float(sps),
        subsets=subsets,
    )


def ground_truth_document(gt: GroundTruthTable, subset: str | None = None) -> dict[str, Any]:
    """The ActivityNet-style JSON dict of `gt` (inverse of `parse_ground_truth`).

    Each video's subset: `gt.subsets[vid]` when known, else `subset` (else "").
    """
    database: dict[str, dict] = {}
    durations = gt.durations or {}
    subsets = gt.subsets or {}
    for vid in gt.video_list:
        entry: dict[str, Any] = {"subset": subsets.get(vid, subset or ""), "annotations": []}
        if vid in durations and math.isfinite(durations[vid]):
            entry["duration"] = durations[vid]
        if vid in gt.ambiguous and len(gt.ambiguous[vid]):
            entry["ambiguous"] = gt.ambiguous[vid].tolist()
        database[vid] = entry
    for v, c, s, e in zip(gt.video_ids.tolist(), gt.class_ids.tolist(), gt.starts.tolist(), gt.ends.tolist()):
        database[v]["annotations"].append({"label": gt.classlist[c], "segment": [s, e]})
    return {
        "version": f"d2net-tf {d2net_tf.__version__}",
        "taxonomy": [],
        "classlist": list(gt.classlist),
        "snippets_per_second": gt.snippets_per_second,
        "database": database,
    }

"""Converts a W-TALC dataset (pickled object arrays) once into the pickle-free per-video layout.

  OUT/features/{video_id}.npy   plain float32 [T_i, D] (no pickle)
  OUT/ground_truth.json         {"database": {vid: {"subset", "duration", "annotations":
                                  [{"label", "segment": [s, e]}]}}, "classlist": [...],
                                  "snippets_per_second": 1.5625}

The inputs are read with `safe_npy.load_npy` (restricted unpickler). The output
folder is built in a temporary folder next to OUT and renamed into place.

Usage:
  python -m d2net_tf.data.convert --features X-I3D-JOINTFeatures.npy --annotations X-Annotations/ --out DIR
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.cli import run_cli
from d2net_tf.errors import D2NetInputError, DataFormatError

_FIELDS = ("videoname", "subset", "duration", "segments", "labels", "classlist")


def _s(x) -> str:
    return x.decode("utf8") if isinstance(x, (bytes, np.bytes_)) else str(x)


def convert(features_path: str, annotation_dir: str, out_dir: str, *, overwrite: bool = False,
            snippets_per_second: float = I3D_SNIPPETS_PER_SECOND) -> dict:
    """Writes OUT/features/*.npy and OUT/ground_truth.json; returns a summary dict.

    Raises:
      DataFormatError: an input is missing or malformed (named in the message).
      D2NetInputError: out_dir exists and is not empty, and overwrite is False.
    """
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise D2NetInputError(f"{out_dir}: exists and is not empty; pass --overwrite to replace it")
    ann = {}
    for field in _FIELDS:
        ann[field] = load_npy(os.path.join(annotation_dir, f"{field}.npy"))
    feats = load_npy(features_path)
    names = [_s(v) for v in ann["videoname"]]
    n = len(names)
    for field in ("subset", "segments", "labels"):
        if len(ann[field]) != n:
            raise DataFormatError(f"{annotation_dir}/{field}.npy: {len(ann[field])} entries, videoname.npy has {n}")
    durations = np.asarray(ann["duration"], np.float64).reshape(-1)
    if durations.size != n:
        raise DataFormatError(f"{annotation_dir}/duration.npy: {durations.size} entries, videoname.npy has {n}")
    if feats.ndim != 1 or len(feats) != n:
        raise DataFormatError(f"{features_path}: expected {n} per-video arrays (one per videoname), got shape {feats.shape}")
    if len(set(names)) != n:
        raise DataFormatError(f"{annotation_dir}/videoname.npy: duplicate video names")
    for v in names:
        if not v or os.sep in v or v in (".", "..") or (os.altsep and os.altsep in v):
            raise DataFormatError(f"{annotation_dir}/videoname.npy: {v!r} cannot be used as a file name")
    classlist = [_s(c) for c in ann["classlist"]]

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-convert-", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "features"))
        database = {}
        total = 0
        for i, v in enumerate(names):
            x = np.asarray(feats[i])
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
                raise DataFormatError(f"{features_path}: video {v!r}: expected a numeric [T, D] array, got "
                                      f"{x.dtype} {x.shape}")
            np.save(os.path.join(tmp, "features", f"{v}.npy"), np.ascontiguousarray(x, np.float32),
                    allow_pickle=False)
            total += x.shape[0]
            segs, labs = list(ann["segments"][i]), list(ann["labels"][i])
            if len(segs) != len(labs):
                raise DataFormatError(f"{annotation_dir}: video {v!r}: {len(segs)} segments but {len(labs)} labels")
            database[v] = {
                "subset": _s(ann["subset"][i]),
                "duration": float(durations[i]),
                "annotations": [{"label": _s(c), "segment": [float(s[0]), float(s[1])]} for s, c in zip(segs, labs)],
            }
        gt = {"database": database, "classlist": classlist, "snippets_per_second": snippets_per_second}
        with open(os.path.join(tmp, "ground_truth.json"), "w") as f:
            json.dump(gt, f, indent=1)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=".old-convert-", dir=parent)
            os.replace(out_dir, os.path.join(old, "x"))
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": out_dir, "num_videos": n, "total_snippets": int(total), "classes": len(classlist)}


@run_cli
def main(argv: list[str]) -> int:
    from absl import flags

    del argv
    f = flags.FLAGS
    summary = convert(f.features, f.annotations, f.out, overwrite=f.overwrite)
    print(f"wrote {summary['num_videos']} videos ({summary['total_snippets']} snippets, "
          f"{summary['classes']} classes) to {summary['out']}")
    return 0


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("features", None, "W-TALC {DATASET}-I3D-JOINTFeatures.npy.")
    flags.DEFINE_string("annotations", None, "W-TALC {DATASET}-Annotations/ folder.")
    flags.DEFINE_string("out", None, "Output folder (features/ and ground_truth.json).")
    flags.DEFINE_bool("overwrite", False, "Replace a non-empty --out.")
    flags.mark_flags_as_required(["features", "annotations", "out"])


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(lambda argv: sys.exit(main(argv)))

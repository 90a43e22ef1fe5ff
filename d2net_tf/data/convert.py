"""Converts a W-TALC dataset (pickled object arrays) once into the pickle-free per-video layout.

  OUT/features/{video_id}.npy   plain float32 [T_i, D] (no pickle)
  OUT/ground_truth.json         the ActivityNet-style ground truth of `data.ground_truth_json`
                                (each video's subset, duration, segments, Ambiguous segments;
                                the classlist and snippets_per_second)

The inputs are read with `safe_npy.load_npy` (restricted unpickler). The output
folder is built in a temporary folder next to OUT and renamed into place.

The command line is d2net_tf.cli.convert_wtalc (`d2net-convert-wtalc`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Callable

import numpy as np

from d2net_tf.data.safe_npy import load_npy
from d2net_tf.data.wtalc import load_wtalc_annotations, wtalc_to_activitynet
from d2net_tf.errors import D2NetInputError, DataFormatError


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def convert(features_path: str, annotation_dir: str, out_dir: str, *, overwrite: bool = False,
            snippets_per_second: float | None = None, warn: Callable[[str], None] = _stderr) -> dict:
    """Writes OUT/features/*.npy and OUT/ground_truth.json; returns a summary dict.

    The annotations are read by `wtalc.load_wtalc_annotations` and converted by
    `wtalc.wtalc_to_activitynet`, the conversion the evaluator's ground truth uses:
    segments with end <= start are skipped (with one warning), Ambiguous segments are
    kept. `snippets_per_second` None: the rate of the annotations' benchmark.

    Raises:
      DataFormatError: an input is missing or malformed (named in the message).
      D2NetInputError: out_dir exists and is not empty, and overwrite is False.
    """
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        raise D2NetInputError(f"{out_dir}: exists and is not empty; pass --overwrite to replace it")
    dataset = load_wtalc_annotations(annotation_dir)
    if snippets_per_second is not None:
        dataset.snippets_per_second = float(snippets_per_second)
    feats = load_npy(features_path)
    names = dataset.video_ids.tolist()
    n = len(names)
    if feats.ndim != 1 or len(feats) != n:
        raise DataFormatError(f"{features_path}: expected {n} per-video arrays (one per videoname), got shape {feats.shape}")
    if len(set(names)) != n:
        raise DataFormatError(f"{annotation_dir}/videoname.npy: duplicate video names")
    for v in names:
        if not v or os.sep in v or v in (".", "..") or (os.altsep and os.altsep in v):
            raise DataFormatError(f"{annotation_dir}/videoname.npy: {v!r} cannot be used as a file name")
    gt = wtalc_to_activitynet(dataset, warn, source=annotation_dir)

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-convert-", dir=parent)
    try:
        os.makedirs(os.path.join(tmp, "features"))
        total = 0
        for i, v in enumerate(names):
            x = np.asarray(feats[i])
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
                raise DataFormatError(f"{features_path}: video {v!r}: expected a numeric [T, D] array, got "
                                      f"{x.dtype} {x.shape}")
            np.save(os.path.join(tmp, "features", f"{v}.npy"), np.ascontiguousarray(x, np.float32),
                    allow_pickle=False)
            total += x.shape[0]
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
    return {"out": out_dir, "num_videos": n, "total_snippets": int(total), "classes": len(dataset.classlist)}


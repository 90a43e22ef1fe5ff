"""`generate`: a complete synthetic W-TALC-layout dataset for a preset (command line: d2net_tf.cli.synthetic)."""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import shutil
import tempfile
import time
from typing import Any, Callable

from d2net_tf.data.benchmarks import ACTIVITYNET12, THUMOS14, BenchmarkSpec
from d2net_tf.data.synthetic.annotations import read_annotations, tiny_annotations, write_annotations
from d2net_tf.data.synthetic.config import SyntheticConfig
from d2net_tf.data.synthetic.features import build_model, num_snippets, video_features
from d2net_tf.data.synthetic.npy_writer import write_object_npy
from d2net_tf.data.wtalc import vendored_annotation_dir
from d2net_tf.errors import D2NetInputError

PRESETS: dict[str, tuple[BenchmarkSpec, int]] = {
    # preset: (benchmark whose annotations are used, default feature_dim)
    "thumos14": (THUMOS14, 2048),
    "activitynet12": (ACTIVITYNET12, 2048),
    "tiny": (THUMOS14, 32),
}


def _dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _present(out_dir: str, names) -> list[str]:
    return [n for n in names if os.path.exists(os.path.join(out_dir, n))]


def _published_meanwhile(out_dir: str, tmp: str, meta_name: str, names) -> bool:
    """Whether another process published a dataset of these names into `out_dir` while this one
    generated in `tmp` (two jobs started together on an empty folder): True when it is the same
    dataset (the same metadata file), so it is left alone; a different one is an error, never replaced."""
    present = _present(out_dir, names)
    if not present:
        return False
    try:
        with open(os.path.join(out_dir, meta_name), "rb") as theirs, open(os.path.join(tmp, meta_name), "rb") as ours:
            same = theirs.read() == ours.read()
    except OSError:
        same = False
    if not same:
        raise D2NetInputError(f"{out_dir}: another dataset ({', '.join(present)}) appeared while this one was "
                              "generated; pass --overwrite to replace it")
    return True


def generate(
    preset: str,
    out_dir: str,
    feature_dim: int | None = None,
    seed: int = 0,
    *,
    overwrite: bool = False,
    config: SyntheticConfig | None = None,
    log: Callable[[str], None] | None = None,
    **knobs: Any,
) -> dict:
    """Writes a synthetic W-TALC dataset for `preset` into `out_dir`; returns a summary dict.

    Args:
      preset: "thumos14", "activitynet12" or "tiny" (12 short THUMOS videos, D=32).
      out_dir: output folder (created if needed).
      feature_dim: D (even); default from the preset.
      seed: same seed, same bytes.
      overwrite: replace an existing dataset of the same name in out_dir.
      config: a SyntheticConfig; `knobs` override its fields.
      log: progress printer (None: silent).
    """
    if preset not in PRESETS:
        raise D2NetInputError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    bench, default_dim = PRESETS[preset]
    dataset = bench.file_prefix
    feature_dim = int(feature_dim or default_dim)
    cfg = config or SyntheticConfig()
    bad = set(knobs) - {f.name for f in dataclasses.fields(SyntheticConfig)}
    if bad:
        raise D2NetInputError(f"unknown SyntheticConfig field(s) {sorted(bad)}")
    cfg = dataclasses.replace(cfg, **knobs)
    log = log or (lambda _: None)
    start = time.perf_counter()

    ann = read_annotations(dataset)
    if preset == "tiny":
        ann = tiny_annotations(ann)
    class_index = {c: j for j, c in enumerate(ann.classlist)}
    model = build_model(cfg, ann.classlist, feature_dim, seed)

    feat_name = f"{dataset}-I3D-JOINTFeatures.npy"
    ann_name = f"{dataset}-Annotations"
    meta_name = f"{dataset}-synthetic.json"
    os.makedirs(out_dir, exist_ok=True)
    existing = _present(out_dir, (feat_name, ann_name, meta_name))
    if existing and not overwrite:
        raise D2NetInputError(
            f"{out_dir}: already holds a {dataset} dataset ({', '.join(existing)}); pass --overwrite to replace it")

    tmp = tempfile.mkdtemp(prefix=".tmp-synthetic-", dir=out_dir)
    try:
        write_annotations(ann, os.path.join(tmp, ann_name),
                           None if preset == "tiny" else vendored_annotation_dir(dataset))
        lengths = num_snippets(ann.duration)
        n = len(ann.videoname)

        def items():
            for i in range(n):
                if log and (i + 1) % 100 == 0:
                    log(f"  {i + 1}/{n} videos")
                yield video_features(model, ann, i, class_index, seed)

        write_object_npy(os.path.join(tmp, feat_name), n, items())
        meta = {"preset": preset, "dataset": dataset, "seed": seed, "feature_dim": feature_dim,
                "snippets_per_second": bench.snippets_per_second, "config": dataclasses.asdict(cfg),
                "rgb_dims": [0, feature_dim // 2], "flow_dims": [feature_dim // 2, feature_dim]}
        with open(os.path.join(tmp, meta_name), "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
        # Publish: everything is complete in tmp; move it in (the features last: a loader takes the
        # feature file's existence for a complete dataset).
        if not overwrite and _published_meanwhile(out_dir, tmp, meta_name, (ann_name, meta_name, feat_name)):
            log(f"{out_dir}: the same dataset was published by another process meanwhile; keeping that one")
        else:
            for name in (ann_name, meta_name, feat_name):
                dst = os.path.join(out_dir, name)
                if os.path.isdir(dst):
                    shutil.rmtree(dst)
                os.replace(os.path.join(tmp, name), dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    subsets: dict[str, int] = {}
    for s in ann.subset:
        subsets[s] = subsets.get(s, 0) + 1
    summary = {
        "dataset": dataset,
        "preset": preset,
        "features": os.path.join(out_dir, feat_name),
        "annotations": os.path.join(out_dir, ann_name),
        "num_videos": len(ann.videoname),
        "videos_per_subset": subsets,
        "total_snippets": int(lengths.sum()),
        "feature_dim": feature_dim,
        "bytes_on_disk": _dir_size(os.path.join(out_dir, feat_name)) + _dir_size(os.path.join(out_dir, ann_name)),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    return summary


"""The real W-TALC annotations a synthetic set is built on: read, cut down to the tiny set, written back."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND, benchmark_for
from d2net_tf.data.wtalc import WtalcAnnotations, read_wtalc_annotations, vendored_annotation_dir

TINY_VALIDATION_CLASSES = ("BaseballPitch", "CliffDiving", "CricketBowling", "Diving", "GolfSwing", "HammerThrow",
                           "PoleVault", "Shotput")
TINY_TEST_CLASSES = ("BaseballPitch", "CricketBowling", "Shotput", "CliffDiving")
TINY_MAX_SNIPPETS = 64


@dataclasses.dataclass
class SyntheticAnnotations(WtalcAnnotations):
    """The W-TALC annotations a synthetic set is built on."""

    source_index: np.ndarray = None  # [N] index of each video in the vendored annotations (seeds the RNG)


def read_annotations(dataset: str) -> SyntheticAnnotations:
    ann = read_wtalc_annotations(vendored_annotation_dir(dataset), dataset)
    return SyntheticAnnotations(**vars(ann), source_index=np.arange(len(ann.videoname)))


def tiny_annotations(full: SyntheticAnnotations) -> SyntheticAnnotations:
    """8 validation + 4 test THUMOS videos, time axis scaled so that T_i <= TINY_MAX_SNIPPETS."""
    picked: list[int] = []
    for subset, classes in (("validation", TINY_VALIDATION_CLASSES), ("test", TINY_TEST_CLASSES)):
        for c in classes:
            cands = [i for i in range(len(full.videoname))
                     if full.subset[i] == subset and c in full.labels_all[i] and i not in picked]
            cands.sort(key=lambda i: (len(set(full.labels_all[i])) > 1, full.duration[i], i))
            picked.append(cands[0])
    max_seconds = TINY_MAX_SNIPPETS / I3D_SNIPPETS_PER_SECOND
    k = np.minimum(1.0, max_seconds / full.duration[picked])
    names = [full.videoname[i] for i in picked]
    scale = dict(zip(names, k))
    return SyntheticAnnotations(
        dataset=full.dataset,
        videoname=names,
        subset=[full.subset[i] for i in picked],
        duration=np.round(full.duration[picked] * k, 3),
        segments=[[[round(s * kk, 3), round(e * kk, 3)] for s, e in full.segments[i]] for i, kk in zip(picked, k)],
        labels=[list(full.labels[i]) for i in picked],
        labels_all=[list(full.labels_all[i]) for i in picked],
        classlist=list(full.classlist),
        ambiguous=[(v, round(s * scale[v], 3), round(e * scale[v], 3)) for v, s, e in full.ambiguous if v in scale],
        source_index=np.asarray(picked),
        duration_2d=full.duration_2d,
    )


def _object_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        out[i] = x
    return out


def write_annotations(ann: SyntheticAnnotations, folder: str, copy_from: str | None) -> None:
    os.makedirs(folder)
    if copy_from is not None:  # the real files, byte for byte
        for name in sorted(os.listdir(copy_from)):
            shutil.copyfile(os.path.join(copy_from, name), os.path.join(folder, name))
        return
    n = len(ann.videoname)
    arrays = {
        "videoname": np.array([v.encode() for v in ann.videoname]),
        "subset": np.array([s.encode() for s in ann.subset]),
        "duration": ann.duration.reshape(n, 1) if ann.duration_2d else ann.duration,
        "segments": _object_array(ann.segments),
        "labels": _object_array(ann.labels),
        "labels_all": _object_array(ann.labels_all),
        "classlist": np.array([c.encode() for c in ann.classlist]),
    }
    for name, arr in arrays.items():
        with open(os.path.join(folder, name + ".npy"), "wb") as f:
            np.save(f, arr, allow_pickle=True)
    if ann.ambiguous or benchmark_for(ann.dataset).has_ambiguous:
        with open(os.path.join(folder, "Ambiguous_test.txt"), "w") as f:
            for v, s, e in ann.ambiguous:
                f.write(f"{v}  {s} {e}\n")

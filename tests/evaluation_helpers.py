"""Shared builders of the evaluation tests (ground truth, detections, the real THUMOS14 test split)."""

import os

import numpy as np
import pytest

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND as SPS
from d2net_tf.evaluation import Detections, GroundTruth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THUMOS_DIR = os.path.join(REPO, "d2net_tf", "data", "annotations", "Thumos14reduced-Annotations")
CLASSES = ["a", "b", "c"]
CLASSES_4 = ["a", "b", "c", "d"]
OFFICIAL = dict(wtalc_ground_truth="test_gt_segments", wtalc_ap="interpolated", wtalc_class_counter_bug=True)


def make_gt(rows, videos=None, ambiguous=None, sps=SPS, durations=None, classlist=CLASSES):
    """rows: (video, class_id, start, end); durations default 100 s per video."""
    rows = list(rows)
    videos = videos or sorted({r[0] for r in rows})
    return GroundTruth(
        video_ids=np.array([r[0] for r in rows], dtype=str),
        class_ids=[r[1] for r in rows],
        starts=[r[2] for r in rows],
        ends=[r[3] for r in rows],
        classlist=classlist,
        ambiguous=ambiguous or {},
        durations=durations if durations is not None else {v: 100.0 for v in videos},
        snippets_per_second=sps,
    )


def make_det(rows):
    """rows: (video, class_id, start, end, score)."""
    if not rows:
        return Detections.empty()
    return Detections(
        np.array([r[0] for r in rows], dtype=str),
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [r[4] for r in rows],
    )


GT_ROWS = [("v1", 0, 10.0, 20.0), ("v1", 0, 30.0, 40.0), ("v2", 1, 5.0, 15.0)]


def load_thumos_test_gt():
    try:
        from d2net_tf.data.wtalc import load_wtalc_annotations
    except ImportError:  # pragma: no cover - loader written elsewhere
        pytest.skip("d2net_tf.data.wtalc not available")
    return GroundTruth.from_dataset(load_wtalc_annotations(THUMOS_DIR), "test")

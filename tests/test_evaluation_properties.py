"""Property tests (hypothesis) of localization and evaluation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from d2net_tf.evaluation import Detections, GroundTruth, evaluate_detections
from d2net_tf.localization import LocalizationConfig, localize_video, nms_1d

SETTINGS = settings(max_examples=40, deadline=None)
CLASSLIST = ["a", "b", "c", "d"]


@st.composite
def tcam_inputs(draw):
    s = draw(st.integers(1, 120))
    c = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["uniform", "binary", "constant", "smooth"]))
    if kind == "uniform":
        tcam = rng.random((s, c))
    elif kind == "binary":
        tcam = (rng.random((s, c)) > 0.7).astype(float)
    elif kind == "constant":
        tcam = np.full((s, c), draw(st.floats(0, 1)))
    else:
        x = np.cumsum(rng.normal(size=(s, c)), axis=0)
        tcam = 1 / (1 + np.exp(-x))
    attention = rng.random(s) if draw(st.booleans()) else np.ones(s)
    sps = draw(st.sampled_from([25 / 16, 1.0, 0.5, 30 / 16]))
    preset = draw(st.sampled_from(["paper", "official", "official_anet"]))
    config = {
        "paper": LocalizationConfig.paper(),
        "official": LocalizationConfig.official("thumos14"),
        "official_anet": LocalizationConfig.official("activitynet1.2"),
    }[preset]
    return tcam, attention, sps, config


@SETTINGS
@given(tcam_inputs())
def test_localization_outputs_are_valid(inputs):
    tcam, attention, sps, config = inputs
    det = localize_video(tcam, attention, sps, config, video_id="v")
    s, c = tcam.shape
    duration = s / sps
    assert det.starts.dtype == np.float64 and det.class_ids.dtype == np.int32
    assert np.all(det.starts >= 0)
    assert np.all(det.starts < det.ends)
    assert np.all(det.ends <= duration + 1e-9)
    assert np.all(np.isfinite(det.scores))
    assert np.all((det.class_ids >= 0) & (det.class_ids < c))
    # Class-wise NMS: kept detections of one class never overlap by more than the NMS tIoU.
    for k in np.unique(det.class_ids):
        sel = det.class_ids == k
        # (in snippet units: seconds such as 1/1.5625 make an IoU of exactly 0.5 inexact)
        a, b = np.round(det.starts[sel] * sps), np.round(det.ends[sel] * sps)
        kept = nms_1d(a, b, det.scores[sel], config.nms_tiou)
        assert len(kept) == sel.sum()


@st.composite
def evaluation_case(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_videos = draw(st.integers(1, 6))
    videos = [f"v{i}" for i in range(n_videos)]
    m = draw(st.integers(1, 15))
    gv = rng.integers(0, n_videos, m)
    gs = rng.uniform(0, 40, m)
    gt = GroundTruth(
        np.array(videos)[gv], rng.integers(0, 4, m), gs, gs + rng.uniform(0.5, 10, m), CLASSLIST,
        durations={v: 60.0 for v in videos},
    )
    n = draw(st.integers(0, 40))
    near = rng.integers(0, m, n)
    use_gt = rng.random(n) < 0.5
    vid = np.where(use_gt, gv[near], rng.integers(0, n_videos, n))
    cls = np.where(use_gt, gt.class_ids[near], rng.integers(0, 4, n))
    ps = np.where(use_gt, gt.starts[near] + rng.normal(0, 1.5, n), rng.uniform(0, 40, n))
    pe = np.where(use_gt, gt.ends[near] + rng.normal(0, 1.5, n), ps + rng.uniform(0.5, 10, n))
    pe = np.maximum(pe, ps + 0.1)
    scores = rng.permutation(n) / max(n, 1) + 0.01  # distinct scores
    det = Detections(np.array(videos)[vid] if n else np.zeros(0, str), cls, ps, pe, scores)
    protocol = draw(st.sampled_from(["anet", "wtalc"]))
    return gt, det, protocol, rng


THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


@SETTINGS
@given(evaluation_case())
def test_map_in_unit_interval(case):
    gt, det, protocol, _ = case
    r = evaluate_detections(gt, det, THRESHOLDS, protocol=protocol)
    assert all(0.0 <= x <= 1.0 for x in r["mAP"])
    assert 0.0 <= r["f1_at_0.5"] <= 1.0
    assert 0.0 <= r["average_mAP"] <= 1.0


@SETTINGS
@given(evaluation_case())
def test_invariant_to_video_and_prediction_order(case):
    gt, det, protocol, rng = case
    base = evaluate_detections(gt, det, THRESHOLDS, protocol=protocol)
    # Permute the prediction rows (distinct scores: the tie rule is not involved).
    perm = rng.permutation(len(det))
    shuffled = evaluate_detections(gt, det.select(perm), THRESHOLDS, protocol=protocol)
    np.testing.assert_allclose(shuffled["mAP"], base["mAP"], atol=1e-12)
    # Rename videos so that their order changes: v{i} -> w{n-1-i}, ground truth rows permuted
    # within the protocol's rules (W-TALC matches the first GT in order, so keep the
    # per-video segment order; ANET is free).
    n_vid = len(gt.video_list)
    rename = {v: f"w{n_vid - 1 - i:02d}" for i, v in enumerate(gt.video_list)}
    vid_order = sorted(gt.video_list, key=lambda v: rename[v])
    row_order = np.concatenate([np.flatnonzero(gt.video_ids == v) for v in vid_order])
    if protocol == "anet":
        row_order = rng.permutation(row_order)
    gt2 = GroundTruth(
        np.array([rename[v] for v in gt.video_ids[row_order]]), gt.class_ids[row_order],
        gt.starts[row_order], gt.ends[row_order], CLASSLIST,
        durations={rename[v]: 60.0 for v in vid_order},
    )
    det2 = Detections(np.array([rename[v] for v in det.video_ids], dtype=str), det.class_ids, det.starts,
                      det.ends, det.scores) if len(det) else det
    renamed = evaluate_detections(gt2, det2, THRESHOLDS, protocol=protocol)
    np.testing.assert_allclose(renamed["mAP"], base["mAP"], atol=1e-12)


@SETTINGS
@given(evaluation_case())
def test_perfect_copy_of_ground_truth_scores_one(case):
    gt, _, protocol, rng = case
    det = Detections(gt.video_ids, gt.class_ids, gt.starts, gt.ends, rng.random(len(gt)))
    r = evaluate_detections(gt, det, (0.5, 0.9), protocol="anet")
    np.testing.assert_allclose(r["mAP"], 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_equal_scores_follow_documented_tie_rule(seed):
    # With all scores equal, the result equals the one with scores decreasing in input order.
    rng = np.random.default_rng(seed)
    gt = GroundTruth(["v"] * 4, [0, 0, 1, 1], [0, 10, 20, 30], [5, 15, 25, 35], CLASSLIST)
    n = 12
    ps = rng.uniform(0, 35, n)
    det_eq = Detections(["v"] * n, rng.integers(0, 2, n), ps, ps + rng.uniform(1, 6, n), np.ones(n))
    det_dec = Detections(det_eq.video_ids, det_eq.class_ids, det_eq.starts, det_eq.ends, 1 - np.arange(n) / n)
    a = evaluate_detections(gt, det_eq, THRESHOLDS)
    b = evaluate_detections(gt, det_dec, THRESHOLDS)
    np.testing.assert_allclose(a["mAP"], b["mAP"])

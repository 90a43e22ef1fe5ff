"""Tests of the W-TALC protocol's official-fidelity options: test_gt_segments ground truth, AP rule,
getLocMAP's class-counter bug, and a transcription of getLocMAP."""

import numpy as np
import pytest

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND as SPS
from d2net_tf.errors import D2NetInputError
from d2net_tf.evaluation import (
    Detections,
    GroundTruth,
    evaluate_detections,
    format_results_table,
    ground_truth_from_test_gt_segments,
    interpolated_prec_rec,
    load_wtalc_ground_truth,
    load_wtalc_test_gt_segments,
    read_test_gt_segments,
)

from evaluation_helpers import THUMOS_DIR, CLASSES_4, OFFICIAL, make_gt, make_det


# --------------------------------------------------------------------------- #
# W-TALC protocol options of the official D2-Net code: test_gt_segments ground truth,
# AP rule, class-counter bug. `official_getlocmap` below is a transcription, for
# comparison only, of `getLocMAP` (naraysa/D2-Net, detectionMAP.py, THUMOS14 branch).
# --------------------------------------------------------------------------- #
# The vendored test_gt_segments.npy
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def thumos_test_gt():
    return load_wtalc_test_gt_segments(THUMOS_DIR)


def test_vendored_test_gt_segments_counts(thumos_test_gt):
    gt = thumos_test_gt
    assert gt.source == "test_gt_segments"
    assert len(gt) == 3234
    assert np.bincount(gt.class_ids).tolist() == [
        41, 488, 106, 90, 217, 91, 135, 387, 48, 36, 213, 134, 169, 142, 399, 144, 48, 141, 85, 120
    ]
    assert len(set(gt.video_ids.tolist())) == 210
    # Predictions are kept on the 212 test videos with segments.npy segments, as in the official code.
    assert len(gt.wtalc_videos) == 212 and len(gt.video_list) == 212
    assert sorted(set(gt.wtalc_videos) - set(gt.video_ids.tolist())) == ["video_test_0000270", "video_test_0001496"]
    assert len(load_wtalc_ground_truth(THUMOS_DIR, "test")) == 3358


def test_vendored_test_gt_segments_one_instance_by_hand(thumos_test_gt):
    # First row of class 0 (BaseballPitch): ('0001447', 0.7510879025239339, 0.7622570351029881);
    # duration.npy of video_test_0001447: 229.9263492 s.
    assert read_test_gt_segments()[0][0] == ("0001447", 0.7510879025239339, 0.7622570351029881)
    gt = thumos_test_gt
    assert gt.video_ids[0] == "video_test_0001447" and gt.class_ids[0] == 0
    assert gt.starts[0] == pytest.approx(172.69490, abs=1e-5)  # 0.75108790 * 229.92635
    assert gt.ends[0] == pytest.approx(175.26298, abs=1e-5)  # 0.76225704 * 229.92635
    # Snippets: 172.6949 * 25/16 = 269.836 -> 270; 175.2630 * 25/16 = 273.848 -> 274.
    assert np.round(gt.starts[0] * SPS) == 270 and np.round(gt.ends[0] * SPS) == 274


def test_synthetic_thumos14_copies_test_gt_segments(tmp_path):
    from d2net_tf.data import synthetic

    synthetic.generate("thumos14", str(tmp_path), feature_dim=2, seed=0)
    gt = load_wtalc_test_gt_segments(str(tmp_path / "Thumos14reduced-Annotations"))
    assert len(gt) == 3234 and len(gt.wtalc_videos) == 212


def test_tiny_synthetic_cannot_use_test_gt_segments(tmp_path):
    from d2net_tf.data import synthetic

    synthetic.generate("tiny", str(tmp_path), seed=0)
    ann = str(tmp_path / "Thumos14reduced-Annotations")
    with pytest.raises(D2NetInputError, match=r"206 referenced videos .* not among the 4 videos with segments"):
        load_wtalc_test_gt_segments(ann)
    gt = load_wtalc_ground_truth(ann, "test")
    with pytest.raises(D2NetInputError, match="test_gt_segments applies only to"):
        evaluate_detections(gt, Detections.empty(), (0.5,), protocol="wtalc", wtalc_ground_truth="test_gt_segments")
    # The ActivityNet protocol ignores the W-TALC options.
    r = evaluate_detections(gt, Detections.empty(), (0.5,), protocol="anet", wtalc_ground_truth="test_gt_segments")
    assert "wtalc_ground_truth" not in r


def test_real_thumos_perfect_predictions_against_test_gt_segments(thumos_test_gt):
    gt = thumos_test_gt
    s, e = np.round(gt.starts * SPS), np.round(gt.ends * SPS)
    ok = e > s  # an empty index set can never be matched
    n = int(ok.sum())
    det = Detections(gt.video_ids[ok], gt.class_ids[ok], s[ok] / SPS, e[ok] / SPS, np.linspace(1, 0.5, n))
    base = load_wtalc_ground_truth(THUMOS_DIR, "test")
    r = evaluate_detections(base, det, (0.1, 0.5, 0.9), protocol="wtalc", remove_ambiguous=False, **OFFICIAL)
    # Every prediction is a TP with precision 1: AP = recall = n_ok / n per class, for either AP rule.
    per_class = np.bincount(gt.class_ids[ok], minlength=20) / np.bincount(gt.class_ids, minlength=20)
    np.testing.assert_allclose(r["mAP"], per_class.mean())
    assert r["classes_zeroed_by_counter_bug"] == []
    assert r["num_ground_truth"] == 3234 and r["num_videos"] == 212 and r["num_predictions"] == n
    # Against segments.npy the same predictions are not perfect.
    r_seg = evaluate_detections(base, det, (0.5,), protocol="wtalc", remove_ambiguous=False)
    assert r_seg["wtalc_ground_truth"] == "segments" and r_seg["mAP"][0] < r["mAP"][1]


# --------------------------------------------------------------------------- #
# Hand-built cases
# --------------------------------------------------------------------------- #
def snippet_det(rows):
    """rows: (video, class_id, start snippet, end snippet, score) -> Detections in seconds."""
    return make_det([(v, c, s / SPS, e / SPS, x) for v, c, s, e, x in rows])


V1, V2, V3 = "video_test_0000001", "video_test_0000002", "video_test_0000003"
# Durations chosen so that the fractions below land on whole snippets: 64 s = 100 snippets.
DURATIONS = {V1: 64.0, V2: 64.0, V3: 64.0}
BASE = make_gt(
    [(V1, 0, 6.4, 12.8), (V1, 1, 32.0, 38.4), (V2, 2, 0.0, 6.4), (V2, 3, 12.8, 19.2), (V3, 0, 1.0, 2.0)],
    durations=DURATIONS, classlist=CLASSES_4,
)
# test_gt_segments-style rows (video suffix, start fraction, end fraction) per class; no row on V3.
PER_CLASS = (
    (("0000001", 0.10, 0.20),),  # a: snippets [10, 20)
    (("0000001", 0.50, 0.60),),  # b: [50, 60)
    (("0000002", 0.00, 0.10), ("0000002", 0.30, 0.40)),  # c: [0, 10), [30, 40)
    (("0000002", 0.20, 0.30),),  # d: [20, 30)
)


def hand_gt():
    return ground_truth_from_test_gt_segments(BASE, PER_CLASS, "hand")


def test_conversion_of_hand_rows():
    gt = hand_gt()
    assert gt.video_ids.tolist() == [V1, V1, V2, V2, V2]
    assert gt.class_ids.tolist() == [0, 1, 2, 2, 3]
    np.testing.assert_array_equal(np.round(gt.starts * SPS), [10, 50, 0, 30, 20])
    np.testing.assert_array_equal(np.round(gt.ends * SPS), [20, 60, 10, 40, 30])
    assert gt.wtalc_videos == [V1, V2, V3]


def test_class_counter_bug_zeroes_every_later_class():
    # a: perfect; b: no prediction; c and d: perfect. getLocMAP's num_c stops at b, so c and d
    # read b's empty list: AP = [1, 0, 0, 0] instead of [1, 0, 1, 1].
    det = snippet_det([(V1, 0, 10, 20, 0.9), (V2, 2, 0, 10, 0.8), (V2, 2, 30, 40, 0.7), (V2, 3, 20, 30, 0.6)])
    kw = dict(protocol="wtalc", wtalc_ground_truth="test_gt_segments")
    fixed = evaluate_detections(hand_gt(), det, (0.5,), **kw)
    bug = evaluate_detections(hand_gt(), det, (0.5,), **kw, wtalc_class_counter_bug=True)
    assert [fixed["ap_per_class"][c][0] for c in CLASSES_4] == [1.0, 0.0, 1.0, 1.0]
    assert [bug["ap_per_class"][c][0] for c in CLASSES_4] == [1.0, 0.0, 0.0, 0.0]
    assert fixed["mAP"] == [0.75] and bug["mAP"] == [0.25]
    assert fixed["classes_zeroed_by_counter_bug"] == [] and bug["classes_zeroed_by_counter_bug"] == ["b", "c", "d"]
    assert "class-counter bug: True" in format_results_table(bug)
    # Without an empty class the bug changes nothing.
    det_b = snippet_det([(V1, 0, 10, 20, 0.9), (V1, 1, 50, 60, 0.5), (V2, 2, 0, 10, 0.8), (V2, 3, 20, 30, 0.6)])
    r_fix = evaluate_detections(hand_gt(), det_b, (0.5,), **kw)
    r_bug = evaluate_detections(hand_gt(), det_b, (0.5,), **kw, wtalc_class_counter_bug=True)
    assert r_fix["ap_per_class"] == r_bug["ap_per_class"] and r_bug["mAP"] == [0.875]


def test_class_counter_bug_counts_predictions_after_the_ambiguous_filter():
    # b's only prediction touches an Ambiguous segment: dropped, so b has no prediction.
    base = make_gt([(V1, 0, 6.4, 12.8), (V1, 1, 32.0, 38.4)], durations={V1: 64.0}, classlist=CLASSES_4)
    base.ambiguous = {V1: np.array([[44.8, 51.2]])}  # snippets [70, 80)
    det = snippet_det([(V1, 0, 10, 20, 0.9), (V1, 1, 75, 85, 0.8)])
    r = evaluate_detections(base, det, (0.5,), protocol="wtalc", wtalc_class_counter_bug=True)
    assert r["num_predictions_dropped"] == 1 and r["classes_zeroed_by_counter_bug"] == ["b"]


def test_ap_rules():
    # Three ground truths of class a; ranked predictions TP, FP, TP, TP.
    base = make_gt([(V1, 0, 0.0, 6.4), (V1, 0, 12.8, 19.2), (V1, 0, 25.6, 32.0)], durations={V1: 64.0}, classlist=CLASSES_4)
    # Ground truth snippets [0, 10), [20, 30), [40, 50).
    det = snippet_det([(V1, 0, 0, 10, 0.9), (V1, 0, 80, 90, 0.8), (V1, 0, 20, 30, 0.7), (V1, 0, 40, 50, 0.6)])
    ps = evaluate_detections(base, det, (0.5,), protocol="wtalc")
    it = evaluate_detections(base, det, (0.5,), protocol="wtalc", wtalc_ap="interpolated")
    assert ps["wtalc_ap"] == "precision_sum" and it["wtalc_ap"] == "interpolated"
    assert ps["mAP"][0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)  # 0.8056
    assert it["mAP"][0] == pytest.approx((1 + 3 / 4 + 3 / 4) / 3)  # precision envelope: 0.8333
    assert it["mAP"][0] == pytest.approx(interpolated_prec_rec([1, 1 / 2, 2 / 3, 3 / 4], [1 / 3, 1 / 3, 2 / 3, 1]))


def test_test_gt_segments_keeps_predictions_on_videos_without_rows():
    # V3 has a segments.npy segment but no test_gt_segments row: its prediction is a false positive.
    det = snippet_det([(V1, 0, 10, 20, 0.9), (V3, 0, 1, 3, 0.95)])
    seg = evaluate_detections(BASE, det, (0.5,), protocol="wtalc")
    tgs = evaluate_detections(hand_gt(), det, (0.5,), protocol="wtalc", wtalc_ground_truth="test_gt_segments")
    assert seg["ap_per_class"]["a"] == [1.0]  # segments.npy: V3's [1.56, 3.13) -> [2, 3) is matched
    assert tgs["ap_per_class"]["a"] == [0.5]  # FP (0.95) then TP (0.9): precision 1/2 at the TP
    assert tgs["num_predictions"] == 2 and tgs["num_ground_truth"] == 5 and tgs["wtalc_ground_truth"] == "test_gt_segments"
    # Without test_gt_segments ground truth of its own, `base` is converted with the vendored THUMOS14 file.
    with pytest.raises(D2NetInputError, match="20 classes, but the ground truth has 4"):
        evaluate_detections(BASE, det, (0.5,), protocol="wtalc", wtalc_ground_truth="test_gt_segments")


def test_option_errors():
    det = Detections.empty()
    with pytest.raises(D2NetInputError, match="wtalc_ground_truth must be one of"):
        evaluate_detections(BASE, det, protocol="wtalc", wtalc_ground_truth="json")
    with pytest.raises(D2NetInputError, match="wtalc_ap must be one of"):
        evaluate_detections(BASE, det, protocol="wtalc", wtalc_ap="voc")
    with pytest.raises(D2NetInputError, match="but `gt` was built from test_gt_segments"):
        evaluate_detections(hand_gt(), det, protocol="wtalc", wtalc_ground_truth="segments")
    with pytest.raises(D2NetInputError, match="3 classes, but the ground truth has 4"):
        ground_truth_from_test_gt_segments(BASE, PER_CLASS[:3])
    no_dur = make_gt([(V1, 0, 6.4, 12.8)], durations={V1: float("nan")}, classlist=CLASSES_4)
    with pytest.raises(D2NetInputError, match="no finite duration"):
        ground_truth_from_test_gt_segments(no_dur, ((("0000001", 0.1, 0.2),), (), (), ()))


# --------------------------------------------------------------------------- #
# Against a transcription of the official getLocMAP
# --------------------------------------------------------------------------- #
def _ap_from_pr(prec, rec):
    # Transcription of detectionMAP._ap_from_pr (for comparison).
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])


def official_getlocmap(detections, gtsegments, duration, iou, fix_counter=False):
    """Transcription, for comparison, of the official getLocMAP (THUMOS14 branch).

    detections[c]: array [n, 4] (video index, start snippet, end snippet, score);
    gtsegments[c]: rows [video index, start fraction, end fraction]; duration[video index]
    in seconds. `fix_counter` moves `num_c += 1` before the empty-list check (our fix).
    The official `25 / 16` is the imported snippet rate.
    """
    ap = []
    num_c = 0
    for _c in range(len(detections)):
        segment_predict = detections[num_c]
        if len(segment_predict) == 0:
            ap.append(0)
            if fix_counter:
                num_c += 1
            continue
        segment_predict = segment_predict[np.argsort(-segment_predict[:, 3], kind="stable")]
        segment_gt = list(np.copy(gtsegments[num_c]))
        gtpos = len(segment_gt)
        num_c += 1
        tp, fp = [], []
        for i in range(len(segment_predict)):
            flag = 0.0
            for j in range(len(segment_gt)):
                if segment_predict[i][0] == segment_gt[j][0]:
                    vid_i = int(segment_gt[j][0])
                    gt = range(int(round(segment_gt[j][1] * duration[vid_i] * SPS)),
                               int(round(segment_gt[j][2] * duration[vid_i] * SPS)))
                    p = range(int(segment_predict[i][1]), int(segment_predict[i][2]))
                    IoU = float(len(set(gt).intersection(set(p)))) / float(len(set(gt).union(set(p))))
                    if IoU >= iou:
                        flag = 1.0
                        del segment_gt[j]
                        break
            tp.append(flag)
            fp.append(1.0 - flag)
        tp_c = np.cumsum(tp)
        fp_c = np.cumsum(fp)
        if sum(tp) == 0:
            prc = 0.0
        else:
            prc = _ap_from_pr(tp_c / (fp_c + tp_c), 1.0 * tp_c / gtpos)
        ap.append(prc)
    return 100 * np.mean(ap)


def _random_case(seed):
    """A small THUMOS-like case: 4 videos, 4 classes, snippet-grid predictions, one empty class."""
    rng = np.random.default_rng(seed)
    videos = [f"video_test_{k:07d}" for k in range(4)]
    duration = rng.uniform(40.0, 80.0, size=4).round(3)
    per_class, rows_by_class = [], []
    for c in range(4):
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            k = int(rng.integers(0, 4))
            s = float(rng.uniform(0, 0.85))
            rows.append((videos[k][11:], s, s + float(rng.uniform(0.03, 0.15))))
        per_class.append(tuple(rows))
        rows_by_class.append(rows)
    base = GroundTruth(
        video_ids=np.array(videos), class_ids=[0, 1, 2, 3], starts=[0, 0, 0, 0], ends=[1, 1, 1, 1],
        classlist=CLASSES_4, durations=dict(zip(videos, duration.tolist())), snippets_per_second=SPS,
    )
    empty = int(rng.integers(1, 3))  # a class without predictions, with classes before and after it
    det_rows, official_det = [], []
    for c in range(4):
        preds = []
        if c != empty:
            for k, f_s, f_e in rows_by_class[c]:
                v = int(k)
                s = int(round(f_s * duration[v] * SPS)) + int(rng.integers(-3, 4))
                e = int(round(f_e * duration[v] * SPS)) + int(rng.integers(-3, 4))
                preds.append([v, max(0, s), max(s + 2, e), 0.0])
            for _ in range(int(rng.integers(0, 4))):  # false positives
                s = int(rng.integers(0, 100))
                preds.append([int(rng.integers(0, 4)), s, s + int(rng.integers(2, 20)), 0.0])
        for p in preds:
            p[3] = float(rng.uniform())
            det_rows.append((videos[p[0]], c, p[1] / SPS, p[2] / SPS, p[3]))
        official_det.append(np.array(preds, dtype=np.float64).reshape(-1, 4))
    official_gt = [[[int(k), f_s, f_e] for k, f_s, f_e in rows] for rows in rows_by_class]
    return base, per_class, make_det(det_rows), official_det, official_gt, duration, empty


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("bug", [True, False])
def test_matches_official_getlocmap_transcription(seed, bug):
    base, per_class, det, official_det, official_gt, duration, empty = _random_case(seed)
    gt = ground_truth_from_test_gt_segments(base, per_class, "case")
    thresholds = (0.1, 0.3, 0.5, 0.7)
    r = evaluate_detections(
        gt, det, thresholds, protocol="wtalc", wtalc_ground_truth="test_gt_segments",
        wtalc_ap="interpolated", wtalc_class_counter_bug=bug,
    )
    expected = [official_getlocmap(official_det, official_gt, duration, t, fix_counter=not bug) for t in thresholds]
    np.testing.assert_allclose(100 * np.array(r["mAP"]), expected, rtol=0, atol=1e-9)
    assert r["classes_zeroed_by_counter_bug"] == (CLASSES_4[empty:] if bug else [])

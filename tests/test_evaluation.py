"""Tests of d2net_tf.evaluation: hand-built AP cases and a loop-based reference of the matching."""

import numpy as np
import pytest

from d2net_tf.errors import D2NetInputError
from d2net_tf.evaluation import (
    Detections,
    classification_map,
    evaluate_detections,
    format_results_table,
    interpolated_prec_rec,
)

from evaluation_helpers import GT_ROWS, make_gt, make_det


# --------------------------------------------------------------------------- #
# Hand-built cases
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("protocol", ["anet", "wtalc"])
def test_perfect_predictions(protocol):
    gt = make_gt(GT_ROWS)
    det = make_det([(v, c, s, e, 1.0 - 0.1 * i) for i, (v, c, s, e) in enumerate(GT_ROWS)])
    r = evaluate_detections(gt, det, (0.1, 0.3, 0.5, 0.7, 0.9), protocol=protocol)
    assert r["protocol"] == protocol
    np.testing.assert_allclose(r["mAP"], 1.0)
    assert r["average_mAP"] == pytest.approx(1.0)
    assert r["f1_at_0.5"] == pytest.approx(1.0)
    assert set(r["ap_per_class"]) == {"a", "b"}  # "c" has no ground truth


@pytest.mark.parametrize("protocol", ["anet", "wtalc"])
def test_duplicate_is_false_positive(protocol):
    gt = make_gt(GT_ROWS[:2])
    det = make_det([("v1", 0, 10, 20, 0.9), ("v1", 0, 10, 20, 0.8), ("v1", 0, 30, 40, 0.7)])
    r = evaluate_detections(gt, det, (0.5,), protocol=protocol)
    # tp = [1, 0, 1]: rec = [.5, .5, 1], prec = [1, .5, 2/3] -> AP = .5 * 1 + .5 * 2/3.
    assert r["mAP"][0] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert r["precision_at_0.5"] == pytest.approx(2 / 3)
    assert r["recall_at_0.5"] == pytest.approx(1.0)
    assert r["f1_at_0.5"] == pytest.approx(0.8)


def test_prediction_on_video_without_that_class():
    gt = make_gt(GT_ROWS)
    det = make_det(
        [("v2", 0, 5, 15, 0.95), ("v1", 0, 10, 20, 0.9), ("v1", 0, 30, 40, 0.8), ("v2", 1, 5, 15, 0.5)]
    )
    r = evaluate_detections(gt, det, (0.5,))
    # class a: tp = [0, 1, 1], rec = [0, .5, 1], prec = [0, .5, 2/3] -> AP = .5 * 2/3 + .5 * 2/3.
    assert r["ap_per_class"]["a"][0] == pytest.approx(2 / 3)
    assert r["ap_per_class"]["b"][0] == pytest.approx(1.0)
    assert r["mAP"][0] == pytest.approx((2 / 3 + 1) / 2)


def test_ties_follow_input_order():
    gt = make_gt([("v1", 0, 10.0, 20.0)])
    fp_first = make_det([("v1", 0, 50, 60, 0.5), ("v1", 0, 10, 20, 0.5)])
    tp_first = make_det([("v1", 0, 10, 20, 0.5), ("v1", 0, 50, 60, 0.5)])
    assert evaluate_detections(gt, fp_first, (0.5,))["mAP"][0] == pytest.approx(0.5)
    assert evaluate_detections(gt, tp_first, (0.5,))["mAP"][0] == pytest.approx(1.0)


def test_best_vs_first_ground_truth():
    # Two GT; the prediction overlaps the first a little and the second a lot. The
    # ANET protocol matches the best (second) one, leaving the first free for the
    # next prediction; the W-TALC protocol takes the first one in GT order.
    gt = make_gt([("v1", 0, 0.0, 16.0), ("v1", 0, 9.6, 19.2)], sps=1.0)
    det = make_det([("v1", 0, 6.0, 19.0, 0.9), ("v1", 0, 0.0, 16.0, 0.8)])
    r_anet = evaluate_detections(gt, det, (0.3,), protocol="anet")
    r_wtalc = evaluate_detections(gt, det, (0.3,), protocol="wtalc")
    assert r_anet["mAP"][0] == pytest.approx(1.0)
    # W-TALC: the first prediction takes GT 0 (IoU 10/19 >= .3), the second then finds
    # GT 0 matched and GT 1 with IoU 6.4/19.2 >= .3 -> tp = [1, 1] as well; use .4:
    r_wtalc = evaluate_detections(gt, det, (0.4,), protocol="wtalc")
    r_anet = evaluate_detections(gt, det, (0.4,), protocol="anet")
    assert r_anet["mAP"][0] == pytest.approx(1.0)
    assert r_wtalc["mAP"][0] == pytest.approx(0.5)  # tp = [1, 0]: (1 * 1) / 2


def test_empty_class_and_video_without_predictions():
    gt = make_gt(GT_ROWS, videos=["v1", "v2", "v3"])
    det = make_det([("v1", 0, 10, 20, 0.9), ("v1", 2, 10, 20, 0.9)])  # class c has no GT
    r = evaluate_detections(gt, det, (0.5,))
    assert r["ap_per_class"]["a"][0] == pytest.approx(0.5)
    assert r["ap_per_class"]["b"][0] == 0.0
    assert r["mAP"][0] == pytest.approx(0.25)
    assert r["num_videos"] == 3
    assert r["precision_at_0.5"] == pytest.approx(0.5)  # the class-c prediction is a false positive


def test_no_predictions_at_all():
    r = evaluate_detections(make_gt(GT_ROWS), Detections.empty(), (0.1, 0.5))
    assert r["mAP"] == [0.0, 0.0]
    assert r["f1_at_0.5"] == 0.0


def test_ambiguous_removal():
    gt = make_gt([("v1", 0, 10.0, 20.0)], ambiguous={"v1": [[50.0, 55.0]]})
    det = make_det([("v1", 0, 52, 58, 0.9), ("v1", 0, 10, 20, 0.5)])
    r = evaluate_detections(gt, det, (0.5,))
    assert r["ambiguous_removed"] is True
    assert r["mAP"][0] == pytest.approx(1.0)
    assert r["num_predictions_dropped"] == 1
    r = evaluate_detections(gt, det, (0.5,), remove_ambiguous=False)
    assert r["ambiguous_removed"] is False
    assert r["mAP"][0] == pytest.approx(0.5)
    assert "ambiguous removed: False" in format_results_table(r)


def test_average_keys_and_table():
    r = evaluate_detections(make_gt(GT_ROWS), Detections.empty(), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
    assert "average_mAP_0.1_0.5" in r and "average_mAP_0.1_0.7" in r
    table = format_results_table(r)
    assert "protocol: anet" in table and "| 0.7 |" in table


def test_interpolated_prec_rec_golden():
    assert interpolated_prec_rec(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(5 / 6)
    assert interpolated_prec_rec(np.array([]), np.array([])) == 0.0


def test_classification_map():
    scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.1, 0.2]])
    labels = np.array([[1, 0], [0, 1], [1, 0]])
    # class 0: ranks 1 (pos), 2 (neg), 3 (pos) -> (1 + 2/3) / 2; class 1: ranks 1 (pos) -> 1.
    assert classification_map(scores, labels) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    with pytest.raises(D2NetInputError, match=r"classification_map: scores and labels must both be \[N, C\]"):
        classification_map(scores, labels[:, :1])


# --------------------------------------------------------------------------- #
# Agreement with a straightforward loop implementation of the official code
# --------------------------------------------------------------------------- #
def reference_anet(gt_rows, det_rows, thresholds, num_classes):
    """Loop translation of ActivityNet's compute_average_precision_detection (stable ties)."""

    def seg_iou(p, g):
        inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
        union = (p[1] - p[0]) + (g[1] - g[0]) - inter
        return inter / union

    def interp(prec, rec):
        mprec = [0.0] + list(prec) + [0.0]
        mrec = [0.0] + list(rec) + [1.0]
        for i in range(len(mprec) - 2, -1, -1):
            mprec[i] = max(mprec[i], mprec[i + 1])
        return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])

    aps = []
    for c in sorted({g[1] for g in gt_rows}):
        gts = [g for g in gt_rows if g[1] == c]
        preds = sorted([p for p in det_rows if p[1] == c], key=lambda p: -p[4])  # stable
        lock = [[False] * len(gts) for _ in thresholds]
        tp = [[0.0] * len(preds) for _ in thresholds]
        for i, p in enumerate(preds):
            cand = [(j, seg_iou(p[2:4], (g[2], g[3]))) for j, g in enumerate(gts) if g[0] == p[0]]
            cand.sort(key=lambda x: -x[1])  # stable: equal tIoU in GT order
            for t, thr in enumerate(thresholds):
                for j, iou in cand:
                    if iou < thr:
                        break
                    if lock[t][j]:
                        continue
                    lock[t][j] = True
                    tp[t][i] = 1.0
                    break
        row = []
        for t in range(len(thresholds)):
            tpc = np.cumsum(tp[t]) if preds else np.zeros(0)
            fpc = np.cumsum([1 - x for x in tp[t]]) if preds else np.zeros(0)
            rec = tpc / len(gts)
            prec = tpc / np.maximum(tpc + fpc, 1e-300)
            row.append(interp(prec, rec))
        aps.append(row)
    return np.mean(np.array(aps), axis=0)


def random_case(seed):
    rng = np.random.default_rng(seed)
    videos = [f"v{i}" for i in range(rng.integers(1, 5))]
    gt_rows = []
    for _ in range(rng.integers(1, 12)):
        s = float(np.round(rng.uniform(0, 50), 1))
        gt_rows.append((str(rng.choice(videos)), int(rng.integers(0, 3)), s, s + float(np.round(rng.uniform(1, 15), 1))))
    det_rows = []
    for _ in range(rng.integers(0, 40)):
        if gt_rows and rng.random() < 0.6:
            v, c, s, e = gt_rows[rng.integers(len(gt_rows))]
            s, e = s + rng.normal(0, 2), e + rng.normal(0, 2)
            e = max(e, s + 0.5)
        else:
            v, c = str(rng.choice(videos)), int(rng.integers(0, 3))
            s = rng.uniform(0, 50)
            e = s + rng.uniform(0.5, 15)
        score = float(np.round(rng.random(), 1))  # coarse scores: plenty of ties
        det_rows.append((v, c, float(s), float(e), score))
    return gt_rows, det_rows, videos


@pytest.mark.parametrize("seed", range(30))
def test_matches_loop_reference(seed):
    gt_rows, det_rows, videos = random_case(seed)
    thresholds = (0.1, 0.3, 0.5, 0.7)
    got = evaluate_detections(make_gt(gt_rows, videos), make_det(det_rows), thresholds)["mAP"]
    want = reference_anet(gt_rows, det_rows, thresholds, 3)
    np.testing.assert_allclose(got, want, atol=1e-12)


# --------------------------------------------------------------------------- #
# JSON I/O
# --------------------------------------------------------------------------- #

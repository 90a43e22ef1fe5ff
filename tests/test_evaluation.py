"""Tests of d2net_tf.evaluation: hand-built AP cases, a loop-based reference, JSON I/O, the CLI and the
W-TALC protocol's official-fidelity options (test_gt_segments, AP rule, getLocMAP class-counter bug)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND as SPS
from d2net_tf.errors import DataFormatError, D2NetInputError
from d2net_tf.evaluation import (
    Detections,
    GroundTruth,
    classification_map,
    evaluate_detections,
    format_results_table,
    ground_truth_from_test_gt_segments,
    ground_truth_to_json,
    interpolated_prec_rec,
    load_detections_json,
    load_ground_truth_json,
    load_wtalc_ground_truth,
    load_wtalc_test_gt_segments,
    read_test_gt_segments,
    write_detections_json,
)

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


# --------------------------------------------------------------------------- #
# Hand-built cases
# --------------------------------------------------------------------------- #
GT_ROWS = [("v1", 0, 10.0, 20.0), ("v1", 0, 30.0, 40.0), ("v2", 1, 5.0, 15.0)]


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
def test_detections_json_round_trip(tmp_path):
    det = make_det([("v1", 0, 1.5, 2.5, 0.25), ("v2", 2, 0.0, 9.0, 0.75)])
    path = str(tmp_path / "pred.json")
    write_detections_json(path, det, CLASSES)
    data = json.load(open(path))
    assert data["version"].startswith("d2net-tf") and data["external_data"] == {}
    assert data["results"]["v2"] == [{"label": "c", "segment": [0.0, 9.0], "score": 0.75}]
    back = load_detections_json(path, CLASSES)
    np.testing.assert_array_equal(back.video_ids, det.video_ids)
    np.testing.assert_array_equal(back.class_ids, det.class_ids)
    np.testing.assert_allclose(back.starts, det.starts)
    np.testing.assert_allclose(back.scores, det.scores)


def test_ground_truth_json_round_trip(tmp_path):
    gt = make_gt(GT_ROWS, videos=["v1", "v2", "v3"], ambiguous={"v1": [[1.0, 2.0]]})
    path = str(tmp_path / "gt.json")
    json.dump(ground_truth_to_json(gt, subset="test"), open(path, "w"))
    back = load_ground_truth_json(path, subset="test")
    assert back.classlist == CLASSES
    assert back.video_list == ["v1", "v2", "v3"]
    np.testing.assert_allclose(back.ambiguous["v1"], [[1.0, 2.0]])
    np.testing.assert_array_equal(back.class_ids, gt.class_ids)
    with pytest.raises(DataFormatError, match=r"no video in subset 'validation'"):
        load_ground_truth_json(path, subset="validation")


def test_ground_truth_json_sorted_taxonomy(tmp_path):
    path = tmp_path / "gt.json"
    db = {"x": {"subset": "validation", "duration": 10, "annotations": [{"label": "zeta", "segment": [1, 2]}]},
          "y": {"subset": "validation", "duration": 10, "annotations": [{"label": "alpha", "segment": [1, 2]}]}}
    path.write_text(json.dumps({"database": db}))
    gt = load_ground_truth_json(str(path))
    assert gt.classlist == ["alpha", "zeta"]
    assert gt.class_ids.tolist() == [1, 0]


def _write(tmp_path, payload, name="pred.json"):
    p = tmp_path / name
    p.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return str(p)


@pytest.mark.parametrize(
    "payload, message",
    [
        ("{not json", r"pred\.json: malformed JSON \(Expecting property name"),
        ({"result": {}}, r"pred\.json: missing key 'results'"),
        ({"results": {"v": [{"label": "zzz", "segment": [0, 1], "score": 1}]}},
         r"pred\.json: results\['v'\]\[0\]\.label: unknown label 'zzz'"),
        ({"results": {"v": [{"label": "a", "segment": [2, 1], "score": 1}]}},
         r"pred\.json: results\['v'\]\[0\]\.segment: end must be > start, got \[2, 1\]"),
        ({"results": {"v": [{"label": "a", "segment": [0, 1], "score": float("nan")}]}},
         r"pred\.json: results\['v'\]\[0\]\.score: NaN/inf score"),
        ({"results": {"v": [{"label": "a", "segment": [0, 1]}]}},
         r"pred\.json: results\['v'\]\[0\]: missing key 'score'"),
    ],
)
def test_bad_detections_json(tmp_path, payload, message):
    path = _write(tmp_path, payload)
    with pytest.raises(DataFormatError, match=message):
        load_detections_json(path, CLASSES)


def test_bad_ground_truth_json(tmp_path):
    path = _write(tmp_path, {"database": {"v": {"subset": "test"}}}, "gt.json")
    with pytest.raises(DataFormatError, match=r"gt\.json: database\['v'\]: missing key 'annotations'"):
        load_ground_truth_json(path)
    with pytest.raises(DataFormatError, match=r"missing\.json: file not found"):
        load_ground_truth_json(str(tmp_path / "missing.json"))


def test_bad_protocol_and_class_ids():
    gt = make_gt(GT_ROWS)
    with pytest.raises(D2NetInputError, match=r"protocol must be one of \('anet', 'wtalc'\), got 'voc'"):
        evaluate_detections(gt, Detections.empty(), (0.5,), protocol="voc")
    with pytest.raises(D2NetInputError, match=r"detections: class ids must be in \[0, 3\)"):
        evaluate_detections(gt, make_det([("v1", 7, 0, 1, 1.0)]), (0.5,))


# --------------------------------------------------------------------------- #
# Real THUMOS14 annotations and the command line
# --------------------------------------------------------------------------- #
def load_thumos_test_gt():
    try:
        from d2net_tf.data.wtalc import load_wtalc_annotations
    except ImportError:  # pragma: no cover - loader written elsewhere
        pytest.skip("d2net_tf.data.wtalc not available")
    return GroundTruth.from_dataset(load_wtalc_annotations(THUMOS_DIR), "test")


def test_real_thumos_perfect_predictions():
    gt = load_thumos_test_gt()
    assert gt.ambiguous and len(gt.video_list) == 212
    det = Detections(gt.video_ids, gt.class_ids, gt.starts, gt.ends, np.linspace(1, 0.5, len(gt)))
    r = evaluate_detections(gt, det, (0.1, 0.5, 0.7), protocol="anet", remove_ambiguous=False)
    np.testing.assert_allclose(r["mAP"], 1.0)
    # W-TALC protocol: ground truth shorter than half a snippet has an empty index set
    # range(round(s * sps), round(e * sps)) and can never be matched (as in getLocMAP).
    r = evaluate_detections(gt, det, (0.1, 0.5, 0.7), protocol="wtalc", remove_ambiguous=False)
    empty = np.round(gt.ends * gt.snippets_per_second) <= np.round(gt.starts * gt.snippets_per_second)
    assert empty.sum() > 0
    assert r["recall_at_0.5"] == pytest.approx(1 - empty.mean())
    assert r["precision_at_0.5"] == pytest.approx(1 - empty.mean())


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def _perfect_files(tmp_path):
    """A ground-truth JSON of GT_ROWS (subset "test") and a results JSON that predicts exactly them."""
    gt_path = str(tmp_path / "gt.json")
    json.dump(ground_truth_to_json(make_gt(GT_ROWS), subset="test"), open(gt_path, "w"))
    pred_path = str(tmp_path / "pred.json")
    write_detections_json(pred_path, make_det([(v, c, s, e, 0.5) for v, c, s, e in GT_ROWS]), CLASSES)
    return gt_path, pred_path


def test_cli_end_to_end(tmp_path):
    gt_path, pred_path = _perfect_files(tmp_path)
    out = str(tmp_path / "out.json")
    proc = run_cli("--ground_truth", gt_path, "--predictions", pred_path, "--tiou_thresholds", "0.1,0.5",
                   "--subset", "test", "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert "protocol: anet" in proc.stdout
    result = json.load(open(out))
    assert result["mAP"] == [1.0, 1.0] and result["protocol"] == "anet"


def test_evaluate_predictions_file_library(tmp_path):
    """The command's library function, called without flags: a JSON file and a W-TALC folder."""
    from d2net_tf.evaluation import evaluate_predictions_file

    gt_path, pred_path = _perfect_files(tmp_path)
    result = evaluate_predictions_file(gt_path, pred_path, [0.1, 0.5], subset="test")
    assert result["mAP"] == [1.0, 1.0] and result["subset"] == "test" and result["predictions"] == pred_path
    thumos = load_thumos_test_gt()
    sel = np.arange(0, len(thumos), 5)
    write_detections_json(pred_path, Detections(thumos.video_ids[sel], thumos.class_ids[sel], thumos.starts[sel],
                                                thumos.ends[sel], np.ones(sel.size)), thumos.classlist)
    folder = evaluate_predictions_file(THUMOS_DIR, pred_path, [0.5], subset="test", protocol="wtalc",
                                       wtalc_options={"wtalc_ap": "interpolated"})
    assert folder["protocol"] == "wtalc" and folder["wtalc_ap"] == "interpolated" and 0 < folder["mAP"][0] <= 1


def test_cli_wtalc_annotation_folder(tmp_path):
    gt = load_thumos_test_gt()
    pred_path = str(tmp_path / "pred.json")
    sel = np.arange(0, len(gt), 3)
    det = Detections(gt.video_ids[sel], gt.class_ids[sel], gt.starts[sel], gt.ends[sel], np.ones(sel.size))
    write_detections_json(pred_path, det, gt.classlist)
    out = str(tmp_path / "out.json")
    proc = run_cli("--ground_truth", THUMOS_DIR, "--predictions", pred_path, "--subset", "test",
                   "--protocol", "wtalc", "--output", out)
    assert proc.returncode == 0, proc.stderr
    result = json.load(open(out))
    assert result["protocol"] == "wtalc" and result["ambiguous_removed"] is True
    assert 0.0 < result["mAP"][0] <= 1.0


def test_cli_missing_file(tmp_path):
    proc = run_cli("--ground_truth", str(tmp_path / "nope.json"), "--predictions", str(tmp_path / "p.json"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.json" in lines[0] and "Traceback" not in proc.stderr


def test_cli_malformed_json(tmp_path):
    gt = _write(tmp_path, "{oops", "gt.json")
    pred = _write(tmp_path, {"results": {}})
    proc = run_cli("--ground_truth", gt, "--predictions", pred)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gt.json: malformed JSON" in lines[0]


def test_ground_truth_cli_converts_wtalc_annotations(tmp_path):
    from conftest import assert_one_line_error, run_module

    out = str(tmp_path / "gt.json")
    p = run_module("d2net_tf.cli.ground_truth", "--annotations", THUMOS_DIR, "--subset", "test", "--output", out)
    assert p.returncode == 0, p.stderr
    assert "212 videos, 3358 segments, 20 classes" in p.stdout
    back = load_ground_truth_json(out, subset="test")
    direct = load_thumos_test_gt()
    assert back.classlist == direct.classlist and back.video_list == direct.video_list
    np.testing.assert_allclose(back.starts, direct.starts)
    assert back.ambiguous.keys() == direct.ambiguous.keys()
    assert_one_line_error(run_module("d2net_tf.cli.ground_truth", "--annotations", tmp_path / "nope", "--output", out),
                          "nope: annotation folder does not exist")


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

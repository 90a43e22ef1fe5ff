"""Tests of d2net_tf.evaluation: hand-built AP cases, a loop-based reference, JSON I/O and the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from d2net_tf.errors import DataFormatError, D2NetInputError
from d2net_tf.evaluation import (
    Detections,
    GroundTruth,
    classification_map,
    evaluate_detections,
    format_results_table,
    ground_truth_to_json,
    interpolated_prec_rec,
    load_detections_json,
    load_ground_truth_json,
    write_detections_json,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THUMOS_DIR = os.path.join(REPO, "d2net_tf", "data", "annotations", "Thumos14reduced-Annotations")
CLASSES = ["a", "b", "c"]


def make_gt(rows, videos=None, ambiguous=None, sps=25 / 16):
    """rows: (video, class_id, start, end)."""
    rows = list(rows)
    videos = videos or sorted({r[0] for r in rows})
    return GroundTruth(
        video_ids=np.array([r[0] for r in rows], dtype=str),
        class_ids=[r[1] for r in rows],
        starts=[r[2] for r in rows],
        ends=[r[3] for r in rows],
        classlist=CLASSES,
        ambiguous=ambiguous or {},
        durations={v: 100.0 for v in videos},
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


def test_cli_end_to_end(tmp_path):
    gt = make_gt(GT_ROWS)
    gt_path = str(tmp_path / "gt.json")
    json.dump(ground_truth_to_json(gt, subset="test"), open(gt_path, "w"))
    pred_path = str(tmp_path / "pred.json")
    write_detections_json(pred_path, make_det([(v, c, s, e, 0.5) for v, c, s, e in GT_ROWS]), CLASSES)
    out = str(tmp_path / "out.json")
    proc = run_cli("--ground_truth", gt_path, "--predictions", pred_path, "--tiou_thresholds", "0.1,0.5",
                   "--subset", "test", "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert "protocol: anet" in proc.stdout
    result = json.load(open(out))
    assert result["mAP"] == [1.0, 1.0] and result["protocol"] == "anet"


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


def test_ground_truth_cli_converts_wtalc_annotations(tmp_path, capsys):
    pytest.importorskip("d2net_tf.data.wtalc")
    from d2net_tf.ground_truth import main as gt_main

    out = str(tmp_path / "gt.json")
    assert gt_main(["--annotations", THUMOS_DIR, "--subset", "test", "--output", out]) == 0
    assert "212 videos, 3358 segments, 20 classes" in capsys.readouterr().out
    back = load_ground_truth_json(out, subset="test")
    direct = load_thumos_test_gt()
    assert back.classlist == direct.classlist and back.video_list == direct.video_list
    np.testing.assert_allclose(back.starts, direct.starts)
    assert back.ambiguous.keys() == direct.ambiguous.keys()
    with pytest.raises(SystemExit) as exit_info:
        gt_main(["--annotations", str(tmp_path / "nope"), "--output", out])
    assert exit_info.value.code == 2
    assert "nope: annotation folder does not exist" in capsys.readouterr().err

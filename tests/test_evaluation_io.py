"""Tests of d2net_tf.evaluation's JSON I/O, its errors, the real THUMOS14 split and the command lines."""

import json
import subprocess
import sys

import numpy as np
import pytest

from d2net_tf.errors import DataFormatError, D2NetInputError
from d2net_tf.evaluation import (
    Detections,
    evaluate_detections,
    ground_truth_to_json,
    load_detections_json,
    load_ground_truth_json,
    write_detections_json,
)

from evaluation_helpers import REPO, THUMOS_DIR, CLASSES, GT_ROWS, make_gt, make_det, load_thumos_test_gt


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

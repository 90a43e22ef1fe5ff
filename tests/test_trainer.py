"""End-to-end smoke tests of trainers.fit / evaluate / localize on the tiny synthetic dataset."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    data, model = str(root / "data"), str(root / "model")
    common = [f"--data_dir={data}", "--synthetic=tiny", "--feature_dim=32"]
    fit = ["trainers.fit", *common, f"--model_dir={model}", "--num_steps=6", "--eval_every=3",
           "--checkpoint_every=3", "--batch_size=4", "--progress=0", "--denoise_start_step=2"]
    proc = _run(*fit)
    return {"root": root, "data": data, "model": model, "common": common, "fit": fit, "stdout": proc.stdout}


def test_fit_writes_model_dir(trained):
    model = trained["model"]
    with open(os.path.join(model, "results.json")) as f:
        res = json.load(f)
    assert res["selected_on"] == "test" and res["protocol"] == "anet"  # --preset=official selects on test
    assert len(res["mAP"]) == 7 and all(0.0 <= m <= 1.0 for m in res["mAP"])
    assert 0.0 <= res["classification_mAP"] <= 1.0
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["config"]["model"]["feature_dim"] == 32 and len(cfg["classlist"]) == 20
    assert os.path.exists(os.path.join(model, "checkpoint"))
    assert os.path.exists(os.path.join(model, "best", "checkpoint"))
    assert os.listdir(os.path.join(model, "tensorboard"))
    assert cfg["run"]["packed"] is False and cfg["run"]["wtalc_class_counter_bug"] is True
    assert "mAP (%)" in trained["stdout"] and "protocol: anet" in trained["stdout"]


def test_rerun_resumes_without_training_again(trained):
    proc = _run(*trained["fit"])
    assert "resumed from" in proc.stdout and "at step 6" in proc.stdout


def test_other_config_in_same_model_dir_is_refused(trained):
    proc = _run(*trained["fit"], "--learning_rate=0.5", check=False)
    assert proc.returncode == 2
    assert "different configuration" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_model_dir_reproduces_results_json(trained, tmp_path):
    out = tmp_path / "eval.json"
    det = tmp_path / "det.json"
    _run("trainers.evaluate", f"--model_dir={trained['model']}", *trained["common"], f"--output={out}",
         f"--detections_output={det}")
    with open(out) as f:
        res = json.load(f)
    with open(os.path.join(trained["model"], "results.json")) as f:
        ref = json.load(f)
    np.testing.assert_allclose(res["mAP"], ref["mAP"], atol=1e-6)
    # The written detections evaluate to the same numbers through the file-based evaluator.
    gt = os.path.join(trained["data"], "Thumos14reduced-Annotations")
    out2 = tmp_path / "eval2.json"
    _run("trainers.evaluate", f"--ground_truth={gt}", f"--predictions={det}", "--subset=test", f"--output={out2}")
    with open(out2) as f:
        res2 = json.load(f)
    np.testing.assert_allclose(res2["mAP"], ref["mAP"], atol=1e-6)


def test_localize_feature_file_and_plot(trained, tmp_path):
    feats = np.load(os.path.join(trained["data"], "Thumos14reduced-I3D-JOINTFeatures.npy"), allow_pickle=True)
    np.save(tmp_path / "vid.npy", feats[0])
    out, png = tmp_path / "det.json", tmp_path / "tcam.png"
    proc = _run("trainers.localize", f"--model_dir={trained['model']}", f"--features={tmp_path / 'vid.npy'}",
                f"--output={out}", f"--plot={png}")
    with open(out) as f:
        det = json.load(f)
    assert set(det) >= {"version", "results", "external_data"}
    for d in det["results"].get("vid", []):
        assert 0 <= d["segment"][0] < d["segment"][1] <= feats[0].shape[0] / 1.5625 + 1e-9
    assert png.stat().st_size > 1000 and "detections" in proc.stdout


def test_tensorboard_curves_carry_the_global_step(trained, tmp_path):
    # Two evaluation windows (steps 0-60, 60-120) are two fit() calls; Keras restarts its batch counter in each,
    # and the job's callback keeps the global step, so the second window logs step 100, not step 50 again.
    import tensorflow as tf

    model = str(tmp_path / "model")
    _run("trainers.fit", *trained["common"], f"--model_dir={model}", "--num_steps=120", "--eval_every=60",
         "--checkpoint_every=60", "--batch_size=4", "--progress=0")
    steps = []
    for root, _, files in os.walk(os.path.join(model, "tensorboard", "fit")):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                steps += [event.step for v in event.summary.value if v.tag == "batch_loss"]
    assert sorted(steps) == [50, 100]

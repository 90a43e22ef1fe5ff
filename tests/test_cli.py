"""Every command line turns bad input into ONE line on stderr and exit status 2 (no traceback
unless --verbosity=1). The CLIs run as subprocesses; one tiny trained model is shared."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import assert_one_line_error, run_module as run

DATASET = "Thumos14reduced"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The tiny synthetic dataset, a model trained 2 steps on it, its ground truth and predictions."""
    base = tmp_path_factory.mktemp("cli")
    data, model = base / "data", base / "model"
    p = run("trainers.fit", "--synthetic=tiny", f"--data_dir={data}", "--feature_dim=32", f"--model_dir={model}",
            "--num_steps=2", "--eval_every=2", "--checkpoint_every=2", "--batch_size=4", "--progress=0",
            "--select_on=last")
    assert p.returncode == 0, p.stderr[-3000:]
    gt = base / "gt.json"
    p = run("d2net_tf.cli.ground_truth", "--annotations", data / f"{DATASET}-Annotations", "--subset", "test",
            "--output", gt)
    assert p.returncode == 0, p.stderr
    feats = base / "video.npy"
    np.save(feats, np.random.default_rng(0).random((40, 32), dtype=np.float32))
    pred = base / "pred.json"
    classes = json.loads(gt.read_text())["classlist"] if "classlist" in json.loads(gt.read_text()) else None
    vid = next(iter(json.loads(gt.read_text())["database"]))
    label = classes[0] if classes else "BaseballPitch"
    pred.write_text(json.dumps({"results": {vid: [{"label": label, "score": 0.5, "segment": [1.0, 2.0]}]}}))
    return {"base": base, "data": data, "model": model, "gt": gt, "pred": pred, "feats": feats, "label": label,
            "vid": vid}


def wtalc_copy(env, dest, mutate):
    """A copy of the tiny W-TALC dataset whose feature list goes through `mutate(list) -> list`."""
    from d2net_tf.data.safe_npy import load_npy
    from d2net_tf.data.synthetic import write_object_npy

    shutil.copytree(env["data"], dest)
    path = dest / f"{DATASET}-I3D-JOINTFeatures.npy"
    feats = mutate(list(load_npy(str(path))))
    os.remove(path)
    write_object_npy(str(path), len(feats), feats)
    return dest


def fit(data_dir, model_dir, *extra):
    return run("trainers.fit", f"--data_dir={data_dir}", "--feature_dim=32", f"--model_dir={model_dir}",
               "--num_steps=1", "--batch_size=4", "--progress=0", *extra)


# ---------------------------------------------------------------- fit (python -m trainers.fit: the checkout entry point)


def test_fit_missing_data_dir(env, tmp_path):
    assert_one_line_error(fit(tmp_path / "nope", tmp_path / "m"), "feature file not found")


def test_fit_winograd_on_padded_batches(env, tmp_path):
    model_dir = tmp_path / "m"
    out = fit(env["data"], model_dir, "--preset=official", "--conv_algorithm=winograd")
    assert_one_line_error(out, "conv_algorithm='winograd' runs on packed batches only: use --packed")
    assert not model_dir.exists()


@pytest.mark.slow
def test_fit_truncated_feature_file(env, tmp_path):
    d = shutil.copytree(env["data"], tmp_path / "d")
    f = d / f"{DATASET}-I3D-JOINTFeatures.npy"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert_one_line_error(fit(d, tmp_path / "m"), str(f))


@pytest.mark.slow
def test_fit_garbage_feature_file(env, tmp_path):
    d = shutil.copytree(env["data"], tmp_path / "d")
    (d / f"{DATASET}-I3D-JOINTFeatures.npy").write_bytes(b"this is not numpy" * 10)
    assert_one_line_error(fit(d, tmp_path / "m"), "JOINTFeatures.npy")


@pytest.mark.slow
def test_fit_feature_file_is_a_directory(env, tmp_path):
    d = shutil.copytree(env["data"], tmp_path / "d")
    f = d / f"{DATASET}-I3D-JOINTFeatures.npy"
    os.remove(f)
    os.mkdir(f)
    assert_one_line_error(fit(d, tmp_path / "m"))


@pytest.mark.slow
def test_fit_wrong_feature_dimension(env, tmp_path):
    p = run("trainers.fit", f"--data_dir={env['data']}", "--feature_dim=64", f"--model_dir={tmp_path / 'm'}",
            "--num_steps=1", "--progress=0")
    assert_one_line_error(p, "feature dimension 32, expected 64")


def test_fit_nan_and_inf_features(env, tmp_path):
    def poison(feats):
        feats[0] = feats[0].copy()
        feats[0][1, 2] = np.nan
        feats[1] = feats[1].copy()
        feats[1][0, 0] = np.inf
        return feats

    assert_one_line_error(fit(wtalc_copy(env, tmp_path / "d", poison), tmp_path / "m"), "NaN/inf")


@pytest.mark.slow
def test_fit_all_videos_empty(env, tmp_path):
    d = wtalc_copy(env, tmp_path / "d", lambda feats: [np.zeros((0, 32), np.float32) for _ in feats])
    assert_one_line_error(fit(d, tmp_path / "m"), "no video")


@pytest.mark.slow
def test_fit_unknown_class_name(env, tmp_path):
    from d2net_tf.data.safe_npy import load_npy

    d = shutil.copytree(env["data"], tmp_path / "d")
    ann = d / f"{DATASET}-Annotations" / "labels_all.npy"
    labels = load_npy(str(ann))
    labels[0] = ["NoSuchClass"]
    np.save(ann, labels, allow_pickle=True)
    assert_one_line_error(fit(d, tmp_path / "m"), "NoSuchClass")


@pytest.mark.slow
def test_fit_per_video_malformed_json(env, tmp_path):
    d = tmp_path / "pv"
    (d / "features").mkdir(parents=True)
    (d / "ground_truth.json").write_text('{"database": {"v": ')
    assert_one_line_error(fit(d, tmp_path / "m", "--data_layout=per_video"), "malformed JSON")


@pytest.mark.slow
def test_fit_model_dir_of_another_configuration(env, tmp_path):
    m = shutil.copytree(env["model"], tmp_path / "m")
    assert_one_line_error(fit(env["data"], m, "--loss=ce"), "different configuration")


@pytest.mark.slow
def test_fit_traceback_only_with_verbosity_1(env, tmp_path):
    p = fit(tmp_path / "nope", tmp_path / "m", "--verbosity=1")
    assert p.returncode == 2 and "Traceback" in p.stderr


# ---------------------------------------------------------------- evaluate


def evaluate(*args):
    return run("d2net_tf.cli.evaluate", *args)


@pytest.mark.slow
def test_evaluate_files_ok(env):
    p = evaluate("--ground_truth", env["gt"], "--predictions", env["pred"])
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_evaluate_missing_predictions(env, tmp_path):
    assert_one_line_error(evaluate("--ground_truth", env["gt"], "--predictions", tmp_path / "nope.json"), "nope.json")


@pytest.mark.slow
def test_evaluate_missing_ground_truth(env, tmp_path):
    assert_one_line_error(evaluate("--ground_truth", tmp_path / "nope.json", "--predictions", env["pred"]), "nope.json")


SLOW = pytest.mark.slow


@pytest.mark.parametrize("text", ['{"results": {'] + [pytest.param(t, marks=SLOW) for t in (
    "", "[1, 2]", '{"results": {"v": [{"label": "x"}]}}', "\xff\xfe")])
def test_evaluate_malformed_predictions(env, tmp_path, text):
    f = tmp_path / "bad.json"
    f.write_bytes(text.encode("latin-1"))
    assert_one_line_error(evaluate("--ground_truth", env["gt"], "--predictions", f), "bad.json")


@pytest.mark.slow
def test_evaluate_truncated_ground_truth(env, tmp_path):
    f = tmp_path / "gt.json"
    f.write_bytes(env["gt"].read_bytes()[:100])
    assert_one_line_error(evaluate("--ground_truth", f, "--predictions", env["pred"]), "gt.json")


def test_evaluate_unknown_class_in_predictions(env, tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"results": {env["vid"]: [{"label": "NoSuchClass", "score": 0.5, "segment": [1, 2]}]}}))
    assert_one_line_error(evaluate("--ground_truth", env["gt"], "--predictions", f), "NoSuchClass")


@pytest.mark.slow
def test_evaluate_nonfinite_prediction(env, tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"results": {"%s": [{"label": "%s", "score": NaN, "segment": [1, 2]}]}}' % (env["vid"], env["label"]))
    assert_one_line_error(evaluate("--ground_truth", env["gt"], "--predictions", f), "p.json")


@pytest.mark.slow
def test_evaluate_bad_thresholds(env):
    assert_one_line_error(evaluate("--ground_truth", env["gt"], "--predictions", env["pred"], "--tiou_thresholds=a,b"),
                          "tiou_thresholds")


@pytest.mark.slow
def test_evaluate_model_dir_without_checkpoint(env, tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    shutil.copy(env["model"] / "config.json", m / "config.json")
    assert_one_line_error(evaluate("--model_dir", m, "--synthetic=tiny", f"--data_dir={env['data']}", "--feature_dim=32"),
                          "no checkpoint")


@pytest.mark.slow
def test_evaluate_not_a_model_dir(env, tmp_path):
    assert_one_line_error(evaluate("--model_dir", tmp_path, f"--data_dir={env['data']}", "--feature_dim=32"),
                          "not a model directory")


# ---------------------------------------------------------------- localize


def localize(env, features, *extra, model=None):
    return run("d2net_tf.cli.localize", "--model_dir", model or env["model"], "--features", features,
               "--output", env["base"] / "out.json", *extra)


@pytest.mark.slow
def test_localize_ok(env):
    p = localize(env, env["feats"])
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_localize_and_evaluate_with_winograd_match_direct(env, tmp_path):
    outs = {}
    for algorithm in ("direct", "winograd"):
        out = tmp_path / f"{algorithm}.json"
        p = run("d2net_tf.cli.localize", "--model_dir", env["model"], "--features", env["feats"], "--output", out,
                f"--conv_algorithm={algorithm}")
        assert p.returncode == 0, p.stderr
        outs[algorithm] = json.loads(out.read_text())["results"]["video"]
        result = tmp_path / f"{algorithm}-eval.json"
        p = evaluate("--model_dir", env["model"], f"--data_dir={env['data']}", "--feature_dim=32", "--output", result,
                     f"--conv_algorithm={algorithm}")
        assert p.returncode == 0, p.stderr
        outs[algorithm + "-mAP"] = json.loads(result.read_text())["mAP"]
    direct, fast = outs["direct"], outs["winograd"]
    assert direct and len(fast) == len(direct)
    np.testing.assert_allclose([d["score"] for d in fast], [d["score"] for d in direct], atol=1e-5)
    np.testing.assert_allclose([d["segment"] for d in fast], [d["segment"] for d in direct], atol=1e-6)
    np.testing.assert_allclose(outs["winograd-mAP"], outs["direct-mAP"], atol=1e-6)


@pytest.mark.slow
def test_localize_and_evaluate_in_mixed_bfloat16(env, tmp_path):
    """--precision reaches the network: recorded in the result, detections within bfloat16 round-off."""
    runs = {}
    for precision in ("float32", "mixed_bfloat16"):
        out, result = tmp_path / f"{precision}.json", tmp_path / f"{precision}-eval.json"
        p = run("d2net_tf.cli.localize", "--model_dir", env["model"], "--features", env["feats"], "--output", out,
                f"--precision={precision}")
        assert p.returncode == 0, p.stderr
        p = evaluate("--model_dir", env["model"], f"--data_dir={env['data']}", "--feature_dim=32", "--output", result,
                     f"--precision={precision}")
        assert p.returncode == 0, p.stderr
        runs[precision] = json.loads(out.read_text())["results"]["video"], json.loads(result.read_text())
    (exact, exact_eval), (fast, fast_eval) = runs["float32"], runs["mixed_bfloat16"]
    assert (exact_eval["precision"], fast_eval["precision"]) == ("float32", "mixed_bfloat16")
    assert exact and fast
    top = max(d["score"] for d in exact)
    assert abs(max(d["score"] for d in fast) - top) <= 2e-2 * abs(top)
    assert {d["label"] for d in fast[:3]} & {d["label"] for d in exact[:3]}
    np.testing.assert_allclose(fast_eval["mAP"], exact_eval["mAP"], atol=0.05)
    assert_one_line_error(localize(env, env["feats"], "--precision=float16"), "precision")


@pytest.mark.slow
def test_localize_bad_conv_algorithm(env):
    assert_one_line_error(localize(env, env["feats"], "--conv_algorithm=fft"), "conv_algorithm")


@pytest.mark.slow
def test_localize_missing_features(env, tmp_path):
    assert_one_line_error(localize(env, tmp_path / "nope.npy"), "nope.npy")


@pytest.mark.slow
def test_localize_truncated_features(env, tmp_path):
    f = tmp_path / "v.npy"
    f.write_bytes(env["feats"].read_bytes()[:200])
    assert_one_line_error(localize(env, f), "v.npy")


@pytest.mark.slow
def test_localize_garbage_features(env, tmp_path):
    f = tmp_path / "v.npy"
    f.write_bytes(b"\x00garbage" * 50)
    assert_one_line_error(localize(env, f), "v.npy")


@pytest.mark.parametrize("array,fragment", [
    (np.zeros((40, 64), np.float32), "expected 32"),
    pytest.param(np.full((40, 32), np.nan, np.float32), "NaN/inf", marks=SLOW),
    pytest.param(np.full((40, 32), np.inf, np.float32), "NaN/inf", marks=SLOW),
    pytest.param(np.zeros((0, 32), np.float32), "zero-length", marks=SLOW),
    pytest.param(np.zeros((40,), np.float32), "2-D", marks=SLOW),
    pytest.param(np.array(["a", "b"]), "v.npy", marks=SLOW),
])
def test_localize_bad_feature_arrays(env, tmp_path, array, fragment):
    f = tmp_path / "v.npy"
    np.save(f, array)
    assert_one_line_error(localize(env, f), fragment)


@pytest.mark.slow
def test_localize_pickled_object_file(env, tmp_path):
    f = tmp_path / "v.npy"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    np.save(f, np.array([Evil()], dtype=object), allow_pickle=True)
    assert_one_line_error(localize(env, f), "v.npy")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_localize_empty_folder(env, tmp_path):
    assert_one_line_error(localize(env, tmp_path), "no .npy")


def test_localize_model_dir_without_checkpoint(env, tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    shutil.copy(env["model"] / "config.json", m / "config.json")
    assert_one_line_error(localize(env, env["feats"], model=m), "no checkpoint")


@pytest.mark.slow
def test_localize_malformed_config_json(env, tmp_path):
    m = shutil.copytree(env["model"], tmp_path / "m")
    (m / "config.json").write_text("{not json")
    assert_one_line_error(localize(env, env["feats"], model=m), "config.json")


@pytest.mark.slow
def test_localize_malformed_ground_truth_for_plot(env, tmp_path):
    f = tmp_path / "gt.json"
    f.write_text("{")
    assert_one_line_error(localize(env, env["feats"], "--plot", tmp_path / "p.png", "--ground_truth", f), "gt.json")


# ---------------------------------------------------------------- export_saved_model


def test_export_version_already_there(env, tmp_path):
    (tmp_path / "e" / "1").mkdir(parents=True)
    p = run("d2net_tf.cli.export_saved_model", "--model_dir", env["model"], "--export_dir", tmp_path / "e", "--version", 1)
    assert_one_line_error(p, "already exists")
    assert os.listdir(tmp_path / "e") == ["1"] and not os.listdir(tmp_path / "e" / "1")


@pytest.mark.slow
def test_export_model_dir_without_checkpoint(env, tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    shutil.copy(env["model"] / "config.json", m / "config.json")
    p = run("d2net_tf.cli.export_saved_model", "--model_dir", m, "--export_dir", tmp_path / "e", "--version", 1)
    assert_one_line_error(p, "no checkpoint")
    assert not (tmp_path / "e" / "1").exists()


# ---------------------------------------------------------------- data tools


@pytest.mark.slow
def test_ground_truth_missing_annotations(tmp_path):
    p = run("d2net_tf.cli.ground_truth", "--annotations", tmp_path / "nope", "--output", tmp_path / "o.json")
    assert_one_line_error(p, "nope")


@pytest.mark.slow
def test_ground_truth_unwritable_output(tiny_data_dir, tmp_path):
    p = run("d2net_tf.cli.ground_truth", "--annotations", tiny_data_dir / f"{DATASET}-Annotations",
            "--output", tmp_path / "no" / "dir" / "o.json")
    assert_one_line_error(p)


@pytest.mark.slow
def test_convert_missing_features(tiny_data_dir, tmp_path):
    p = run("d2net_tf.cli.convert_wtalc", "--features", tmp_path / "nope.npy",
            "--annotations", tiny_data_dir / f"{DATASET}-Annotations", "--out", tmp_path / "o")
    assert_one_line_error(p, "nope.npy")


@pytest.mark.slow
def test_convert_truncated_features(tiny_data_dir, tmp_path):
    f = tmp_path / "f.npy"
    src = tiny_data_dir / f"{DATASET}-I3D-JOINTFeatures.npy"
    f.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    p = run("d2net_tf.cli.convert_wtalc", "--features", f, "--annotations", tiny_data_dir / f"{DATASET}-Annotations",
            "--out", tmp_path / "o")
    assert_one_line_error(p, "f.npy")


@pytest.mark.slow
def test_convert_out_is_a_file(tiny_data_dir, tmp_path):
    (tmp_path / "o").write_text("x")
    p = run("d2net_tf.cli.convert_wtalc", "--features", tiny_data_dir / f"{DATASET}-I3D-JOINTFeatures.npy",
            "--annotations", tiny_data_dir / f"{DATASET}-Annotations", "--out", tmp_path / "o" / "sub")
    assert_one_line_error(p)


@pytest.mark.slow
def test_synthetic_out_is_a_file(tmp_path):
    (tmp_path / "o").write_text("x")
    p = run("d2net_tf.cli.synthetic", "--preset=tiny", "--out", tmp_path / "o" / "sub")
    assert_one_line_error(p)

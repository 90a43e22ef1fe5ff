"""Deployment: in-graph localization parity, SavedModel (TF Serving), TFLite, ONNX.

A tiny D2Net (D=32, C=20) trained 2 steps in-process, with a random non-zero x_ref, is
written as a model directory (config.json + best/ checkpoint) once per session.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.config import D2NetConfig, LossConfig, ModelConfig, TrainConfig
from d2net_tf.localization import LocalizationConfig, localize_video, nms_1d
from d2net_tf.localization.tf_ops import localize_tf, nms_1d_tf
from d2net_tf.serving import LOCALIZE_OUTPUTS, SERVING_OUTPUTS, ServingModule

from conftest import ROOT, SUBPROCESS_ENV as ENV
NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} )")  # TF C++ start-up lines
FEAT, NCLS, SPS = 32, 20, 25.0 / 16.0
PRESETS = {
    "paper": LocalizationConfig.paper(),
    "official": LocalizationConfig.official("thumos14"),
    "official_anet": dataclasses.replace(LocalizationConfig.official("activitynet1.2"), topk_divisor=4),
}


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #
def smooth_tcam(rng, s, c, quantize=None):
    """A random smooth TCAM in (0, 1) (moving-average filtered noise through a sigmoid)."""
    x = rng.normal(size=(s + 8, c))
    k = np.ones(9) / 9
    x = np.stack([np.convolve(x[:, j], k, "valid") for j in range(c)], 1)[:s]
    t = 1 / (1 + np.exp(-4 * x))
    if quantize:  # plateaus: duplicate proposals and tied scores
        t = np.round(t * quantize) / quantize
    return t.astype(np.float32)


def assert_same_detections(det, out, tol=1e-5):
    """numpy Detections vs the TF dict: same rows in the same order, scores to `tol`."""
    assert out["class_ids"].tolist() == det.class_ids.tolist()
    np.testing.assert_array_equal(out["starts_s"], det.starts)
    np.testing.assert_array_equal(out["ends_s"], det.ends)
    np.testing.assert_allclose(out["scores"], det.scores, rtol=0, atol=tol)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A model directory like trainers.fit writes: config.json and best/ckpt-N."""
    from d2net_tf.model_dir import training_checkpoint
    from d2net_tf.training import create_model

    root = tmp_path_factory.mktemp("export_model")
    cfg = D2NetConfig(ModelConfig(feature_dim=FEAT, num_classes=NCLS, dropout=0.0, init="glorot"),
                      LossConfig(denoise_start_step=0), TrainConfig(batch_size=3, learning_rate=1e-2, seed=0))
    model = create_model(cfg)
    rng = np.random.default_rng(0)
    b, t = 3, 24
    mask = np.ones((b, t), np.float32)
    mask[2, 18:] = 0
    labels = np.eye(NCLS, dtype=np.float32)[[1, 4, 7]]
    batch = dict(features=rng.normal(size=(b, t, FEAT)).astype(np.float32), mask=mask, labels=labels,
                 perm=np.array([1, 2, 0], np.int32))
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(2), epochs=1, verbose=0, shuffle=False)
    model.x_ref.assign(rng.normal(size=FEAT // 2).astype(np.float32))  # non-trivial attention
    tf.train.CheckpointManager(training_checkpoint(model), str(root / "best"), max_to_keep=1).save(checkpoint_number=2)
    # As written before config.json held the LocalizationConfig: read_model_dir derives it.
    record = {"config": cfg.to_dict(), "run": {"localization_preset": "official"}, "dataset": "Thumos14reduced",
              "classlist": [f"action_{i:02d}" for i in range(NCLS)], "snippets_per_second": SPS}
    (root / "config.json").write_text(json.dumps(record))
    return str(root)


@pytest.fixture(scope="session")
def restored(model_dir):
    from d2net_tf.model_dir import restore_network

    network, record = restore_network(model_dir)
    return network, list(record.classlist), record.localization, record


@pytest.fixture(scope="session")
def export_dir(model_dir, tmp_path_factory):
    """EXPORT/1 written by the command line."""
    out = tmp_path_factory.mktemp("export") / "d2net"
    p = subprocess.run([sys.executable, "-m", "export.saved_model", "--model_dir", model_dir, "--export_dir", out],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert os.path.isfile(out / "1" / "saved_model.pb")
    return str(out)


def keras_outputs(model, features, lengths):
    mask = tf.sequence_mask(lengths, features.shape[1], tf.float32)
    return {k: v.numpy() for k, v in model(tf.constant(features), snippet_mask=mask, training=False).items()}


def test_restore_network_builds_float32_under_a_mixed_global_policy(model_dir):
    """Export and evaluation read float32 weights into a float32 network, whatever the global policy
    a caller left (and the caller's policy stays)."""
    import keras

    from d2net_tf.model_dir import restore_network

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        network, _ = restore_network(model_dir)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {(w.dtype, layer.compute_dtype) for layer in network._flatten_layers() if layer.weights
            for w in layer.weights} == {("float32", "float32")}


def test_restore_network_in_mixed_bfloat16(model_dir, restored):
    """--precision=mixed_bfloat16 inference: the same float32 weights, bfloat16 compute, float32
    outputs within bfloat16 round-off of the float32 network's."""
    from d2net_tf.model_dir import restore_network

    network, _ = restore_network(model_dir, precision="mixed_bfloat16")
    reference = restored[0]
    assert {layer.compute_dtype for layer in network._flatten_layers() if layer.weights} == {"bfloat16"}
    for a, b in zip(network.get_weights(), reference.get_weights()):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    features = np.random.default_rng(3).normal(size=(2, 30, FEAT)).astype(np.float32)
    fast, exact = keras_outputs(network, features, [30, 21]), keras_outputs(reference, features, [30, 21])
    for name in ("tcam", "attention"):
        assert fast[name].dtype == np.float32
        scale = np.abs(exact[name]).max()
        np.testing.assert_allclose(fast[name], exact[name], atol=2e-2 * scale)
        assert not np.array_equal(fast[name], exact[name])  # bfloat16 did compute


# --------------------------------------------------------------------------- #
# In-graph localization == numpy localization
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_localize_tf_matches_numpy_on_random_tcams(preset):
    cfg = PRESETS[preset]
    fn = tf.function(lambda t, a, s: localize_tf(t, a, s, cfg), autograph=False, input_signature=[
        tf.TensorSpec([None, None]), tf.TensorSpec([None]), tf.TensorSpec([], tf.float64)])
    rng = np.random.default_rng(hash(preset) % 1000)
    cases = [(int(rng.integers(20, 300)), None, SPS) for _ in range(4)]
    cases += [(150, 10, 30.0 / 16.0), (64, 4, 1.0), (1, None, SPS), (2, None, SPS)]
    total = 0
    for s, quantize, sps in cases:
        tcam = smooth_tcam(rng, s, NCLS, quantize)
        att = rng.uniform(0, 1, s).astype(np.float32)
        det = localize_video(tcam, att, sps, cfg)
        out = {k: v.numpy() for k, v in fn(tcam, att, sps).items()}
        assert_same_detections(det, out)
        total += len(det)
    assert total > 50  # the cases are not trivially empty


def test_localize_tf_empty_cases():
    fn = tf.function(lambda t, a: localize_tf(t, a, SPS, PRESETS["official"]), autograph=False)
    for tcam, att in [(np.zeros((30, 5)), np.ones(30)), (np.full((30, 5), 0.9), np.zeros(30)),
                      (np.zeros((0, 5)), np.zeros(0))]:
        out = fn(tf.constant(tcam, tf.float32), tf.constant(att, tf.float32))
        assert len(localize_video(tcam, att, SPS, PRESETS["official"])) == 0
        assert all(v.shape == (0,) for v in out.values())


def test_nms_tf_matches_numpy_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(5):
        s = rng.integers(0, 40, 60).astype(np.float64)
        e = s + rng.integers(1, 15, 60)
        score = np.round(rng.uniform(0, 1, 60), 1)  # many ties: stable order matters
        for tiou in (0.0, 0.3, 0.5):
            np.testing.assert_array_equal(nms_1d_tf(s, e, score, tiou).numpy(), nms_1d(s, e, score, tiou))


@pytest.mark.parametrize("preset", ["paper", "official", "official_anet"])
def test_localize_signature_matches_numpy_on_model(restored, preset):
    model, classlist, _, _ = restored
    module = ServingModule(model, classlist, PRESETS[preset])
    rng = np.random.default_rng(7)
    for s in (9, 120):
        x = rng.normal(size=(s, FEAT)).astype(np.float32)
        out = {k: v.numpy() for k, v in module.localize(tf.constant(x), tf.constant(SPS, tf.float64)).items()}
        ref = keras_outputs(model, x[None], [s])
        det = localize_video(ref["tcam"][0], ref["attention"][0], SPS, PRESETS[preset])
        assert_same_detections(det, out)
        assert [n.decode() for n in out["class_names"]] == [classlist[i] for i in det.class_ids]


# --------------------------------------------------------------------------- #
# SavedModel
# --------------------------------------------------------------------------- #
def test_saved_model_cli_show(export_dir):
    exe = shutil.which("saved_model_cli") or os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    p = subprocess.run([exe, "show", "--all", "--dir", os.path.join(export_dir, "1")],
                       env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    text = p.stdout
    sigs = {}
    for block in text.split("signature_def[")[1:]:
        name = block.split("'")[1]
        sigs[name] = block

    def tensors(block, kind):
        part = block.split(f"contains the following {kind}(s):")[1]
        part = part.split("contains the following output(s):")[0] if kind == "input" else part.split("Method name")[0]
        found = {}
        for chunk in part.split(f"{kind}s['")[1:]:
            name = chunk.split("'")[0]
            dtype = chunk.split("dtype: ")[1].split()[0]
            shape = chunk.split("shape: ")[1].split("\n")[0].strip()
            found[name] = (dtype, shape)
        return found

    assert {"serving_default", "localize"} <= set(sigs)
    assert tensors(sigs["serving_default"], "input") == {
        "features": ("DT_FLOAT", f"(-1, -1, {FEAT})"), "lengths": ("DT_INT32", "(-1)")}
    assert tensors(sigs["serving_default"], "output") == {
        "tcam": ("DT_FLOAT", f"(-1, -1, {NCLS})"), "attention": ("DT_FLOAT", "(-1, -1)"),
        "video_scores": ("DT_FLOAT", f"(-1, {NCLS})"), "embeddings": ("DT_FLOAT", f"(-1, -1, {FEAT // 2})")}
    assert tensors(sigs["localize"], "input") == {
        "features": ("DT_FLOAT", f"(-1, {FEAT})"), "snippets_per_second": ("DT_DOUBLE", "()")}
    assert tensors(sigs["localize"], "output") == {
        "class_ids": ("DT_INT32", "(-1)"), "class_names": ("DT_STRING", "(-1)"), "starts_s": ("DT_DOUBLE", "(-1)"),
        "ends_s": ("DT_DOUBLE", "(-1)"), "scores": ("DT_DOUBLE", "(-1)")}
    assert "tensorflow/serving/predict" in sigs["localize"]


def test_saved_model_in_fresh_process_without_project_code(export_dir, restored, tmp_path):
    """Loads EXPORT/1 where `d2net_tf` is not importable; compares to Keras and numpy (1e-5)."""
    model, classlist, loc, _ = restored
    rng = np.random.default_rng(11)
    lengths = np.array([40, 17, 3], np.int32)
    feats = rng.normal(size=(3, 40, FEAT)).astype(np.float32)
    video = rng.normal(size=(150, FEAT)).astype(np.float32)
    np.savez(tmp_path / "in.npz", features=feats, lengths=lengths, video=video)
    script = textwrap.dedent(f"""
        import os, sys
        # No project code: drop the repo, the cwd and the editable-install hooks from the import system.
        sys.path = [p for p in sys.path if p not in ("", ".") and "__editable__" not in p
                    and os.path.abspath(p) != {ROOT!r}]
        sys.meta_path = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "")]
        sys.path_importer_cache.clear()
        for name in ("d2net_tf", "export", "trainers"):
            try:
                __import__(name)
                raise SystemExit(name + " is importable")
            except ImportError:
                pass
        import numpy as np, tensorflow as tf
        inp = np.load("in.npz")
        m = tf.saved_model.load({os.path.join(export_dir, "1")!r})
        out = m.signatures["serving_default"](features=tf.constant(inp["features"]), lengths=tf.constant(inp["lengths"]))
        loc = m.signatures["localize"](features=tf.constant(inp["video"]),
                                       snippets_per_second=tf.constant({SPS!r}, tf.float64))
        res = {{"s_" + k: v.numpy() for k, v in out.items()}}
        res.update({{"l_" + k: v.numpy() for k, v in loc.items()}})
        res["l_class_names"] = np.array([b.decode() for b in res["l_class_names"]], dtype=str)
        np.savez("out.npz", **res)
    """)
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    ref = keras_outputs(model, feats, lengths)
    for k in SERVING_OUTPUTS:
        np.testing.assert_allclose(got["s_" + k], ref[k], atol=1e-5, rtol=0, err_msg=k)
    ref1 = keras_outputs(model, video[None], [len(video)])
    det = localize_video(ref1["tcam"][0], ref1["attention"][0], SPS, loc)
    assert_same_detections(det, {k: got["l_" + k] for k in LOCALIZE_OUTPUTS})
    assert got["l_class_names"].tolist() == [classlist[i] for i in det.class_ids]
    assert len(det) > 0


def test_saved_model_refuses_existing_version(export_dir, model_dir):
    p = subprocess.run([sys.executable, "-m", "export.saved_model", "--model_dir", model_dir,
                        "--export_dir", export_dir, "--version", "1"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    lines = [l for l in p.stderr.splitlines() if l.strip() and not NOISE.match(l)]
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:") and "already exists" in lines[0], p.stderr
    assert sorted(os.listdir(export_dir)) == ["1"]


def test_saved_model_default_version_and_atomic_failure(restored, tmp_path, monkeypatch):
    from d2net_tf.export import saved_model

    model, classlist, loc, _ = restored
    module = ServingModule(model, classlist, loc)
    out = tmp_path / "exp"
    (out / "3").mkdir(parents=True)
    (out / "not_a_version").mkdir()

    def boom(*args, **kwargs):
        os.makedirs(os.path.join(args[1], "variables"), exist_ok=True)  # half-written, then failure
        with open(os.path.join(args[1], "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(saved_model.tf.saved_model, "save", boom)
    with pytest.raises(OSError, match="injected"):
        saved_model.write_saved_model(module, str(out))
    assert sorted(os.listdir(out)) == ["3", "not_a_version"]  # nothing left behind
    monkeypatch.undo()
    path = saved_model.write_saved_model(module, str(out))
    assert path == str(out / "4") and os.path.isfile(out / "4" / "saved_model.pb")
    loaded = tf.saved_model.load(path)  # the network's variables with x_ref, no optimizer slots
    assert len(loaded.model_variables) == len(model.weights)
    assert any(tuple(v.shape) == (FEAT // 2,) and np.array_equal(v.numpy(), model.x_ref.numpy())
               for v in loaded.model_variables)
    assert sorted(os.listdir(out)) == ["3", "4", "not_a_version"]
    with pytest.raises(FileExistsError):
        saved_model.write_saved_model(module, str(out), version=4)


def test_saved_model_bad_model_dir(tmp_path):
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.export.saved_model import export_saved_model

    with pytest.raises(D2NetInputError, match="not a model directory"):
        export_saved_model(str(tmp_path / "nope"), str(tmp_path / "exp"))
    assert not os.path.exists(tmp_path / "exp" / "1")


# --------------------------------------------------------------------------- #
# TFLite and ONNX
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("quantize,tol", [("none", 1e-4), ("dynamic", 1e-4), ("float16", 2e-3)])
def test_tflite_parity(model_dir, restored, tmp_path, quantize, tol):
    from d2net_tf.export import tflite

    model = restored[0]
    path = str(tmp_path / f"m_{quantize}.tflite")
    size = tflite.export_tflite(model_dir, path, quantize)
    assert size == os.path.getsize(path) > 0
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp")] == []
    interp = tflite.make_interpreter(path)
    assert interp.get_signature_list()["serving_default"]["inputs"] == ["features", "lengths"]
    rng = np.random.default_rng(5)
    for t, length in ((12, 12), (75, 60)):  # dynamic time, padded tail
        x = rng.normal(size=(1, t, FEAT)).astype(np.float32)
        got = tflite.run_tflite(interp, x, [length])
        ref = keras_outputs(model, x, [length])
        for k in SERVING_OUTPUTS:
            np.testing.assert_allclose(got[k], ref[k], atol=tol, rtol=0, err_msg=f"{quantize} {k} T={t}")


def test_onnx_parity(model_dir, restored, tmp_path):
    from d2net_tf.export import onnx as onnx_export

    model = restored[0]
    path = str(tmp_path / "m.onnx")
    assert onnx_export.export_onnx(model_dir, path, opset=17) == os.path.getsize(path)
    sess = onnx_export.make_session(path)
    assert [i.name for i in sess.get_inputs()] == ["features", "lengths"]
    assert sess.get_inputs()[0].shape[:2] == ["batch", "time"]
    names = [o.name for o in sess.get_outputs()]
    assert sorted(names) == sorted(SERVING_OUTPUTS)
    rng = np.random.default_rng(6)
    for b, t in ((1, 9), (3, 64)):
        x = rng.normal(size=(b, t, FEAT)).astype(np.float32)
        lengths = np.array([t] + [max(1, t - 5 * i) for i in range(1, b)], np.int32)
        got = dict(zip(names, sess.run(None, {"features": x, "lengths": lengths})))
        ref = keras_outputs(model, x, lengths)
        for k in SERVING_OUTPUTS:
            np.testing.assert_allclose(got[k], ref[k], atol=1e-4, rtol=0, err_msg=f"{k} B={b} T={t}")


@pytest.mark.slow
def test_trained_model_end_to_end(tmp_path):
    """trainers.fit -> export.saved_model -> localize signature == numpy on the trainer's model."""
    from d2net_tf.export.saved_model import export_saved_model
    from d2net_tf.model_dir import restore_network

    p = subprocess.run([sys.executable, "-m", "trainers.fit", "--synthetic=tiny", f"--data_dir={tmp_path}/data",
                        f"--feature_dim={FEAT}", f"--model_dir={tmp_path}/model", "--num_steps=4", "--eval_every=2",
                        "--checkpoint_every=2", "--batch_size=4", "--progress=0"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    path = export_saved_model(f"{tmp_path}/model", f"{tmp_path}/exp")
    model, record = restore_network(f"{tmp_path}/model")
    loc, sps = record.localization, record.snippets_per_second
    loaded = tf.saved_model.load(path)
    rng = np.random.default_rng(1)
    for s in (50, 300):
        x = rng.normal(size=(s, FEAT)).astype(np.float32)
        out = {k: v.numpy() for k, v in loaded.signatures["localize"](
            features=tf.constant(x), snippets_per_second=tf.constant(sps, tf.float64)).items()}
        ref = keras_outputs(model, x[None], [s])
        det = localize_video(ref["tcam"][0], ref["attention"][0], sps, loc)
        assert_same_detections(det, out)


@pytest.mark.slow
def test_inference_benchmark_smoke():
    from benchmarks.inference import localize_ratio, markdown_table, run

    rows = run(repeats=1, lengths=(16, 40), feature_dim=FEAT, num_classes=NCLS, skip=("tflite_dynamic",),
               log=lambda m: None)
    backends = {r["backend"] for r in rows}
    assert {"keras_eager", "tf_function", "savedmodel_serving_default", "savedmodel_localize",
            "tflite_none", "tflite_float16", "onnxruntime"} == backends
    assert all(r["median_ms"] > 0 and r["flop_floor_fraction"] > 0 for r in rows)
    assert all(r["tcam_max_abs_err"] < 1e-3 for r in rows if r["tcam_max_abs_err"] is not None)
    assert set(localize_ratio(rows)) == {16, 40}
    table = markdown_table(rows)
    assert table.startswith("| backend |") and "localize / serving_default" in table

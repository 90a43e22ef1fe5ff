"""Faults during training: SIGKILL and restart, a crash in the middle of a checkpoint save,
SIGTERM, non-finite losses. Each run is a real `trainers.fit` subprocess on the tiny
synthetic dataset (D=32)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, SUBPROCESS_ENV as ENV
STEPS, EVERY = 60, 5

CRASH_WRAPPER = r"""
import os, sys
import tensorflow as tf
from absl import app
crash_at, mode = int(os.environ["CRASH_AT_STEP"]), os.environ["CRASH_MODE"]
orig = tf.train.Checkpoint._write
def _write(self, prefix, options=None):
    if prefix.endswith(f"ckpt-{crash_at}") and os.sep + "best" + os.sep not in prefix:
        if mode == "before_write":
            os._exit(137)
        # write the files without the manager's bookkeeping callback, then tear the data file
        path = orig(self, prefix, options=tf.train.CheckpointOptions())
        data = path + ".data-00000-of-00001"
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 2)
        os._exit(137)
    return orig(self, prefix, options=options)
tf.train.Checkpoint._write = _write
from d2net_tf.cli import fit
app.run(fit.main, argv=["d2net_tf.cli.fit"] + sys.argv[1:])
"""


def fit_args(data_dir, model_dir, steps=STEPS):
    return [f"--synthetic=tiny", f"--data_dir={data_dir}", "--feature_dim=32", f"--model_dir={model_dir}",
            f"--num_steps={steps}", f"--eval_every={steps}", f"--checkpoint_every={EVERY}", "--select_on=last",
            "--batch_size=4", "--progress=0", "--seed=7", "--deterministic"]


def run_fit(data_dir, model_dir, steps=STEPS):
    p = subprocess.run([sys.executable, "-m", "trainers.fit", *fit_args(data_dir, model_dir, steps)],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def latest_step(model_dir):
    path = tf.train.latest_checkpoint(str(model_dir))
    return None if path is None else int(path.rsplit("-", 1)[1])


def values(model_dir, step=None):
    path = tf.train.latest_checkpoint(str(model_dir)) if step is None else os.path.join(str(model_dir), f"ckpt-{step}")
    reader = tf.train.load_checkpoint(path)
    skip = {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"}
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k not in skip}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)


def wait_for_checkpoint(proc, model_dir, timeout=120):
    t0 = time.time()
    while latest_step(model_dir) is None:
        assert proc.poll() is None, f"training ended before its first checkpoint: {proc.communicate()}"
        assert time.time() - t0 < timeout
        time.sleep(0.02)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from d2net_tf.data.synthetic import generate

    path = tmp_path_factory.mktemp("faults") / "data"
    generate("tiny", str(path), feature_dim=32, seed=0)
    return path


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted run: (data_dir, its final checkpoint values)."""
    ref = tmp_path_factory.mktemp("ref")
    run_fit(data_dir, ref)
    assert latest_step(ref) == STEPS
    return data_dir, values(ref)


def test_sigkill_at_random_moment_then_restart_resumes_exactly(reference, tmp_path):
    data, ref = reference
    model_dir = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "trainers.fit", *fit_args(data, model_dir)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(proc, model_dir)
    time.sleep(random.Random().uniform(0.0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = latest_step(model_dir)
    assert killed_at is not None and killed_at < STEPS, "the kill came after training ended"
    saved = values(model_dir)
    assert int(saved["model/train_steps/.ATTRIBUTES/VARIABLE_VALUE"]) == killed_at
    assert int(saved["optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"]) == killed_at

    p = run_fit(data, model_dir)
    assert f"resumed from {os.path.join(str(model_dir), f'ckpt-{killed_at}')} at step {killed_at}" in p.stdout
    assert_same(values(model_dir), ref)  # weights, Adam moments, x_ref, dropout RNG, step counter


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["torn_data_file", "before_write"])
def test_crash_in_the_middle_of_a_save_restarts_from_the_previous_checkpoint(reference, tmp_path, mode):
    data, ref = reference
    model_dir, crash_at = tmp_path / "m", 3 * EVERY
    env = {**ENV, "CRASH_AT_STEP": str(crash_at), "CRASH_MODE": mode}
    p = subprocess.run([sys.executable, "-c", CRASH_WRAPPER, *fit_args(data, model_dir)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 137, p.stderr[-3000:]
    assert latest_step(model_dir) == crash_at - EVERY  # the half-written one is not referenced
    if mode == "torn_data_file":
        assert os.path.exists(model_dir / f"ckpt-{crash_at}.index")
        with pytest.raises(Exception):  # it really is broken
            values(model_dir, crash_at)
    p = run_fit(data, model_dir)
    assert f"ckpt-{crash_at - EVERY} at step {crash_at - EVERY}" in p.stdout
    assert_same(values(model_dir), ref)


def test_sigterm_stops_cleanly_after_writing_a_checkpoint(data_dir, tmp_path):
    data = data_dir
    model_dir = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "trainers.fit", *fit_args(data, model_dir, steps=100000)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(proc, model_dir)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    line = [l for l in out.splitlines() if l.startswith("stopped by signal at step")]
    assert line, out
    step = int(line[0].split()[5].rstrip(";"))
    assert latest_step(model_dir) == step
    assert int(values(model_dir)["model/train_steps/.ATTRIBUTES/VARIABLE_VALUE"]) == step


def _tiny_with_nan(data_dir):
    from d2net_tf.data.wtalc import load_wtalc_dataset
    from d2net_tf.data.loading import split_train_test

    train, test = split_train_test(load_wtalc_dataset(str(data_dir), "Thumos14reduced", feature_dim=32, warn=lambda m: None))
    # bypass the loader's validation: poison every training video
    train.features = [f.copy() for f in train.features]
    for f in train.features:
        f[len(f) // 2, 0] = np.nan
    return train, test


def test_nonfinite_training_data_stops_with_a_clear_message(data_dir, tmp_path):
    from d2net_tf.config import preset
    from d2net_tf.training import RunConfig, train_and_evaluate

    train, test = _tiny_with_nan(data_dir)
    cfg = preset("official", "thumos14")
    cfg.model.feature_dim, cfg.model.num_classes = 32, train.num_classes
    cfg.train.num_steps, cfg.train.batch_size = 6, 4
    run = RunConfig(model_dir=str(tmp_path / "m"), eval_every=6, checkpoint_every=3, select_on="last",
                    max_nonfinite_steps=0, verbose=0)
    with pytest.raises(FloatingPointError, match=r"1 steps had a non-finite loss.*--max_nonfinite_steps=0.*stopped at step 1"):
        train_and_evaluate(cfg, run, train, test, log=lambda m: None)
    saved = values(tmp_path / "m")
    assert int(saved["model/nonfinite_steps/.ATTRIBUTES/VARIABLE_VALUE"]) == 1
    assert not np.any(saved["model/x_ref/.ATTRIBUTES/VARIABLE_VALUE"])  # x_ref untouched (still zeros)
    for k, v in saved.items():
        assert np.all(np.isfinite(v)), k


def test_resume_from_a_checkpoint_without_dropout_rng_state(data_dir, tmp_path):
    """Checkpoints written before the dropout RNG state was saved still resume (with a warning)."""
    from d2net_tf.config import preset
    from d2net_tf.data.wtalc import load_wtalc_dataset
    from d2net_tf.training import RunConfig, create_model, train_and_evaluate
    from d2net_tf.data.loading import split_train_test

    train, test = split_train_test(load_wtalc_dataset(str(data_dir), "Thumos14reduced", feature_dim=32, warn=lambda m: None))
    cfg = preset("official", "thumos14")
    cfg.model.feature_dim, cfg.model.num_classes = 32, train.num_classes
    cfg.train.num_steps, cfg.train.batch_size = 2, 4
    model_dir = str(tmp_path / "m")
    legacy = create_model(cfg)
    tf.train.Checkpoint(model=legacy.checkpoint_state(), optimizer=legacy.optimizer).save(os.path.join(model_dir, "ckpt"))
    logs = []
    run = RunConfig(model_dir=model_dir, eval_every=2, checkpoint_every=2, select_on="last", verbose=0)
    train_and_evaluate(cfg, run, train, test, log=logs.append)
    assert any("no dropout RNG state" in m for m in logs), logs
    assert latest_step(model_dir) == 2

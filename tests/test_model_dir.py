"""Guarding a model directory: one training job at a time (a lock a killed job does not leave
stuck), a full disk during a checkpoint save as one clear error, and no leftovers of an
interrupted save after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from d2net_tf.errors import ModelDirError
from d2net_tf.model_dir_lock import ModelDirLock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
HOLDER = r"""
import sys, time
from d2net_tf.model_dir_lock import ModelDirLock
with ModelDirLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A process holding tmp_path/m's lock, as a running training job does."""
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(model_dir)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield model_dir, proc
    proc.kill()
    proc.wait()


def test_second_writer_is_refused_until_the_holder_is_killed(holder):
    model_dir, proc = holder
    with pytest.raises(ModelDirError, match=rf"^{model_dir} is being trained by process {proc.pid}$"):
        ModelDirLock(str(model_dir)).acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with ModelDirLock(str(model_dir)) as lock:  # the kernel dropped the killed holder's lock
        assert open(lock.path).read().strip() == str(os.getpid())
    with ModelDirLock(str(model_dir)):  # and a released lock can be taken again
        pass


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from d2net_tf.data.synthetic import generate

    path = tmp_path_factory.mktemp("model_dir") / "data"
    generate("tiny", str(path), feature_dim=32, seed=0)
    return path


def test_fit_on_a_directory_being_trained_exits_2_with_one_line(holder, data_dir):
    model_dir, proc = holder
    p = subprocess.run([sys.executable, "-m", "trainers.fit", "--synthetic=tiny", f"--data_dir={data_dir}",
                        "--feature_dim=32", f"--model_dir={model_dir}", "--num_steps=2", "--progress=0"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert p.stderr.strip().splitlines()[-1] == f"error: {model_dir} is being trained by process {proc.pid}"
    assert sorted(os.listdir(model_dir)) == [".lock"]  # nothing written


def _tiny_job(data_dir, model_dir):
    from d2net_tf.config import preset
    from d2net_tf.data.wtalc import load_wtalc_dataset
    from d2net_tf.training import RunConfig
    from trainers.common import split_train_test

    train, test = split_train_test(load_wtalc_dataset(str(data_dir), "Thumos14reduced", feature_dim=32,
                                                      warn=lambda m: None))
    cfg = preset("official", "thumos14")
    cfg.model.feature_dim, cfg.model.num_classes = 32, train.num_classes
    cfg.train.num_steps, cfg.train.batch_size = 6, 4
    run = RunConfig(model_dir=str(model_dir), eval_every=6, checkpoint_every=2, select_on="last", verbose=0)
    return cfg, run, train, test


def test_full_disk_during_a_save_is_one_line_and_a_restart_cleans_up(data_dir, tmp_path, monkeypatch):
    from d2net_tf.training import train_and_evaluate

    model_dir = tmp_path / "m"
    job = _tiny_job(data_dir, model_dir)
    orig = tf.train.Checkpoint._write

    def full_disk(self, prefix, options=None):
        if prefix.endswith("ckpt-4"):  # as TF's sharded save fails: the temp folder is half written
            os.makedirs(prefix + "_temp")
            open(os.path.join(prefix + "_temp", "part-00000-of-00001.data-00000-of-00001"), "wb").close()
            raise tf.errors.ResourceExhaustedError(None, None, f"{prefix}_temp/part-00000-of-00001.data-00000-of-"
                                                               "00001; No space left on device [Op:SaveV2]")
        return orig(self, prefix, options=options)

    monkeypatch.setattr(tf.train.Checkpoint, "_write", full_disk)
    with pytest.raises(ModelDirError) as e:
        train_and_evaluate(*job, log=lambda m: None)
    last = os.path.join(str(model_dir), "ckpt-2")
    assert str(e.value) == (f"{model_dir}: could not write checkpoint ckpt-4 (No space left on device); the last "
                            f"complete checkpoint there is {last}; free space and run the same command again to resume")
    assert tf.train.latest_checkpoint(str(model_dir)) == last
    assert not os.path.exists(model_dir / "ckpt-4_temp")  # the failed save's space is given back

    monkeypatch.setattr(tf.train.Checkpoint, "_write", orig)
    stale = [model_dir / "ckpt-7_temp", model_dir / "best" / "ckpt-7_temp"]  # e.g. from a killed save
    for folder in stale:
        os.makedirs(folder / "part")
    logs = []
    train_and_evaluate(*job, log=logs.append)
    assert not any(os.path.exists(f) for f in stale)
    assert f"removed {stale[0]} (left by an interrupted checkpoint save)" in logs
    assert f"resumed from {last} at step 2" in logs
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-6")

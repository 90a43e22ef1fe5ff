"""The model directory: one training job at a time (a lock a killed job does not leave
stuck), a full disk during a checkpoint save as one clear error, no leftovers of an
interrupted save after a restart, and one config.json record that every command reads."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from d2net_tf.errors import ModelDirError
from d2net_tf.model_dir import ModelDirLock

from conftest import ROOT, SUBPROCESS_ENV as ENV
HOLDER = r"""
import sys, time
from d2net_tf.model_dir import ModelDirLock
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
    from d2net_tf.data.loading import split_train_test

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


def test_config_json_holds_the_localization_every_command_uses(data_dir, tmp_path, monkeypatch):
    """A non-default topk_divisor (8.5) reaches config.json unchanged (no int()), and evaluation,
    localization and export all localize with the stored LocalizationConfig."""
    import json

    import numpy as np

    from d2net_tf import inference
    from d2net_tf.export import saved_model
    from d2net_tf.localization import LocalizationConfig
    from d2net_tf.model_dir import read_model_dir
    from d2net_tf.training import train_and_evaluate

    model_dir = tmp_path / "m"
    cfg, run, train, test = _tiny_job(data_dir, model_dir)
    cfg.loss.topk_divisor = 8.5
    run.localization_preset = "paper"
    train_and_evaluate(cfg, run, train, test, log=lambda m: None)
    stored = json.loads((model_dir / "config.json").read_text())["localization"]
    expected = LocalizationConfig.from_dict(stored)
    assert stored["topk_divisor"] == 8.5 and expected == LocalizationConfig(topk_divisor=8.5)  # paper preset
    record = read_model_dir(str(model_dir))
    assert record.localization == expected and record.config.loss.topk_divisor == 8.5

    used = []
    real = inference.localize_videos
    monkeypatch.setattr(inference, "localize_videos", lambda videos, sps, loc: used.append(loc) or real(videos, sps, loc))
    inference.evaluate_model_dir(str(model_dir), test)
    np.save(tmp_path / "v.npy", test.features[0])
    inference.localize_files(str(model_dir), str(tmp_path / "v.npy"))
    monkeypatch.setattr(saved_model, "write_saved_model", lambda module, *a: used.append(module.localization))
    saved_model.export_saved_model(str(model_dir), str(tmp_path / "exp"))
    assert used == [expected] * 3
    # An explicit preset still overrides, for this model's dataset and divisor.
    assert record.localization_for("official") == dataclasses.replace(LocalizationConfig.official(), topk_divisor=8.5)


def test_old_model_dir_without_localization_derives_it_from_the_run_preset(tmp_path):
    import json

    from d2net_tf.config import preset
    from d2net_tf.localization import LocalizationConfig
    from d2net_tf.model_dir import read_model_dir

    cfg = preset("official", "activitynet12")
    record = {"config": cfg.to_dict(), "run": {"localization_preset": "paper"}, "dataset": "ActivityNet1.2",
              "classlist": [f"c{i}" for i in range(cfg.model.num_classes)], "snippets_per_second": 1.5625}
    (tmp_path / "config.json").write_text(json.dumps(record))
    got = read_model_dir(str(tmp_path))
    assert got.localization == LocalizationConfig(topk_divisor=4.0)  # the paper preset, the run's divisor
    assert got.localization_preset == "paper" and got.dataset == "ActivityNet1.2" and len(got.classlist) == 100
    record["run"] = {}  # no preset recorded: the training default, official
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert read_model_dir(str(tmp_path)).localization.attention_rescale == 2.0


def test_read_model_dir_errors_name_the_directory(tmp_path):
    import json

    from d2net_tf.errors import D2NetInputError
    from d2net_tf.model_dir import latest_checkpoint, read_model_dir

    with pytest.raises(D2NetInputError, match="not a model directory"):
        read_model_dir(str(tmp_path))
    from d2net_tf.config import preset

    (tmp_path / "config.json").write_text(json.dumps({"config": preset("official").to_dict(),
                                                      "localization": {"nms_iou": 0.5}}))
    with pytest.raises(D2NetInputError, match="localization"):
        read_model_dir(str(tmp_path))
    with pytest.raises(D2NetInputError, match="no checkpoint"):
        latest_checkpoint(str(tmp_path))

"""--seed fixes a run: two CPU runs of N steps give bit-identical checkpoints, with or without
--deterministic (which adds TF op determinism, needed on GPU); another seed gives other weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from conftest import ROOT, SUBPROCESS_ENV as ENV


def fit(data_dir, model_dir, *extra, steps=4):
    cmd = [sys.executable, "-m", "trainers.fit", "--synthetic=tiny", f"--data_dir={data_dir}", "--feature_dim=32",
           f"--model_dir={model_dir}", f"--num_steps={steps}", f"--eval_every={steps}", f"--checkpoint_every={steps}",
           "--batch_size=4", "--progress=0", *extra]
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def checkpoint_values(model_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(model_dir))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def assert_same_checkpoint(a, b):
    """Every tensor of two checkpoints (checkpoint_values) bit-identical."""
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow  # two d2net-fit subprocesses
def test_two_deterministic_runs_are_bit_identical(tmp_path):
    data = tmp_path / "data"
    fit(data, tmp_path / "a", "--seed=3", "--deterministic")
    fit(data, tmp_path / "b", "--seed=3", "--deterministic")
    a, b = checkpoint_values(tmp_path / "a"), checkpoint_values(tmp_path / "b")
    # weights, Adam moments, x_ref, step counter and the dropout RNG state
    assert any(k.startswith("dropout_rng/") for k in a), sorted(a)
    assert int(a["model/train_steps/.ATTRIBUTES/VARIABLE_VALUE"]) == 4
    assert_same_checkpoint(a, b)


@pytest.mark.slow  # three d2net-fit subprocesses
def test_the_seed_alone_fixes_a_cpu_run(tmp_path):
    """Without --deterministic the seed still fixes the initial weights and the dropout RNG
    (d2net_tf.training.seed_initialisation): before, two such runs started from different weights."""
    data = tmp_path / "data"
    fit(data, tmp_path / "a", "--seed=3")
    fit(data, tmp_path / "b", "--seed=3")
    fit(data, tmp_path / "c", "--seed=4")
    a, b, c = (checkpoint_values(tmp_path / x) for x in "abc")
    assert_same_checkpoint(a, b)
    weights = [k for k in a if k.startswith("optimizer/_trainable_variables/") and a[k].ndim == 3]  # conv kernels
    assert weights and all(not np.array_equal(a[k], c[k]) for k in weights), weights


def test_make_deterministic_seeds_weight_init_and_dropout():
    from d2net_tf.config import preset
    from d2net_tf.model_dir import seed_generator_states
    from d2net_tf.training import create_model, make_deterministic

    cfg = preset("official", "thumos14")
    cfg.model.feature_dim, cfg.model.num_classes = 8, 3

    def build(seed):
        make_deterministic(seed)
        m = create_model(cfg)
        return [v.numpy() for v in m.trainable_variables], [s.numpy() for s in seed_generator_states(m)]

    try:
        (w1, s1), (w2, s2), (w3, s3) = build(5), build(5), build(6)
    finally:  # op determinism is process-wide; later tests in this process must not inherit it
        tf_config.disable_op_determinism()
    assert s1, "the model has dropout layers whose RNG state must be checkpointed"
    for x, y in zip(w1 + s1, w2 + s2):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(w1[0], w3[0]) and not np.array_equal(s1[0], s3[0])  # the seed is really used

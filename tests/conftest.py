"""Fixtures and helpers shared by the tests.

Fixtures are found by pytest; the helpers are plain functions, imported as
`from conftest import make_batch, run_module` (pytest puts tests/ on sys.path).
Append a fixture or helper here when a second test file needs it, rather than copying it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Commands run as subprocesses on the CPU, quietly, importing this checkout.
SUBPROCESS_ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
# TF's C++ runtime logs at import (absl C++ format `I0000 00:00:... file.cc:N] ...`, even with
# TF_CPP_MIN_LOG_LEVEL=3 in TF 2.21) before any of our code runs; those lines are not ours.
TF_STARTUP_NOISE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl::InitializeLog)")

TINY_FEATURE_DIM = 32  # the `tiny` synthetic preset's D


# ------------------------------------------------------------------------------ command lines


def run_module(module: str, *args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root; stdout/stderr captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env or SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(p: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed on bad input as every command line must: exit status 2 and ONE line
    `error: ...` on stderr (no traceback), containing each of `fragments`. Returns that line."""
    lines = [l for l in p.stderr.splitlines() if l.strip() and not TF_STARTUP_NOISE.match(l)]
    assert p.returncode == 2, f"exit {p.returncode}\nstdout:{p.stdout[-2000:]}\nstderr:{p.stderr[-3000:]}"
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error"), lines
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------ data


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """The `tiny` synthetic W-TALC dataset (Thumos14reduced, D=32, seed 0), generated once per
    session. Read only: a test that changes files copies the folder first."""
    from d2net_tf.data.synthetic import generate

    path = tmp_path_factory.mktemp("tiny_data") / "data"
    generate("tiny", str(path), feature_dim=TINY_FEATURE_DIM, seed=0)
    return path


# ------------------------------------------------------------------------------ model batches


def make_batch(lengths=(10, 7, 5), t=10, seed=0, garbage=True, feature_dim=8, num_classes=3) -> dict:
    """A padded training batch: features [B, t, feature_dim], mask [B, t], labels [B, C]
    (video i has class i % C) and perm [B] (a fixed derangement). Padded positions hold
    garbage (uniform in [-50, 50]) that must not leak, or zeros with garbage=False."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    mask = np.zeros((b, t), np.float32)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
    feats = rng.normal(size=(b, t, feature_dim)).astype(np.float32)
    if garbage:
        feats = np.where(mask[..., None] > 0, feats, rng.uniform(-50, 50, feats.shape)).astype(np.float32)
    else:
        feats = feats * mask[..., None]
    labels = np.zeros((b, num_classes), np.float32)
    for i in range(b):
        labels[i, i % num_classes] = 1.0
    perm = np.roll(np.arange(b), 1).astype(np.int32)
    return dict(features=feats, mask=mask, labels=labels, perm=perm)


def compile_model(model, lr=1e-3, jit_compile=False, run_eagerly=False):
    """Adam; XLA off by default (tracing + XLA compilation dominates these tiny tests).

    Tests of the step's arithmetic run eagerly (fast); the loss-decrease, non-finite-skip and
    checkpoint tests run the compiled train_step.
    """
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), jit_compile=jit_compile, run_eagerly=run_eagerly)
    return model

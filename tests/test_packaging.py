"""What a non-editable install gets: a wheel with one top-level package (d2net_tf) whose console
scripts all resolve and answer --helpshort outside the checkout. The checkout's thin entry
points (`python -m trainers.fit`, `python -m export.saved_model`) answer it too."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT, SUBPROCESS_ENV, run_module

# What a checkout holds besides the sources (run outputs, data sets, build leftovers): large, never in the wheel.
_GENERATED = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".venv*")


def not_sources(folder, names):
    return set(_GENERATED(folder, names)) | ({"runs", "data"} & set(names) if folder == ROOT else set())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of this working tree, built from a copy (the build writes build/ and
    *.egg-info next to the sources) without build isolation (no download of setuptools)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=not_sources)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    (path,) = (tmp / "dist").glob("d2net_tf-*.whl")
    return path


def entry_points(wheel) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(z.read(name).decode())
    return dict(parser["console_scripts"])


@pytest.mark.slow
def test_wheel_holds_only_the_d2net_tf_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        top = {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}
        assert top == {"d2net_tf"}, top
        names = set(z.namelist())
    assert "d2net_tf/data/annotations/Thumos14reduced-Annotations/classlist.npy" in names  # package data
    assert "d2net_tf/cli/fit.py" in names


@pytest.mark.slow
def test_every_console_script_resolves_outside_the_checkout(wheel, tmp_path):
    scripts = entry_points(wheel)
    assert {"d2net-fit", "d2net-evaluate", "d2net-localize", "d2net-extract-features", "d2net-export-saved-model",
            "d2net-export-tflite", "d2net-export-onnx", "d2net-ground-truth"} <= set(scripts), scripts
    cli = os.path.join(ROOT, "d2net_tf", "cli")
    commands = {f[:-3] for f in os.listdir(cli) if f.endswith(".py") and "\ndef run() -> None:" in open(os.path.join(cli, f)).read()}
    assert sorted(t.split(":")[0].rsplit(".", 1)[1] for t in scripts.values()) == sorted(commands)  # each command once

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(site)}  # the wheel's files, not the checkout
    for script, target in sorted(scripts.items()):
        module, attr = target.split(":")
        assert module.startswith("d2net_tf.cli."), target
        code = (f"import sys, d2net_tf; print('FROM', d2net_tf.__file__); sys.argv = [{script!r}, '--helpshort']; "
                f"from {module} import {attr}; {attr}()")
        p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 1 and "flags:" in p.stdout, f"{script}: exit {p.returncode}\n{p.stderr[-3000:]}"
        assert f"FROM {site / 'd2net_tf' / '__init__.py'}" in p.stdout, (script, p.stdout[:500])
        assert f"{script}:\n  --" in p.stdout, (script, p.stdout[:2000])  # the command's own flags are listed


@pytest.mark.slow
@pytest.mark.parametrize("module,flag", [
    ("trainers.fit", "--model_dir"), ("trainers.evaluate", "--predictions"), ("trainers.localize", "--features"),
    ("trainers.extract_features", "--videos"), ("export.saved_model", "--export_dir"), ("export.tflite", "--quantize"),
    ("export.onnx", "--opset"),
])
def test_checkout_entry_points_answer_helpshort(module, flag):
    p = run_module(module, "--helpshort", timeout=120)
    assert p.returncode == 1 and "flags:" in p.stdout and f"  {flag}" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]

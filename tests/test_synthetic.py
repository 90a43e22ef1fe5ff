"""Tests for d2net_tf.data.synthetic (tiny preset) and d2net_tf.data.convert."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from d2net_tf.data import convert, safe_npy, synthetic
from d2net_tf.data.synthetic import annotations as syn_annotations, features as syn_features
from d2net_tf.data.wtalc import ANNOTATION_FILES, vendored_annotation_dir
from d2net_tf.errors import D2NetInputError

DATASET = "Thumos14reduced"


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _tree_hashes(folder):
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, folder)] = _sha(p)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tiny"))
    summary = synthetic.generate("tiny", out, seed=0)
    return out, summary


def _load(out):
    ann = os.path.join(out, f"{DATASET}-Annotations")
    feats = safe_npy.load_npy(os.path.join(out, f"{DATASET}-I3D-JOINTFeatures.npy"))
    a = {f: safe_npy.load_npy(os.path.join(ann, f + ".npy")) for f in ANNOTATION_FILES}
    return feats, a


def test_layout_and_summary(tiny):
    out, summary = tiny
    assert sorted(os.listdir(out)) == sorted(
        [f"{DATASET}-I3D-JOINTFeatures.npy", f"{DATASET}-Annotations", f"{DATASET}-synthetic.json"])
    ann = os.path.join(out, f"{DATASET}-Annotations")
    assert set(os.listdir(ann)) == {f + ".npy" for f in ANNOTATION_FILES} | {"Ambiguous_test.txt"}
    assert summary["num_videos"] == 12
    assert summary["videos_per_subset"] == {"validation": 8, "test": 4}
    assert summary["feature_dim"] == 32
    meta = json.load(open(os.path.join(out, f"{DATASET}-synthetic.json")))
    assert meta["seed"] == 0 and meta["config"]["bias"] == synthetic.SyntheticConfig().bias


def test_features_match_annotations(tiny):
    out, summary = tiny
    feats, a = _load(out)
    assert feats.dtype == object and feats.shape == (12,)
    durations = a["duration"].reshape(-1)
    assert a["duration"].shape == (12, 1)  # THUMOS layout
    assert summary["total_snippets"] == sum(f.shape[0] for f in feats)
    for f, d, segs in zip(feats, durations, a["segments"]):
        assert f.dtype == np.float32 and f.ndim == 2 and f.shape[1] == 32
        assert f.shape[0] == max(1, round(d * 25 / 16)) <= synthetic.TINY_MAX_SNIPPETS
        assert np.isfinite(f).all() and (f >= 0).all()
        for s, e in segs:
            assert 0 <= s < e <= d + 1e-6
    # Real videos from the vendored annotations.
    full = safe_npy.load_npy(os.path.join(vendored_annotation_dir(DATASET), "videoname.npy"))
    assert set(a["videoname"].tolist()) <= set(full.tolist())
    assert [s.decode() for s in a["subset"]] == ["validation"] * 8 + ["test"] * 4


def test_wtalc_loader_reads_it(tiny):
    wtalc = pytest.importorskip("d2net_tf.data.wtalc")
    out, _ = tiny
    ds = wtalc.load_wtalc_dataset(out, DATASET, warn=lambda m: None)
    assert len(ds) == 12 and ds.num_classes == 20 and ds.feature_dim == 32


def test_plausible_statistics(tiny):
    feats, _ = _load(tiny[0])
    x = np.concatenate(feats)
    assert 0.1 < x.mean() < 1.0
    assert 0.2 < (x == 0).mean() < 0.8  # sparse-ish
    rgb, flow = x[:, :16], x[:, 16:]
    assert rgb.std() > 0 and flow.std() > 0 and not np.allclose(rgb.mean(0), flow.mean(0))
    # temporally correlated
    lag1 = np.mean([np.corrcoef(f[:-1].ravel(), f[1:].ravel())[0, 1] for f in feats])
    assert lag1 > 0.3


def _auc(pos, neg):
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1.0
    return (ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def _class_direction_aucs(out):
    """AUCs, in test videos, of class-c fg vs bg along the fg-minus-bg direction of validation videos."""
    feats, a = _load(out)
    masks = {}
    for i, (f, segs, labs) in enumerate(zip(feats, a["segments"], a["labels"])):
        for (s, e), c in zip(segs, labs):
            lo, hi = synthetic.segment_snippets(s, e, f.shape[0])
            masks.setdefault((i, c), np.zeros(f.shape[0], bool))[lo:hi] = True
    subsets = [s.decode() for s in a["subset"]]
    aucs = []
    for c in synthetic.TINY_TEST_CLASSES:
        train = [i for (i, cc) in masks if cc == c and subsets[i] == "validation"]
        test = [i for (i, cc) in masks if cc == c and subsets[i] == "test"]
        assert train and test
        fg = np.concatenate([feats[i][masks[i, c]] for i in train])
        bg = np.concatenate([feats[i][~masks[i, c]] for i in train])
        direction = fg.mean(0) - bg.mean(0)
        for i in test:
            score = feats[i] @ direction
            aucs.append(_auc(score[masks[i, c]], score[~masks[i, c]]))
    return aucs


def test_foreground_differs_from_background(tmp_path):
    """Loose check that foreground is distinguishable from background, learned from one video per class."""
    aucs = []
    for seed in range(3):
        out = str(tmp_path / str(seed))
        synthetic.generate("tiny", out, feature_dim=256, seed=seed)
        aucs += _class_direction_aucs(out)
    # Informative (above chance) but not trivial; a loose check, not a benchmark.
    assert np.mean(aucs) > 0.6 and np.mean(np.asarray(aucs) > 0.5) >= 0.75, aucs


def test_same_seed_same_bytes_different_seed_different(tmp_path, tiny):
    out, _ = tiny
    again = str(tmp_path / "again")
    synthetic.generate("tiny", again, seed=0)
    assert _tree_hashes(out) == _tree_hashes(again)
    other = str(tmp_path / "other")
    synthetic.generate("tiny", other, seed=1)
    name = f"{DATASET}-I3D-JOINTFeatures.npy"
    assert _sha(os.path.join(out, name)) != _sha(os.path.join(other, name))
    # Annotations do not depend on the seed.
    ann = f"{DATASET}-Annotations"
    assert _tree_hashes(os.path.join(out, ann)) == _tree_hashes(os.path.join(other, ann))


def test_video_features_independent_of_order(tiny):
    """Each video has its own RNG stream: regenerating one video alone gives the same array."""
    out, _ = tiny
    feats, _ = _load(out)
    ann = syn_annotations.tiny_annotations(syn_annotations.read_annotations(DATASET))
    model = syn_features.build_model(synthetic.SyntheticConfig(), ann.classlist, 32, 0)
    idx = {c: j for j, c in enumerate(ann.classlist)}
    for i in (11, 3):
        np.testing.assert_array_equal(syn_features.video_features(model, ann, i, idx, 0), feats[i])


def test_refuses_to_overwrite(tiny, tmp_path):
    out, _ = tiny
    with pytest.raises(D2NetInputError, match="--overwrite"):
        synthetic.generate("tiny", out)
    copy = str(tmp_path / "c")
    synthetic.generate("tiny", copy, seed=3)
    synthetic.generate("tiny", copy, seed=0, overwrite=True)
    assert _tree_hashes(copy) == _tree_hashes(out)
    assert not [n for n in os.listdir(copy) if n.startswith(".tmp")]


@pytest.mark.parametrize("other_seed", [0, 3])
def test_a_dataset_published_meanwhile_is_never_replaced(tiny, tmp_path, monkeypatch, other_seed):
    """Two jobs generating into one empty folder: the second to finish keeps the first's files (same
    dataset) or stops with an error (another one), and never deletes what the first published."""
    import shutil

    from d2net_tf.data.synthetic import generator

    other = tmp_path / "other"
    synthetic.generate("tiny", str(other), seed=other_seed)
    out = tmp_path / "out"
    write = generator.write_object_npy

    published = {}

    def write_then_the_other_job_publishes(*args, **kwargs):
        write(*args, **kwargs)
        for name in os.listdir(other):
            (shutil.copytree if (other / name).is_dir() else shutil.copy)(other / name, out / name)
            published[name] = os.stat(out / name).st_ino

    monkeypatch.setattr(generator, "write_object_npy", write_then_the_other_job_publishes)
    if other_seed == 0:
        synthetic.generate("tiny", str(out), seed=0)
    else:
        with pytest.raises(D2NetInputError, match="appeared while this one was generated"):
            synthetic.generate("tiny", str(out), seed=0)
    assert _tree_hashes(out) == _tree_hashes(other)  # the first publisher's files, untouched, nothing else
    assert {name: os.stat(out / name).st_ino for name in published} == published  # not even replaced by equal ones
    assert not [n for n in os.listdir(out) if n.startswith(".tmp")]


def test_bad_arguments(tmp_path):
    with pytest.raises(D2NetInputError, match="unknown preset"):
        synthetic.generate("kinetics", str(tmp_path))
    with pytest.raises(D2NetInputError, match="even"):
        synthetic.generate("tiny", str(tmp_path / "a"), feature_dim=7)
    with pytest.raises(D2NetInputError, match="unknown SyntheticConfig"):
        synthetic.generate("tiny", str(tmp_path / "b"), not_a_knob=1)


def test_knobs_change_output(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    synthetic.generate("tiny", a)
    synthetic.generate("tiny", b, flow_noise_std=0.0, rgb_noise_std=0.0)
    fa, _ = _load(a)
    fb, _ = _load(b)
    assert not np.array_equal(fa[0], fb[0])


def test_streaming_writer_matches_np_load(tmp_path):
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 1001):
        items = [rng.random((i % 5 + 1, 3), dtype=np.float32) for i in range(n)]
        path = str(tmp_path / f"{n}.npy")
        synthetic.write_object_npy(path, n, iter(items))
        for loaded in (np.load(path, allow_pickle=True), safe_npy.load_npy(path)):
            assert loaded.shape == (n,) and loaded.dtype == object
            for x, y in zip(loaded, items):
                np.testing.assert_array_equal(x, y)


def test_command_line(tmp_path):
    out = str(tmp_path / "cli")
    run = lambda *args: subprocess.run([sys.executable, "-m", "d2net_tf.cli.synthetic", *args],
                                       capture_output=True, text=True, timeout=120)
    r = run("--preset", "tiny", "--out", out, "--feature_dim", "8", "--seed", "2")
    assert r.returncode == 0, r.stderr
    assert "validation: 8, test: 4" in r.stdout and "size on disk" in r.stdout
    r = run("--preset", "tiny", "--out", out)
    assert r.returncode == 2 and "--overwrite" in r.stderr


def test_convert_round_trip(tiny, tmp_path):
    out, _ = tiny
    feats, a = _load(out)
    dst = str(tmp_path / "per_video")
    summary = convert.convert(os.path.join(out, f"{DATASET}-I3D-JOINTFeatures.npy"),
                              os.path.join(out, f"{DATASET}-Annotations"), dst)
    assert summary["num_videos"] == 12
    gt = json.load(open(os.path.join(dst, "ground_truth.json")))
    assert gt["snippets_per_second"] == 1.5625
    assert gt["classlist"] == [c.decode() for c in a["classlist"]]
    assert list(gt["database"]) == [v.decode() for v in a["videoname"]]
    for i, v in enumerate(a["videoname"]):
        v = v.decode()
        path = os.path.join(dst, "features", f"{v}.npy")
        with open(path, "rb") as f:  # plain array: no pickle
            np.lib.format.read_magic(f)
            assert not np.lib.format.read_array_header_1_0(f)[2].hasobject
        np.testing.assert_array_equal(np.load(path, allow_pickle=False), feats[i])
        entry = gt["database"][v]
        assert entry["subset"] == a["subset"][i].decode()
        assert entry["duration"] == float(a["duration"].reshape(-1)[i])
        assert [x["segment"] for x in entry["annotations"]] == [list(map(float, s)) for s in a["segments"][i]]
        assert [x["label"] for x in entry["annotations"]] == list(a["labels"][i])
    with pytest.raises(D2NetInputError, match="not empty"):
        convert.convert(os.path.join(out, f"{DATASET}-I3D-JOINTFeatures.npy"),
                        os.path.join(out, f"{DATASET}-Annotations"), dst)
    per_video = pytest.importorskip("d2net_tf.data.per_video")
    ds = per_video.load_per_video_dataset(os.path.join(dst, "features"), os.path.join(dst, "ground_truth.json"))
    assert len(ds) == 12


@pytest.mark.slow
def test_thumos14_full_preset(tmp_path):
    summary = synthetic.generate("thumos14", str(tmp_path), feature_dim=64)
    assert summary["num_videos"] == 412 and summary["videos_per_subset"] == {"validation": 200, "test": 212}
    feats = safe_npy.load_npy(summary["features"])
    assert sum(f.shape[0] for f in feats) == summary["total_snippets"]

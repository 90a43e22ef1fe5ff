"""Training sources larger than memory (d2net_tf.data.sources): per-video memory-mapped .npy files
and indexed TFRecord shards give exactly the in-memory batches for every (seed, step)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json

import numpy as np
import pytest

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.data.per_video import load_per_video_dataset
from d2net_tf.data.pipeline import sample_training_batch
from d2net_tf.data.sources import (
    INDEX_NAME,
    LazyVideo,
    load_tfrecord_dataset,
    materialize,
    write_indexed_tfrecords,
    write_per_video,
)
from d2net_tf.errors import D2NetInputError, DataFormatError

D, C, N = 16, 5, 12


def toy_dataset(n=N, seed=3) -> VideoDataset:
    rng = np.random.default_rng(seed)
    classlist = [f"c{i}" for i in range(C)]
    labels = np.zeros((n, C), np.float32)
    segments, seg_labels, feats = [], [], []
    for i in range(n):
        t = int(rng.integers(6, 40))
        cls = rng.choice(C, size=int(rng.integers(1, 3)), replace=False)
        labels[i, cls] = 1.0
        segments.append(np.array([[0.5 * k, 0.5 * k + 1.0] for k in range(len(cls))]))
        seg_labels.append(cls.astype(np.int32))
        feats.append(rng.normal(size=(t, D)).astype(np.float32))
    subsets = np.array(["validation"] * (n - 3) + ["test"] * 3)
    return VideoDataset("Thumos14reduced", classlist, np.array([f"video_{i:03d}" for i in range(n)]), subsets, labels,
                        segments, seg_labels, np.full(n, 30.0), feats, snippets_per_second=25 / 16)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    ds = toy_dataset()
    root = tmp_path_factory.mktemp("layouts")
    write_per_video(ds, str(root / "pv"))
    write_indexed_tfrecords(ds, str(root / "tfr"), num_shards=3)
    mm = load_per_video_dataset(str(root / "pv" / "features"), str(root / "pv" / "ground_truth.json"),
                                name=ds.name, mmap=True, warn=lambda m: None)
    tf_ds = load_tfrecord_dataset(str(root / "tfr"), warn=lambda m: None)
    return {"memory": ds, "per_video_mmap": mm, "tfrecord": tf_ds, "root": root}


def test_lazy_datasets_hold_handles_not_arrays(layouts):
    for name in ("per_video_mmap", "tfrecord"):
        lazy = layouts[name]
        assert all(isinstance(f, LazyVideo) for f in lazy.features), name
        sub = lazy.subset("validation")
        assert all(isinstance(f, LazyVideo) for f in sub.features) and len(sub) == N - 3
        assert lazy.feature_dim == D
        for a, b in zip(layouts["memory"].features, lazy.features):
            assert b.shape == a.shape
            np.testing.assert_array_equal(np.asarray(b), a)
            np.testing.assert_array_equal(b[3:9], a[3:9])


def test_metadata_round_trips(layouts):
    ref = layouts["memory"]
    for name in ("per_video_mmap", "tfrecord"):
        got = layouts[name]
        np.testing.assert_array_equal(got.video_ids, ref.video_ids)
        np.testing.assert_array_equal(got.subsets, ref.subsets)
        np.testing.assert_array_equal(got.labels, ref.labels)
        assert list(got.classlist) == list(ref.classlist) and got.snippets_per_second == pytest.approx(1.5625)
    tf_ds = layouts["tfrecord"]
    for a, b, la, lb in zip(ref.segments, tf_ds.segments, ref.segment_labels, tf_ds.segment_labels):
        np.testing.assert_allclose(a, b)
        np.testing.assert_array_equal(la, lb)


@pytest.mark.parametrize("gap", [None, 1])
@pytest.mark.parametrize("sampling", ["without_replacement", "with_replacement"])
def test_batch_i_is_the_same_pure_function_of_seed_and_step(layouts, gap, sampling):
    ref = layouts["memory"].subset("validation")
    for name in ("per_video_mmap", "tfrecord"):
        lazy = layouts[name].subset("validation")
        for step in (0, 1, 7, 1000):  # any step, in any order (resume)
            want = sample_training_batch(ref, 4, 16, 5, step, gap, sampling)
            got = sample_training_batch(lazy, 4, 16, 5, step, gap, sampling)
            assert sorted(want) == sorted(got)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k], err_msg=f"{name} step {step} {k}")


def test_materialize_and_shards_are_plain_tfrecords(layouts):
    import tensorflow as tf

    back = materialize(layouts["tfrecord"])
    assert all(isinstance(f, np.ndarray) for f in back.features)
    shards = sorted((layouts["root"] / "tfr").glob("*.tfrecord"))
    assert len(shards) == 3
    assert sum(1 for p in shards for _ in tf.data.TFRecordDataset(str(p))) == N


def test_bad_inputs_name_the_file(layouts, tmp_path):
    with pytest.raises(DataFormatError, match=INDEX_NAME):
        load_tfrecord_dataset(str(tmp_path))
    # An index whose offsets do not match the shard: the read names the shard.
    src = layouts["root"] / "tfr"
    bad = tmp_path / "bad"
    bad.mkdir()
    index = json.loads((src / INDEX_NAME).read_text())
    for name in index["shards"]:
        (bad / name).write_bytes((src / name).read_bytes())
    index["videos"][1]["offset"] += 8
    (bad / INDEX_NAME).write_text(json.dumps(index))
    ds = load_tfrecord_dataset(str(bad), warn=lambda m: None)
    with pytest.raises(DataFormatError, match=index["shards"][1 % 3]):
        np.asarray(ds.features[1])
    with pytest.raises(DataFormatError, match="feature_dim"):
        load_tfrecord_dataset(str(src), feature_dim=D + 1)
    assert issubclass(DataFormatError, D2NetInputError)
    # A NaN in a memory-mapped file is reported when a batch reads it, naming the file.
    pv = tmp_path / "pv"
    write_per_video(toy_dataset(4), str(pv))
    path = pv / "features" / "video_002.npy"
    x = np.load(path)
    x[1, 2] = np.nan
    np.save(path, x)
    mm = load_per_video_dataset(str(pv / "features"), str(pv / "ground_truth.json"), mmap=True, warn=lambda m: None)
    with pytest.raises(DataFormatError, match="video_002.npy"):
        np.asarray(mm.features[2])


def test_fit_from_tfrecord_equals_in_memory(layouts):
    """A few model.fit steps on the lazy TFRecord source end with the in-memory run's weights."""
    import keras

    from d2net_tf.config import preset
    from d2net_tf.data.pipeline import training_dataset
    from d2net_tf.training import RunConfig, create_model

    weights = {}
    for name in ("memory", "tfrecord"):
        keras.utils.set_random_seed(0)
        cfg = preset("official_fixed")
        cfg.model.feature_dim, cfg.model.num_classes, cfg.model.dropout = D, C, 0.0
        cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
        model = create_model(cfg, RunConfig(model_dir="", packed=True))
        data = training_dataset(layouts[name].subset("validation"), 4, 16, 0, 0, getattr(model, "network", model).packing_gap())
        model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
        weights[name] = [w.copy() for w in model.get_weights()]
    for a, b in zip(weights["memory"], weights["tfrecord"]):
        np.testing.assert_array_equal(a, b)

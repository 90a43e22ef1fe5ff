"""TFRecord writer/reader: the round trip equals the numpy (W-TALC) loader's output."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from d2net_tf.data.synthetic import generate
from d2net_tf.data.tfrecord import read_tfrecords, tfrecord_training_dataset, write_tfrecords
from d2net_tf.data.wtalc import load_wtalc_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("tiny"))
    generate("tiny", out)
    return load_wtalc_dataset(out, "Thumos14reduced", warn=lambda m: None)


def _assert_same(a, b):
    assert a.name == b.name and list(a.classlist) == list(b.classlist)
    np.testing.assert_array_equal(a.video_ids, b.video_ids)
    np.testing.assert_array_equal(a.subsets, b.subsets)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.durations, b.durations, rtol=1e-6)  # stored as float32
    assert a.snippets_per_second == pytest.approx(b.snippets_per_second, rel=1e-6)
    assert len(a.features) == len(b.features)
    for i in range(len(a)):
        np.testing.assert_array_equal(a.features[i], b.features[i])
        np.testing.assert_allclose(np.reshape(a.segments[i], (-1, 2)), b.segments[i], rtol=1e-6, atol=1e-5)
        np.testing.assert_array_equal(a.segment_labels[i], b.segment_labels[i])
    assert sorted(a.ambiguous) == sorted(b.ambiguous)
    for k in a.ambiguous:
        np.testing.assert_allclose(a.ambiguous[k], b.ambiguous[k], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("shards", [1, 3])
def test_round_trip_equals_numpy_loader(tiny, tmp_path, shards):
    paths = write_tfrecords(tiny, str(tmp_path / "tiny"), shards)
    assert len(paths) == shards and all(os.path.exists(p) for p in paths)
    back = read_tfrecords(str(tmp_path / "tiny-*.tfrecord"))
    _assert_same(tiny, back)
    # Ground-truth table (what evaluation consumes) is the same too.
    ga, gb = tiny.ground_truth_table(), back.ground_truth_table()
    np.testing.assert_array_equal(ga["video_ids"], gb["video_ids"])
    np.testing.assert_array_equal(ga["labels"], gb["labels"])
    np.testing.assert_allclose(ga["starts"], gb["starts"], rtol=1e-6, atol=1e-5)


def test_training_batches_are_crops_of_the_videos(tiny, tmp_path):
    paths = write_tfrecords(tiny, str(tmp_path / "tr"), 2)
    ds = tfrecord_training_dataset(paths, batch_size=4, max_seqlen=16, seed=0, shuffle_buffer=8)
    d = tiny.feature_dim
    for batch in ds.take(3).as_numpy_iterator():
        assert batch["features"].shape[0] == 4 and batch["features"].shape[2] == d
        assert batch["features"].shape[1] <= 16
        for b in range(4):
            i = int(batch["video_index"][b])
            t = int(batch["mask"][b].sum())
            assert batch["mask"][b, :t].all() and not batch["mask"][b, t:].any()
            np.testing.assert_array_equal(batch["labels"][b], tiny.labels[i])
            src = tiny.features[i]
            crop = batch["features"][b, :t]
            starts = [s for s in range(src.shape[0] - t + 1) if np.array_equal(src[s:s + t], crop)]
            assert starts and t == min(16, src.shape[0])
            assert not batch["features"][b, t:].any()

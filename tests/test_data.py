"""Data loaders (W-TALC, per-video), their bad-input errors, and the tf.data pipeline."""

import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

from d2net_tf.data import synthetic
from d2net_tf.data.benchmarks import ACTIVITYNET12
from d2net_tf.data.per_video import load_per_video_dataset
from d2net_tf.data.pipeline import pack_videos, sample_training_batch, training_dataset
from d2net_tf.data.wtalc import load_wtalc_annotations, load_wtalc_dataset, vendored_annotation_dir
from d2net_tf.errors import DataFormatError

NAME = "Thumos14reduced"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    synthetic.generate("tiny", str(out), seed=0)
    return str(out)


def _copy(tiny_dir, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tiny_dir, dst)
    return str(dst)


def _save_obj(path, items):
    arr = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        arr[i] = x
    np.save(path, arr, allow_pickle=True)


def test_vendored_annotations_are_the_real_ones():
    thumos = load_wtalc_annotations(vendored_annotation_dir(NAME))
    assert len(thumos) == 412 and thumos.num_classes == 20
    assert (thumos.subsets == "validation").sum() == 200 and (thumos.subsets == "test").sum() == 212
    assert sum(len(s) for s in thumos.segments) > 3000
    assert len(thumos.ambiguous) > 0
    anet = load_wtalc_annotations(vendored_annotation_dir("ActivityNet1.2"))
    assert len(anet) == 7202 and anet.num_classes == 100
    train, test = ACTIVITYNET12.splits
    assert (anet.subsets == train).sum() == 4819 and (anet.subsets == test).sum() == 2383


def test_wtalc_loader_reads_synthetic_files(tiny_dir):
    ds = load_wtalc_dataset(tiny_dir, NAME, feature_dim=32)
    assert len(ds) == 12 and ds.feature_dim == 32
    assert all(f.dtype == np.float32 and f.shape[1] == 32 for f in ds.features)
    # Every video has at least one label, and segment labels are among the video labels.
    for y, labs in zip(ds.labels, ds.segment_labels):
        assert y.sum() >= 1 and set(labs.tolist()) <= set(np.flatnonzero(y).tolist())
    gt = ds.subset("test").ground_truth_table()
    assert (gt["ends"] > gt["starts"]).all()


def test_missing_feature_file(tmp_path):
    with pytest.raises(DataFormatError, match="Thumos14reduced-I3D-JOINTFeatures.npy: feature file not found"):
        load_wtalc_dataset(str(tmp_path), NAME)


def test_missing_annotation_file(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    os.remove(os.path.join(d, f"{NAME}-Annotations", "labels.npy"))
    with pytest.raises(DataFormatError, match=r"labels.npy: missing annotation file"):
        load_wtalc_dataset(d, NAME)


def test_wrong_feature_dimension(tiny_dir):
    with pytest.raises(DataFormatError, match=r"feature dimension 32, expected 2048"):
        load_wtalc_dataset(tiny_dir, NAME, feature_dim=2048)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_features(tiny_dir, tmp_path, bad):
    d = _copy(tiny_dir, tmp_path)
    path = os.path.join(d, f"{NAME}-I3D-JOINTFeatures.npy")
    feats = list(np.load(path, allow_pickle=True))
    feats[3] = feats[3].copy()
    feats[3][1, 2] = bad
    _save_obj(path, feats)
    names = np.load(os.path.join(d, f"{NAME}-Annotations", "videoname.npy"))
    vid = names[3].decode()
    with pytest.raises(DataFormatError, match=rf"video '{vid}': 1 NaN/inf feature values"):
        load_wtalc_dataset(d, NAME)


def test_short_and_empty_videos_are_skipped_with_one_warning(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    path = os.path.join(d, f"{NAME}-I3D-JOINTFeatures.npy")
    feats = list(np.load(path, allow_pickle=True))
    feats[0] = np.zeros((0, 32), np.float32)
    feats[1] = feats[1][:1]
    _save_obj(path, feats)
    warnings = []
    ds = load_wtalc_dataset(d, NAME, min_snippets=2, warn=warnings.append)
    assert len(ds) == 10
    assert len(warnings) == 1
    assert "skipped 2 of 12 videos (1 without features, 1 shorter than 2 snippets)" in warnings[0]


def test_label_not_in_classlist(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    path = os.path.join(d, f"{NAME}-Annotations", "labels_all.npy")
    labels = list(np.load(path, allow_pickle=True))
    labels[2] = ["Juggling"]
    _save_obj(path, labels)
    with pytest.raises(DataFormatError, match=r"labels_all.npy: video '.*' has label 'Juggling', which is not in classlist"):
        load_wtalc_dataset(d, NAME)


def test_annotation_arrays_of_different_lengths(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    path = os.path.join(d, f"{NAME}-Annotations", "duration.npy")
    np.save(path, np.load(path)[:-1])
    with pytest.raises(DataFormatError, match=r"duration.npy: 11 entries, expected 12"):
        load_wtalc_dataset(d, NAME)


def test_feature_file_with_wrong_video_count(tiny_dir, tmp_path):
    d = _copy(tiny_dir, tmp_path)
    path = os.path.join(d, f"{NAME}-I3D-JOINTFeatures.npy")
    _save_obj(path, list(np.load(path, allow_pickle=True))[:5])
    with pytest.raises(DataFormatError, match=r"5 videos, expected 12"):
        load_wtalc_dataset(d, NAME)


def _per_video(tmp_path, database, features, sps=1.5625):
    fdir = tmp_path / "features"
    fdir.mkdir()
    for vid, f in features.items():
        np.save(fdir / f"{vid}.npy", f)
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"database": database, "snippets_per_second": sps}))
    return str(fdir), str(gt)


def test_per_video_loader_hand_made(tmp_path):
    rng = np.random.default_rng(0)
    db = {
        "a": {"subset": "train", "duration": 10.0, "annotations": [{"label": "jump", "segment": [1.0, 3.0]}]},
        "b": {"subset": "test", "duration": 6.4, "annotations": [{"label": "run", "segment": [0.5, 2.0]},
                                                                  {"label": "jump", "segment": [3.0, 4.0]}]},
        "c": {"subset": "test", "duration": 5.0, "annotations": []},  # no feature file: skipped
    }
    fdir, gt = _per_video(tmp_path, db, {"a": rng.random((16, 8)), "b": rng.random((10, 8))})
    warnings = []
    ds = load_per_video_dataset(fdir, gt, warn=warnings.append)
    assert ds.classlist == ["jump", "run"] and ds.snippets_per_second == 1.5625
    assert list(ds.video_ids) == ["a", "b"] and len(warnings) == 1
    np.testing.assert_array_equal(ds.labels, [[1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.segment_labels[1], [1, 0])
    np.testing.assert_allclose(ds.segments[1], [[0.5, 2.0], [3.0, 4.0]])
    assert ds.features[0].dtype == np.float32 and ds.features[0].shape == (16, 8)


@pytest.mark.parametrize("database,match", [
    ({"a": {"subset": "t", "duration": 1.0, "annotations": [{"label": "x", "segment": [2.0, 1.0]}]}},
     r"database\['a'\]\.annotations\[0\]\.segment: end must be > start"),
    ({"a": {"duration": 1.0}}, r"database\['a'\]: missing field 'subset'"),
])
def test_per_video_bad_ground_truth(tmp_path, database, match):
    fdir, gt = _per_video(tmp_path, database, {"a": np.ones((4, 2))})
    with pytest.raises(DataFormatError, match=match):
        load_per_video_dataset(fdir, gt)


def test_per_video_malformed_json(tmp_path):
    (tmp_path / "features").mkdir()
    gt = tmp_path / "gt.json"
    gt.write_text('{"database": {')
    with pytest.raises(DataFormatError, match=r"gt.json: malformed JSON"):
        load_per_video_dataset(str(tmp_path / "features"), str(gt))


def test_per_video_zero_length_file_fails(tmp_path):
    db = {"a": {"subset": "t", "duration": 1.0, "annotations": []}}
    fdir, gt = _per_video(tmp_path, db, {"a": np.zeros((0, 4), np.float32)})
    with pytest.raises(DataFormatError, match=r"zero-length video"):
        load_per_video_dataset(fdir, gt)


def test_training_batches_crop_pad_and_are_reproducible(tiny_dir):
    ds = load_wtalc_dataset(tiny_dir, NAME)
    b1 = sample_training_batch(ds, 4, max_seqlen=20, seed=3, step=7)
    b2 = sample_training_batch(ds, 4, max_seqlen=20, seed=3, step=7)
    for k in b1:
        np.testing.assert_array_equal(b1[k], b2[k])
    assert b1["features"].shape[1] <= 20 and b1["features"].shape[0] == 4
    lengths = b1["mask"].sum(1).astype(int)
    for b, i in enumerate(b1["video_index"]):
        t = ds.features[i].shape[0]
        assert lengths[b] == min(t, 20)
        assert not b1["features"][b, lengths[b]:].any()  # zero padding beyond the valid length
        # The crop is a contiguous window of the video.
        full = ds.features[i]
        starts = [s for s in range(t - lengths[b] + 1) if np.array_equal(full[s:s + lengths[b]], b1["features"][b, :lengths[b]])]
        assert starts
    np.testing.assert_array_equal(b1["labels"], ds.labels[b1["video_index"]])
    other = sample_training_batch(ds, 4, max_seqlen=20, seed=3, step=8)
    assert not np.array_equal(other["video_index"], b1["video_index"]) or not np.array_equal(
        other["features"], b1["features"])


def test_tf_data_pipeline_matches_sampler_and_resumes(tiny_dir):
    ds = load_wtalc_dataset(tiny_dir, NAME)
    it = iter(training_dataset(ds, 4, 20, seed=1, start_step=5))
    first = next(it)
    expected = sample_training_batch(ds, 4, 20, seed=1, step=5)
    np.testing.assert_array_equal(first["features"].numpy(), expected["features"])
    packed = next(iter(training_dataset(ds, 4, 20, seed=1, start_step=6, pack_gap=1)))
    ref = sample_training_batch(ds, 4, 20, seed=1, step=6, pack_gap=1)
    for k in ("features", "mask", "unpack_index", "video_mask"):
        np.testing.assert_array_equal(packed[k].numpy(), ref[k])


def test_pack_videos_layout():
    vids = [np.full((3, 2), 1.0), np.full((2, 2), 2.0)]
    b = pack_videos(vids, gap=2)
    np.testing.assert_array_equal(b["mask"][0], [1, 1, 1, 0, 0, 1, 1])
    np.testing.assert_array_equal(b["features"][0, :, 0], [1, 1, 1, 0, 0, 2, 2])
    np.testing.assert_array_equal(b["unpack_index"], [[0, 1, 2], [5, 6, 0]])
    np.testing.assert_array_equal(b["video_mask"], [[1, 1, 1], [1, 1, 0]])
    gathered = tf.gather(tf.constant(b["features"][0]), b["unpack_index"]).numpy()[..., 0] * b["video_mask"]
    np.testing.assert_array_equal(gathered, [[1, 1, 1], [2, 2, 0]])


def _ann_dir(tiny_dir, tmp_path):
    return os.path.join(_copy(tiny_dir, tmp_path), f"{NAME}-Annotations")


def test_the_one_wtalc_conversion_skips_degenerate_segments_and_keeps_ambiguous(tiny_dir, tmp_path):
    """Both the ground-truth command and the per-video converter write what the JSON reader accepts."""
    from d2net_tf.data import convert
    from d2net_tf.data.ground_truth_json import parse_ground_truth
    from d2net_tf.data.wtalc import wtalc_to_activitynet, write_ground_truth

    ann = _ann_dir(tiny_dir, tmp_path)
    segs = np.load(os.path.join(ann, "segments.npy"), allow_pickle=True)
    vid0 = str(np.load(os.path.join(ann, "videoname.npy"), allow_pickle=True)[0].decode())
    s0 = [list(map(float, s)) for s in segs[0]]
    s0[0] = [s0[0][0], s0[0][0]]  # end == start
    segs[0] = s0
    _save_obj(os.path.join(ann, "segments.npy"), list(segs))
    with open(os.path.join(ann, "Ambiguous_test.txt"), "a") as f:
        f.write(f"{vid0} 0.5 1.25\n")

    warnings = []
    dataset = load_wtalc_annotations(ann)
    doc = wtalc_to_activitynet(dataset, warnings.append)
    assert len(warnings) == 1 and "skipped 1 ground-truth segments with end <= start" in warnings[0]
    entry = doc["database"][vid0]
    assert len(entry["annotations"]) == len(s0) - 1
    assert entry["ambiguous"][-1] == [0.5, 1.25]
    assert [e["subset"] for e in doc["database"].values()] == dataset.subsets.tolist()
    table = parse_ground_truth(doc, "doc")  # the reader rejects end <= start: none is left
    assert len(table) == sum(len(s) for s in dataset.segments) - 1

    written = write_ground_truth(ann, str(tmp_path / "gt.json"), warn=warnings.append)
    assert json.load(open(tmp_path / "gt.json")) == written == doc
    out = str(tmp_path / "per_video")
    convert.convert(os.path.join(tiny_dir, f"{NAME}-I3D-JOINTFeatures.npy"), ann, out, warn=warnings.append)
    assert json.load(open(os.path.join(out, "ground_truth.json"))) == doc
    ds = load_per_video_dataset(os.path.join(out, "features"), os.path.join(out, "ground_truth.json"))
    assert len(ds) == len(dataset)

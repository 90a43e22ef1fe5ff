"""TFRecord storage of a VideoDataset, for feature sets larger than memory.

One `tf.train.SequenceExample` per video:
  context:       video_id, subset (bytes); index (position in the dataset, int64);
                 labels (multi-hot float [C]); duration (s); segments (flattened
                 [start_0, end_0, start_1, ...], s); segment_labels (class ids);
                 ambiguous (flattened [k, 2] s, THUMOS14); num_snippets, feature_dim;
                 dataset-level: dataset_name, classlist, snippets_per_second
                 (repeated in every record so each shard is self-describing).
  feature_lists: features, one float list of D values per snippet.
Shards: `{prefix}-{i:05d}-of-{n:05d}.tfrecord`, video j in shard j mod n.

Training input (`tfrecord_training_dataset`) streams the shards: shuffled file order,
parallel interleave, a bounded shuffle buffer of videos, random crop to max_seqlen,
padded batches, prefetch; memory is O(shuffle_buffer + prefetch) videos, not the dataset.
Batches are then not a function of (seed, step) as with the in-memory pipeline.
"""

from __future__ import annotations

import glob
import os
from typing import Sequence

import numpy as np
import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.errors import DataFormatError


def _bytes(values) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values, np.float64).ravel().tolist()))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values, np.int64).ravel().tolist()))


def video_example(dataset: VideoDataset, i: int) -> tf.train.SequenceExample:
    """The SequenceExample of video `i` of `dataset`."""
    vid = str(dataset.video_ids[i])
    feats = dataset.features[i]
    context = {
        "video_id": _bytes([vid]),
        "subset": _bytes([str(dataset.subsets[i])]),
        "index": _ints([i]),
        "labels": _floats(dataset.labels[i]),
        "duration": _floats([dataset.durations[i]]),
        "segments": _floats(np.reshape(dataset.segments[i], (-1,))),
        "segment_labels": _ints(dataset.segment_labels[i]),
        "ambiguous": _floats(np.reshape(dataset.ambiguous.get(vid, np.zeros((0, 2))), (-1,))),
        "num_snippets": _ints([0 if feats is None else feats.shape[0]]),
        "feature_dim": _ints([0 if feats is None else feats.shape[1]]),
        "dataset_name": _bytes([dataset.name]),
        "classlist": _bytes(list(dataset.classlist)),
        "snippets_per_second": _floats([dataset.snippets_per_second]),
    }
    rows = [] if feats is None else [
        tf.train.Feature(float_list=tf.train.FloatList(value=row)) for row in np.asarray(feats, np.float32)
    ]
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list={"features": tf.train.FeatureList(feature=rows)}),
    )


def shard_paths(path_prefix: str, num_shards: int) -> list[str]:
    return [f"{path_prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def write_tfrecords(dataset: VideoDataset, path_prefix: str, num_shards: int = 1) -> list[str]:
    """Writes `dataset` into `num_shards` TFRecord files; returns their paths."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    paths = shard_paths(path_prefix, num_shards)
    folder = os.path.dirname(os.path.abspath(paths[0]))
    os.makedirs(folder, exist_ok=True)
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    try:
        for i in range(len(dataset)):
            writers[i % num_shards].write(video_example(dataset, i).SerializeToString())
    finally:
        for w in writers:
            w.close()
    return paths


def _expand(files: str | Sequence[str]) -> list[str]:
    patterns = [files] if isinstance(files, str) else list(files)
    out = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        out.extend(hits)
    if not out:
        raise DataFormatError(f"no TFRecord files match {files!r}")
    return out


_CONTEXT = {
    "video_id": tf.io.FixedLenFeature([], tf.string),
    "subset": tf.io.FixedLenFeature([], tf.string),
    "index": tf.io.FixedLenFeature([], tf.int64),
    "labels": tf.io.VarLenFeature(tf.float32),
    "duration": tf.io.FixedLenFeature([], tf.float32),
    "segments": tf.io.VarLenFeature(tf.float32),
    "segment_labels": tf.io.VarLenFeature(tf.int64),
    "ambiguous": tf.io.VarLenFeature(tf.float32),
    "num_snippets": tf.io.FixedLenFeature([], tf.int64),
    "feature_dim": tf.io.FixedLenFeature([], tf.int64),
    "dataset_name": tf.io.FixedLenFeature([], tf.string),
    "classlist": tf.io.VarLenFeature(tf.string),
    "snippets_per_second": tf.io.FixedLenFeature([], tf.float32),
}


def _example_from_bytes(raw: bytes) -> tf.train.SequenceExample:
    ex = tf.train.SequenceExample()
    ex.ParseFromString(raw)
    return ex


def read_tfrecords(files: str | Sequence[str]) -> VideoDataset:
    """Reads shards written by `write_tfrecords` back into a VideoDataset (in the original order).

    Features, labels, ids and class ids round-trip exactly; durations, segment times and
    the feature rate are stored as float32 (relative error <= 6e-8)."""
    records = []
    for path in _expand(files):
        for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records.append(_example_from_bytes(raw))
    if not records:
        raise DataFormatError(f"{files!r}: no records")

    def ctx(ex, key):
        f = ex.context.feature[key]
        kind = f.WhichOneof("kind")
        return list(getattr(f, kind).value) if kind else []

    records.sort(key=lambda ex: ctx(ex, "index")[0])
    first = records[0]
    classlist = [c.decode("utf-8") for c in ctx(first, "classlist")]
    video_ids, subsets, labels, segments, seg_labels, durations, features, ambiguous = [], [], [], [], [], [], [], {}
    for ex in records:
        vid = ctx(ex, "video_id")[0].decode("utf-8")
        video_ids.append(vid)
        subsets.append(ctx(ex, "subset")[0].decode("utf-8"))
        labels.append(np.asarray(ctx(ex, "labels"), np.float32))
        segments.append(np.asarray(ctx(ex, "segments"), np.float64).reshape(-1, 2))
        seg_labels.append(np.asarray(ctx(ex, "segment_labels"), np.int32))
        durations.append(ctx(ex, "duration")[0])
        amb = np.asarray(ctx(ex, "ambiguous"), np.float64).reshape(-1, 2)
        if amb.size:
            ambiguous[vid] = amb
        n, d = ctx(ex, "num_snippets")[0], ctx(ex, "feature_dim")[0]
        rows = ex.feature_lists.feature_list["features"].feature
        features.append(None if n == 0 else np.array([r.float_list.value for r in rows], np.float32).reshape(n, d))
    return VideoDataset(
        name=ctx(first, "dataset_name")[0].decode("utf-8"),
        classlist=classlist,
        video_ids=np.array(video_ids),
        subsets=np.array(subsets),
        labels=np.stack(labels).astype(np.float32),
        segments=segments,
        segment_labels=seg_labels,
        durations=np.asarray(durations, np.float64),
        features=features,
        snippets_per_second=float(np.float32(ctx(first, "snippets_per_second")[0])),
        ambiguous=ambiguous,
    )


def _peek_dims(path: str) -> tuple[int, int]:
    for raw in tf.data.TFRecordDataset(path).take(1).as_numpy_iterator():
        ex = _example_from_bytes(raw)
        return (int(ex.context.feature["feature_dim"].int64_list.value[0]),
                len(ex.context.feature["labels"].float_list.value))
    raise DataFormatError(f"{path}: no records")


def parse_video(serialized: tf.Tensor, feature_dim: int) -> dict[str, tf.Tensor]:
    """One serialized SequenceExample -> {features [T, D], labels [C], index, video_id, ...}."""
    context, seq = tf.io.parse_single_sequence_example(
        serialized, context_features=_CONTEXT,
        sequence_features={"features": tf.io.FixedLenSequenceFeature([feature_dim], tf.float32)},
    )
    return {"features": seq["features"], "labels": tf.sparse.to_dense(context["labels"]),
            "video_index": context["index"], "video_id": context["video_id"]}


def tfrecord_training_dataset(
    files: str | Sequence[str], batch_size: int, max_seqlen: int, seed: int, *,
    shuffle_buffer: int = 256, cycle_length: int = 4, input_context: tf.distribute.InputContext | None = None,
    min_snippets: int = 1,
) -> tf.data.Dataset:
    """Endless padded training batches streamed from TFRecord shards.

    Same layout as the padded in-memory pipeline: features [B, T, D], mask [B, T],
    labels [B, C], video_index [B]. Files are shuffled (seed) and, with `input_context`
    (`strategy.distribute_datasets_from_function`), sharded by file across input
    pipelines with `batch_size` taken as the GLOBAL batch (per-replica batch =
    input_context.get_per_replica_batch_size). Memory: `shuffle_buffer` videos plus the
    interleave's `cycle_length` open files and a few prefetched batches.
    """
    paths = _expand(files)
    d, _ = _peek_dims(paths[0])
    files_ds = tf.data.Dataset.from_tensor_slices(paths)
    if input_context is not None:
        if len(paths) >= input_context.num_input_pipelines:
            files_ds = files_ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    files_ds = files_ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = files_ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(paths)),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.shuffle(shuffle_buffer, seed=seed)
    ds = ds.map(lambda s: parse_video(s, d), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda v: tf.shape(v["features"])[0] >= min_snippets)

    def crop(v):
        f = v["features"]
        t = tf.shape(f)[0]
        start = tf.random.uniform([], 0, tf.maximum(t - max_seqlen, 0) + 1, dtype=tf.int32)
        f = f[start: start + max_seqlen]
        return {"features": f, "mask": tf.ones(tf.shape(f)[:1], tf.float32),
                "labels": v["labels"], "video_index": v["video_index"]}

    ds = ds.map(crop, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, padded_shapes={"features": [None, d], "mask": [None], "labels": [None],
                                                    "video_index": []}, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)

"""Training sources larger than memory: videos read from disk when a batch needs them.

A `VideoDataset` whose `features[i]` is a *lazy video* (`LazyVideo`: `.shape` known up front,
rows read from disk on indexing / `np.asarray`) works unchanged in every consumer: the
training batches (`pipeline.sample_crops` reads `features[i].shape` and slices a crop),
the per-replica shares of a batch, `select` / `subset` (they copy the handles, not the data),
`drop_unusable_videos` and the evaluation packs. So training batch i is still a pure
function of (seed, i), whatever the layout: resuming at step i reproduces the batches of an
uninterrupted run exactly, and every worker of a multi-worker job draws the same global batch
from its own random-access reader. Memory: the videos of the batches in flight, not the dataset.

Two lazy layouts:
- per-video `.npy` files, memory-mapped (`NpyVideo`; `--data_layout=per_video_mmap`): each
  read maps the file, copies the rows asked for and unmaps it (mapped pages are not kept in
  the process's resident set). Finiteness is checked on the rows read (the eager per_video
  loader checks whole files at load time).
- indexed TFRecord shards (`TFRecordVideo`; `--data_layout=tfrecord`), written by
  `write_indexed_tfrecords` (command: `d2net-convert-tfrecord`): one
  `tf.train.Example` per video (`features`: the [T, D] float32 rows as raw little-endian bytes,
  `video_id`, `index`, `num_snippets`, `feature_dim`), video j in shard j mod n, and an index
  `DATA_DIR/tfrecord_index.json` holding the dataset's metadata (names, labels, ground truth,
  feature rate) and, per video, (shard, byte offset, record length, T). A video is read by one
  seek + read of its record (random access; no scan of the shard). The shards are ordinary
  TFRecord files (`tf.data.TFRecordDataset` reads them).
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Iterable

import numpy as np

from d2net_tf.data.dataset import VideoDataset, drop_unusable_videos
from d2net_tf.errors import DataFormatError

INDEX_NAME = "tfrecord_index.json"
INDEX_FORMAT = "d2net_tf.indexed_tfrecord.v1"


class LazyVideo:
    """[T, D] float32 features of one video, read from disk on demand (numpy array protocol)."""

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, shape: tuple[int, int], source: str, video_id: str):
        self.shape = (int(shape[0]), int(shape[1]))
        self.source, self.video_id = source, str(video_id)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _checked(self, rows: np.ndarray) -> np.ndarray:
        if not np.isfinite(rows).all():
            bad = int(np.count_nonzero(~np.isfinite(rows)))
            raise DataFormatError(f"{self.source}: video {self.video_id!r}: {bad} NaN/inf feature values")
        return rows

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self.shape[0])
            return self.read(start, max(start, stop))
        return self.read()[key]

    def __array__(self, dtype=None, copy=None):
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, video {self.video_id!r}, shape {self.shape})"


class NpyVideo(LazyVideo):
    """One video's `.npy` file, memory-mapped for each read (no pickle: allow_pickle=False)."""

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        mapped = np.load(self.source, mmap_mode="r", allow_pickle=False)
        try:
            rows = np.array(mapped[start:stop], dtype=np.float32)
        finally:
            del mapped  # unmaps: the file's pages leave this process's resident set
        return self._checked(rows)


def open_npy_video(path: str, video_id: str, feature_dim: int | None) -> NpyVideo:
    """An `NpyVideo` after checking the file's header (2-D, numeric, width, T > 0), not its data."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataFormatError(f"{path}: video {video_id!r}: not a plain .npy array ({e})")
    shape, dtype = mapped.shape, mapped.dtype
    del mapped
    if len(shape) != 2:
        raise DataFormatError(f"{path}: video {video_id!r}: features must be a 2-D [T, D] array, got shape {shape}")
    if not np.issubdtype(dtype, np.number):
        raise DataFormatError(f"{path}: video {video_id!r}: features must be numeric, got dtype {dtype}")
    if feature_dim is not None and shape[1] != feature_dim:
        raise DataFormatError(f"{path}: video {video_id!r}: feature dimension {shape[1]}, expected {feature_dim}")
    if shape[0] == 0:
        raise DataFormatError(f"{path}: video {video_id!r}: zero-length video (0 snippets)")
    return NpyVideo(shape, path, video_id)


def read_record_at(path: str, offset: int, length: int | None = None) -> bytes:
    """The payload of the TFRecord record starting at byte `offset` of `path`.

    Record framing: uint64 length, uint32 masked CRC of the length, payload, uint32 masked CRC
    of the payload (little-endian). The CRCs are not verified; the length is checked against
    the index (`length`) and the file size."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(12)
        if len(head) != 12:
            raise DataFormatError(f"{path}: no TFRecord record at byte {offset} (file too short)")
        (n,) = struct.unpack("<Q", head[:8])
        if length is not None and n != length:
            raise DataFormatError(f"{path}: record at byte {offset} has {n} bytes, the index says {length} "
                                  "(shard rewritten after the index?)")
        data = f.read(n)
    if len(data) != n:
        raise DataFormatError(f"{path}: record at byte {offset} is truncated ({len(data)} of {n} bytes)")
    return data


def _example_features(raw: bytes, source: str, video_id: str, shape: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf  # the protobuf classes only; no TensorFlow op runs

    ex = tf.train.Example.FromString(raw)
    feature = ex.features.feature
    try:
        got_id = feature["video_id"].bytes_list.value[0].decode("utf-8")
        blob = feature["features"].bytes_list.value[0]
    except (KeyError, IndexError):
        raise DataFormatError(f"{source}: record of video {video_id!r} lacks 'video_id' or 'features'")
    if got_id != video_id:
        raise DataFormatError(f"{source}: the index points video {video_id!r} at the record of {got_id!r}")
    if len(blob) != 4 * shape[0] * shape[1]:
        raise DataFormatError(f"{source}: video {video_id!r}: {len(blob)} feature bytes, expected "
                              f"{4 * shape[0] * shape[1]} for shape {shape}")
    return np.frombuffer(blob, dtype="<f4").reshape(shape).astype(np.float32)


class TFRecordVideo(LazyVideo):
    """One video's record in an indexed TFRecord shard: read with one seek."""

    def __init__(self, shape, source: str, video_id: str, offset: int, length: int):
        super().__init__(shape, source, video_id)
        self.offset, self.length = int(offset), int(length)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        rows = _example_features(read_record_at(self.source, self.offset, self.length), self.source, self.video_id,
                                 self.shape)
        return self._checked(np.ascontiguousarray(rows[start:stop]))


def _video_record(video_id: str, index: int, features: np.ndarray) -> bytes:
    import tensorflow as tf

    f = np.ascontiguousarray(features, dtype="<f4")
    feature = {
        "video_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[video_id.encode("utf-8")])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        "num_snippets": tf.train.Feature(int64_list=tf.train.Int64List(value=[f.shape[0]])),
        "feature_dim": tf.train.Feature(int64_list=tf.train.Int64List(value=[f.shape[1]])),
        "features": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f.tobytes()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_indexed_tfrecords(dataset: VideoDataset, out_dir: str, num_shards: int = 1,
                            progress: Callable[[int, int], None] | None = None) -> str:
    """Writes `dataset` as indexed TFRecord shards into `out_dir`; returns the index path.

    Videos are read one at a time (`np.asarray(dataset.features[i])`), so a lazy dataset is
    converted in O(one video) memory. Videos without features are skipped (not indexed)."""
    import tensorflow as tf

    from d2net_tf.jsonio import write_json_atomic

    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    os.makedirs(out_dir, exist_ok=True)
    names = [f"{dataset.name}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, n)) for n in names]
    offsets = [0] * num_shards
    videos = []
    try:
        for i in range(len(dataset)):
            if dataset.features[i] is None:
                continue
            feats = np.asarray(dataset.features[i], dtype=np.float32)
            vid = str(dataset.video_ids[i])
            raw = _video_record(vid, i, feats)
            s = len(videos) % num_shards
            writers[s].write(raw)
            videos.append({
                "video_id": vid, "subset": str(dataset.subsets[i]), "labels": dataset.labels[i].tolist(),
                "duration": float(dataset.durations[i]),
                "segments": np.reshape(dataset.segments[i], (-1, 2)).tolist(),
                "segment_labels": np.asarray(dataset.segment_labels[i]).astype(int).tolist(),
                "ambiguous": np.reshape(dataset.ambiguous[vid], (-1, 2)).tolist() if vid in dataset.ambiguous else None,
                "shard": names[s], "offset": offsets[s], "length": len(raw), "num_snippets": int(feats.shape[0]),
            })
            offsets[s] += 16 + len(raw)  # uint64 length + 2 uint32 CRCs around the payload
            if progress is not None:
                progress(i + 1, len(dataset))
    finally:
        for w in writers:
            w.close()
    index = {"format": INDEX_FORMAT, "name": dataset.name, "classlist": list(dataset.classlist),
             "snippets_per_second": float(dataset.snippets_per_second), "feature_dim": dataset.feature_dim,
             "shards": names, "videos": videos}
    path = os.path.join(out_dir, INDEX_NAME)
    write_json_atomic(path, index)
    return path


def load_tfrecord_dataset(data_dir: str, *, feature_dim: int | None = None, min_snippets: int = 2,
                          warn: Callable[[str], None] = print) -> VideoDataset:
    """The lazy VideoDataset of the indexed shards in `data_dir` (reads only the index)."""
    from d2net_tf.jsonio import read_json

    path = data_dir if data_dir.endswith(".json") else os.path.join(data_dir, INDEX_NAME)
    if not os.path.exists(path):
        raise DataFormatError(f"{path}: no TFRecord index (write the shards with d2net-convert-tfrecord)")
    index = read_json(path)
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise DataFormatError(f"{path}: not an index of format {INDEX_FORMAT!r}")
    folder = os.path.dirname(os.path.abspath(path))
    d = int(index["feature_dim"])
    if feature_dim is not None and feature_dim != d:
        raise DataFormatError(f"{path}: feature_dim: the shards hold D={d}, expected {feature_dim}")
    videos = index["videos"]
    for name in index["shards"]:
        if not os.path.exists(os.path.join(folder, name)):
            raise DataFormatError(f"{path}: shards: {name} is missing from {folder}")
    try:
        dataset = VideoDataset(
            name=index["name"], classlist=list(index["classlist"]),
            video_ids=np.array([v["video_id"] for v in videos]),
            subsets=np.array([v["subset"] for v in videos]),
            labels=np.array([v["labels"] for v in videos], np.float32).reshape(len(videos), len(index["classlist"])),
            segments=[np.array(v["segments"], np.float64).reshape(-1, 2) for v in videos],
            segment_labels=[np.array(v["segment_labels"], np.int32) for v in videos],
            durations=np.array([v["duration"] for v in videos], np.float64),
            features=[TFRecordVideo((v["num_snippets"], d), os.path.join(folder, v["shard"]), v["video_id"],
                                    v["offset"], v["length"]) for v in videos],
            snippets_per_second=float(index["snippets_per_second"]),
            ambiguous={v["video_id"]: np.array(v["ambiguous"], np.float64).reshape(-1, 2)
                       for v in videos if v.get("ambiguous")},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DataFormatError(f"{path}: malformed index entry ({type(e).__name__}: {e})")
    return drop_unusable_videos(dataset, min_snippets, warn)


def materialize(dataset: VideoDataset, indices: Iterable[int] | None = None) -> VideoDataset:
    """An in-memory copy (plain arrays) of a lazy dataset, or of the videos at `indices`."""
    import dataclasses

    ds = dataset if indices is None else dataset.select(np.asarray(list(indices)))
    return dataclasses.replace(ds, features=[None if f is None else np.asarray(f, np.float32) for f in ds.features])


def write_per_video(dataset: VideoDataset, out_dir: str) -> str:
    """Writes `dataset` in the per-video layout (OUT/features/{vid}.npy, OUT/ground_truth.json,
    `d2net_tf.data.per_video`), one video at a time; returns out_dir. For tests and benchmarks:
    the W-TALC -> per-video converter is `d2net_tf.data.convert`."""
    import json

    os.makedirs(os.path.join(out_dir, "features"), exist_ok=True)
    database = {}
    for i in range(len(dataset)):
        vid = str(dataset.video_ids[i])
        if dataset.features[i] is not None:
            np.save(os.path.join(out_dir, "features", f"{vid}.npy"),
                    np.ascontiguousarray(np.asarray(dataset.features[i]), np.float32), allow_pickle=False)
        segs = np.reshape(dataset.segments[i], (-1, 2))
        database[vid] = {"subset": str(dataset.subsets[i]), "duration": float(dataset.durations[i]),
                         "annotations": [{"label": dataset.classlist[int(c)], "segment": [float(s), float(e)]}
                                         for (s, e), c in zip(segs, dataset.segment_labels[i])
                                         if e > s]}  # as the converter: segments with end <= start skipped
    with open(os.path.join(out_dir, "ground_truth.json"), "w") as f:
        json.dump({"database": database, "classlist": list(dataset.classlist),
                   "snippets_per_second": float(dataset.snippets_per_second)}, f)
    return out_dir

"""tf.data input pipelines: random training batches and whole-video evaluation.

Training batch i is a pure function of (seed, i): resuming at step i reproduces the
exact batches an uninterrupted run would have seen, so the data RNG state is the
step counter saved in every checkpoint.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.errors import D2NetInputError


SAMPLING = ("with_replacement", "without_replacement")


def sample_crops(
    dataset: VideoDataset, batch_size: int, max_seqlen: int, seed: int, step: int,
    sampling: str = "without_replacement",
) -> tuple[list[np.ndarray], np.ndarray]:
    """The videos of batch `step` before padding: ([T_i, D] crops, indices [B]).

    B videos drawn at random; a video longer than `max_seqlen` is cropped to a random window.
    `sampling`: "with_replacement" as the official code (np.random.choice, crop start in
    [0, T - max_seqlen), as its `random_extract`) or "without_replacement" (when the split has
    B videos; any crop start). A pure function of (seed, step)."""
    if sampling not in SAMPLING:
        raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
    official = sampling == "with_replacement"
    rng = np.random.default_rng([seed, step])
    n = len(dataset)
    idx = rng.choice(n, size=batch_size, replace=official or batch_size > n)
    crops = []
    for i in idx:
        f = dataset.features[i]
        t = f.shape[0]
        if t > max_seqlen:
            start = int(rng.integers(0, t - max_seqlen + (0 if official else 1)))
            f = f[start : start + max_seqlen]
        crops.append(f)
    return crops, idx


def replica_share(batch_size: int, num_replicas: int) -> int:
    """Videos per replica of a global batch (every replica holds the same number)."""
    if batch_size % num_replicas:
        raise D2NetInputError(f"batch_size {batch_size} is not divisible by the {num_replicas} replicas")
    return batch_size // num_replicas


def sample_training_batch(
    dataset: VideoDataset, batch_size: int, max_seqlen: int, seed: int, step: int, pack_gap: int | None = None,
    sampling: str = "without_replacement", replica_id: int = 0, num_replicas: int = 1,
) -> dict[str, np.ndarray]:
    """Batch `step`: B videos drawn at random (without replacement when possible), each longer
    than `max_seqlen` cropped to a random window; on N replicas, replica r's share of it.

    Padded (pack_gap None): features [B, T, D] float32, mask [B, T] float32 (1 = real
    snippet), padded to the batch maximum. Packed (pack_gap = g >= 0): the B videos in one
    sequence separated by g zero snippets, features [1, L, D], mask [1, L], plus
    unpack_index [B, T] int32 (position in L of each video's snippet t) and
    video_mask [B, T]; no convolution runs on padding (see `pack_videos`).
    Both: labels [B, C] float32, video_index [B] int64 (index into `dataset`).

    Replica r of N gets videos [r B/N, (r+1) B/N) of the batch, padded to the length of the
    whole batch's longest video, so the replicas' padded batches concatenate to the
    single-device batch (padding leaks into a video's outputs without `rezero_padding`); a
    packed sequence cannot be split on axis 0, so each replica packs its own B/N videos.
    """
    per = replica_share(batch_size, num_replicas)
    lo, hi = replica_id * per, (replica_id + 1) * per
    crops, idx = sample_crops(dataset, batch_size, max_seqlen, seed, step, sampling)
    if pack_gap is None:
        batch = pad_videos(crops[lo:hi], length=max(c.shape[0] for c in crops))
    else:
        batch = pack_videos(crops[lo:hi], pack_gap)
    batch["labels"] = dataset.labels[idx[lo:hi]].astype(np.float32)
    batch["video_index"] = idx[lo:hi].astype(np.int64)
    return batch


def pad_videos(videos: list[np.ndarray], length: int | None = None) -> dict[str, np.ndarray]:
    """[T_i, D] arrays -> features [B, T, D] zero-padded to `length` (default: the longest), mask [B, T]."""
    length = max(v.shape[0] for v in videos) if length is None else length
    features = np.zeros((len(videos), length, videos[0].shape[1]), np.float32)
    mask = np.zeros((len(videos), length), np.float32)
    for b, v in enumerate(videos):
        features[b, : v.shape[0]] = v
        mask[b, : v.shape[0]] = 1.0
    return {"features": features, "mask": mask}


def pack_videos(videos: list[np.ndarray], gap: int) -> dict[str, np.ndarray]:
    """[T_i, D] arrays -> one sequence [1, L, D] with `gap` zero snippets between videos.

    With gap >= the widest 'same' padding of the network's convolutions and padding
    re-zeroed after every layer, each video sees exactly the zeros it would see alone.
    Returns features [1, L, D], mask [1, L], unpack_index [B, T] int32, video_mask [B, T].
    """
    lengths = np.array([v.shape[0] for v in videos])
    starts = np.concatenate([[0], np.cumsum(lengths + gap)[:-1]])
    total = int(starts[-1] + lengths[-1])
    features = np.zeros((1, total, videos[0].shape[1]), np.float32)
    mask = np.zeros((1, total), np.float32)
    for s, v in zip(starts, videos):
        features[0, s : s + v.shape[0]] = v
        mask[0, s : s + v.shape[0]] = 1.0
    t = np.arange(lengths.max())
    video_mask = (t[None, :] < lengths[:, None]).astype(np.float32)
    unpack_index = np.where(video_mask > 0, starts[:, None] + t[None, :], 0).astype(np.int32)
    return {"features": features, "mask": mask, "unpack_index": unpack_index, "video_mask": video_mask}


def training_dataset(
    dataset: VideoDataset, batch_size: int, max_seqlen: int, seed: int, start_step: int = 0,
    pack_gap: int | None = None, sampling: str = "without_replacement",
    replica_ids: Sequence[int] = (0,), num_replicas: int = 1,
) -> tf.data.Dataset:
    """Endless tf.data pipeline of training batches from `start_step` on, prefetched.

    Per step it yields the `sample_training_batch` shares of `replica_ids` (of `num_replicas`)
    in that order: one device is replica 0 of 1; a tf.distribute worker passes its local
    replicas (tf.distribute hands consecutive elements of a worker's dataset to its replicas
    in turn)."""
    d, c = dataset.feature_dim, dataset.num_classes
    per = replica_share(batch_size, num_replicas)
    replica_ids = list(replica_ids)

    def gen() -> Iterator[dict[str, np.ndarray]]:
        step = start_step
        while True:
            for r in replica_ids:
                yield sample_training_batch(dataset, batch_size, max_seqlen, seed, step, pack_gap, sampling,
                                            r, num_replicas)
            step += 1

    rows = per if pack_gap is None else 1
    spec = {
        "features": tf.TensorSpec([rows, None, d], tf.float32),
        "mask": tf.TensorSpec([rows, None], tf.float32),
        "labels": tf.TensorSpec([per, c], tf.float32),
        "video_index": tf.TensorSpec([per], tf.int64),
    }
    if pack_gap is not None:
        spec["unpack_index"] = tf.TensorSpec([per, None], tf.int32)
        spec["video_mask"] = tf.TensorSpec([per, None], tf.float32)
    return tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2 * len(replica_ids))


def evaluation_packs(
    dataset: VideoDataset, gap: int, max_snippets: int = 50000
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]]:
    """Whole videos at full length, packed into sequences of at most `max_snippets` snippets.

    Yields (indices [b], packed batch of `pack_videos` (features [1, L, D], mask [1, L], ...),
    starts [b] = position of each video in the sequence). A video longer than
    `max_snippets` is its own pack. Outputs equal running each video alone (see `pack_videos`).
    """
    lengths = np.array([f.shape[0] for f in dataset.features])
    start = 0
    while start < len(lengths):
        end, total = start + 1, lengths[start]
        while end < len(lengths) and total + gap + lengths[end] <= max_snippets:
            total += gap + lengths[end]
            end += 1
        idx = np.arange(start, end)
        batch = pack_videos([dataset.features[i] for i in idx], gap)
        starts = np.concatenate([[0], np.cumsum(lengths[idx] + gap)[:-1]])
        yield idx, batch, starts
        start = end

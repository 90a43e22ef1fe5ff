"""tf.data input pipelines: random training batches and whole-video evaluation.

Training batch i is a pure function of (seed, i): resuming at step i reproduces the
exact batches an uninterrupted run would have seen, so the data RNG state is the
step counter saved in every checkpoint.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset


def sample_training_batch(
    dataset: VideoDataset, batch_size: int, max_seqlen: int, seed: int, step: int
) -> dict[str, np.ndarray]:
    """Batch `step`: B videos drawn at random (without replacement when possible), each longer
    than `max_seqlen` cropped to a random window, padded to the batch maximum.

    Returns features [B, T, D] float32, mask [B, T] float32 (1 = real snippet),
    labels [B, C] float32, video_index [B] int64 (index into `dataset`).
    """
    rng = np.random.default_rng([seed, step])
    n = len(dataset)
    idx = rng.choice(n, size=batch_size, replace=batch_size > n)
    crops = []
    for i in idx:
        f = dataset.features[i]
        t = f.shape[0]
        if t > max_seqlen:
            start = int(rng.integers(0, t - max_seqlen + 1))
            f = f[start : start + max_seqlen]
        crops.append(f)
    length = max(c.shape[0] for c in crops)
    d = crops[0].shape[1]
    features = np.zeros((batch_size, length, d), np.float32)
    mask = np.zeros((batch_size, length), np.float32)
    for b, c in enumerate(crops):
        features[b, : c.shape[0]] = c
        mask[b, : c.shape[0]] = 1.0
    return {
        "features": features,
        "mask": mask,
        "labels": dataset.labels[idx].astype(np.float32),
        "video_index": idx.astype(np.int64),
    }


def training_dataset(
    dataset: VideoDataset, batch_size: int, max_seqlen: int, seed: int, start_step: int = 0
) -> tf.data.Dataset:
    """Endless tf.data pipeline of training batches from `start_step` on, prefetched."""
    d, c = dataset.feature_dim, dataset.num_classes

    def gen() -> Iterator[dict[str, np.ndarray]]:
        step = start_step
        while True:
            yield sample_training_batch(dataset, batch_size, max_seqlen, seed, step)
            step += 1

    spec = {
        "features": tf.TensorSpec([batch_size, None, d], tf.float32),
        "mask": tf.TensorSpec([batch_size, None], tf.float32),
        "labels": tf.TensorSpec([batch_size, c], tf.float32),
        "video_index": tf.TensorSpec([batch_size], tf.int64),
    }
    return tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2)


def evaluation_batches(
    dataset: VideoDataset, max_snippets: int = 20000
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Whole videos at full length, grouped into padded batches of similar length.

    Yields (indices [b], features [b, T, D], mask [b, T]) with b * T <= max_snippets
    (a single video longer than that is its own batch). Sorting by length keeps padding
    small; outputs are identical to running each video alone (the network re-zeroes padding).
    """
    lengths = np.array([f.shape[0] for f in dataset.features])
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * lengths[order[end]] <= max_snippets:
            end += 1
        idx = order[start:end]
        t = int(lengths[idx].max())
        feats = np.zeros((len(idx), t, dataset.feature_dim), np.float32)
        mask = np.zeros((len(idx), t), np.float32)
        for b, i in enumerate(idx):
            feats[b, : lengths[i]] = dataset.features[i]
            mask[b, : lengths[i]] = 1.0
        yield idx, feats, mask
        start = end

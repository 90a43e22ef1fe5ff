"""tf.distribute support: strategies and per-replica training input.

A multi-replica step is exact: every replica runs the network on its share of the
global batch, the per-video loss statistics are all-gathered (`D2Net.compute_global_losses`)
and every replica evaluates the global-batch losses; the local gradients of loss / N summed
by the optimizer's all-reduce equal the single-device gradient (see BUILD.md, section Scaling).

Input: replica r of N gets videos [r B/N, (r+1) B/N) of global batch `step` (the same
videos a single device would see in batch `step`, drawn from (seed, step)), padded or
packed on its own (`pack_videos` cannot be split on axis 0, so each replica packs its own
B/N videos). Built with `strategy.distribute_datasets_from_function`: each worker's input
pipeline yields, per step, the batches of its local replicas in replica order
(tf.distribute hands consecutive elements of a worker's dataset to its replicas in turn).
"""

from __future__ import annotations

import json
import os
from typing import Iterator

import numpy as np
import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.data.pipeline import pack_videos, pad_videos, sample_crops, training_dataset
from d2net_tf.errors import D2NetInputError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", devices: list[str] | None = None, tpu: str = "") -> tf.distribute.Strategy:
    """default: no distribution (the current device); mirrored: all local GPUs (or `devices`);
    multi_worker: MultiWorkerMirroredStrategy over the cluster in TF_CONFIG (create it first,
    before any other TensorFlow op); tpu: TPUStrategy on `tpu` (name/address, "" = local)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise D2NetInputError("--strategy=multi_worker needs the TF_CONFIG environment variable (see BUILD.md, section Scaling)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise D2NetInputError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def is_default(strategy: tf.distribute.Strategy) -> bool:
    """True for TensorFlow's default (no-op) strategy."""
    return type(strategy).__name__ == "_DefaultDistributionStrategy"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True except on the non-chief workers of a multi-worker cluster (they must not write results)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in (json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster") or {})
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def replica_batch(
    dataset: VideoDataset, global_batch_size: int, max_seqlen: int, seed: int, step: int,
    replica_id: int, num_replicas: int, pack_gap: int | None = None, sampling: str = "without_replacement",
) -> dict[str, np.ndarray]:
    """Replica `replica_id`'s share (contiguous B/N videos) of global batch `step`, padded
    (pack_gap None) or packed on its own; same keys as `sample_training_batch`."""
    if global_batch_size % num_replicas:
        raise D2NetInputError(f"batch_size {global_batch_size} is not divisible by the {num_replicas} replicas")
    per = global_batch_size // num_replicas
    crops, idx = sample_crops(dataset, global_batch_size, max_seqlen, seed, step, sampling)
    lo, hi = replica_id * per, (replica_id + 1) * per
    batch = pad_videos(crops[lo:hi]) if pack_gap is None else pack_videos(crops[lo:hi], pack_gap)
    batch["labels"] = dataset.labels[idx[lo:hi]].astype(np.float32)
    batch["video_index"] = idx[lo:hi].astype(np.int64)
    return batch


def _spec(rows: int, per: int, d: int, c: int, packed: bool) -> dict[str, tf.TensorSpec]:
    spec = {
        "features": tf.TensorSpec([rows, None, d], tf.float32),
        "mask": tf.TensorSpec([rows, None], tf.float32),
        "labels": tf.TensorSpec([per, c], tf.float32),
        "video_index": tf.TensorSpec([per], tf.int64),
    }
    if packed:
        spec["unpack_index"] = tf.TensorSpec([per, None], tf.int32)
        spec["video_mask"] = tf.TensorSpec([per, None], tf.float32)
    return spec


def distributed_training_dataset(
    strategy: tf.distribute.Strategy, dataset: VideoDataset, global_batch_size: int, max_seqlen: int,
    seed: int, start_step: int = 0, pack_gap: int | None = None, sampling: str = "without_replacement",
):
    """Training input for `model.fit` under `strategy` (endless, from `start_step`).

    One replica outside any strategy: `pipeline.training_dataset` unchanged. Otherwise a
    distributed dataset whose replica r receives `replica_batch(..., r, N)` at every step.
    """
    n = strategy.num_replicas_in_sync
    if is_default(strategy):
        return training_dataset(dataset, global_batch_size, max_seqlen, seed, start_step, pack_gap, sampling)
    if global_batch_size % n:
        raise D2NetInputError(f"batch_size {global_batch_size} is not divisible by the {n} replicas")
    per = global_batch_size // n
    d, c = dataset.feature_dim, dataset.num_classes

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        workers = ctx.num_input_pipelines
        local = ctx.num_replicas_in_sync // workers
        first = ctx.input_pipeline_id * local

        def gen() -> Iterator[dict[str, np.ndarray]]:
            step = start_step
            while True:
                for r in range(first, first + local):
                    yield replica_batch(dataset, global_batch_size, max_seqlen, seed, step, r, n, pack_gap, sampling)
                step += 1

        spec = _spec(per if pack_gap is None else 1, per, d, c, pack_gap is not None)
        return tf.data.Dataset.from_generator(gen, output_signature=spec).prefetch(2 * local)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset_fn, options)

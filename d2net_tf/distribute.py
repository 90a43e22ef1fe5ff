"""tf.distribute support: strategies and per-replica training input.

A multi-replica step is exact (`task.D2NetTask.train_step`: the per-video loss statistics are
all-gathered, every replica evaluates the global-batch losses; see BUILD.md, section Scaling).

Input: replica r of N gets its share of global batch `step` (the videos a single device would
see in batch `step`, drawn from (seed, step); `pipeline.sample_training_batch`). Built with
`strategy.distribute_datasets_from_function`: each worker's input pipeline yields, per step,
the batches of its local replicas in replica order.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.data.pipeline import replica_share, training_dataset
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


def distributed_training_dataset(
    strategy: tf.distribute.Strategy, dataset: VideoDataset, global_batch_size: int, max_seqlen: int,
    seed: int, start_step: int = 0, pack_gap: int | None = None, sampling: str = "without_replacement",
):
    """Training input for `model.fit` under `strategy` (endless, from `start_step`).

    One replica outside any strategy: `pipeline.training_dataset` of replica 0 of 1. Otherwise
    a distributed dataset whose replica r receives its share of every global batch.
    """
    n = strategy.num_replicas_in_sync
    if is_default(strategy):
        return training_dataset(dataset, global_batch_size, max_seqlen, seed, start_step, pack_gap, sampling)
    replica_share(global_batch_size, n)  # refused here, not in the first input pipeline

    def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local
        return training_dataset(dataset, global_batch_size, max_seqlen, seed, start_step, pack_gap, sampling,
                                range(first, first + local), n)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset_fn, options)

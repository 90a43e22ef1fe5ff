"""D2NetTask: how D2-Net trains (paper Sec. 3.3, Eq. 1-11) around the network `modeling.D2Net`.

The task owns the losses, the Eq. 3 pairing RNG, the Eq. 8 x_ref EMA, the L2 term, the
skipping of non-finite (and, as the official code, non-positive) steps, the step counters
and the metrics. Its `train_step` is the one update for 1..N replicas: one device is N = 1,
where gathering the per-video statistics is the identity (`Replicas`).

A multi-replica step is exact: every replica runs the network on its share of the global
batch, the per-video loss statistics are all-gathered and every replica evaluates the
global-batch losses; the local gradients of loss / N summed by the optimizer's all-reduce
equal the single-device gradient (see BUILD.md, section Scaling).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from d2net_tf import losses as L
from d2net_tf.config import LossConfig, ModelConfig
from d2net_tf.modeling import D2Net, build_network
from d2net_tf.modeling.winograd import check_conv_algorithm

LOSS_METRICS = ("loss", "dis", "snippet", "video", "w_fb", "w_fg", "w_bg")


class Replicas:
    """The replicas a training step runs on: one device (N = 1, no strategy: every collective
    is the identity) or the N replicas of a tf.distribute strategy (inside `strategy.run`)."""

    def __init__(self, context: tf.distribute.ReplicaContext | None = None):
        self.context = context
        self.num = 1 if context is None else context.num_replicas_in_sync

    @classmethod
    def current(cls) -> "Replicas":
        """The replicas of the calling step: a non-default strategy's replica context, else one device."""
        ctx = tf.distribute.get_replica_context()
        return cls(ctx if tf.distribute.has_strategy() and ctx is not None else None)

    def gather_rows(self, x: tf.Tensor) -> tf.Tensor:
        """[B_local, ...] -> [B_global, ...], replica order = order of the videos in the global batch."""
        return x if self.context is None else self.context.all_gather(x, axis=0)

    def gather(self, stats: dict) -> dict:
        """`gather_rows` of a dict of per-video [B_local, ...] float32 tensors in ONE collective:
        packed into [B_local, K] (K = sum of the per-video sizes), gathered, unpacked. (One
        all_gather of a list of differently shaped tensors fails to differentiate in TF 2.21:
        its gradient stacks them.)"""
        if self.context is None or not stats:
            return stats
        keys = sorted(stats)
        widths = [int(np.prod(stats[k].shape[1:])) for k in keys]
        flat = tf.concat([tf.reshape(tf.cast(stats[k], tf.float32), [-1, w]) for k, w in zip(keys, widths)], axis=1)
        gathered = self.gather_rows(flat)
        return {k: tf.reshape(part, [-1] + stats[k].shape[1:].as_list())
                for k, part in zip(keys, tf.split(gathered, widths, axis=1))}

    def all_true(self, local: tf.Tensor) -> tf.Tensor:
        """Whether `local` (a bool) holds on every replica: a decision all replicas share."""
        if self.context is None:
            return local
        return self.context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(tf.logical_not(local), tf.float32)) == 0.0

    def apply_gradients(self, optimizer, grads, variables, update: tf.Tensor) -> None:
        """optimizer.apply(grads, variables) where `update` (the same on every replica); the
        optimizer sums the local gradients over the replicas."""
        if self.context is None:
            tf.cond(update, lambda: optimizer.apply(grads, variables), lambda: None)
            return

        def cross_replica(distribution, grads, update):
            # A cond whose branch calls merge_call (the optimizer update) must run in cross-replica
            # context (same pattern as keras LossScaleOptimizer._tf_apply).
            ok = distribution.experimental_local_results(update)[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(lambda g: optimizer.apply(g, variables), args=(grads,))

            ops.cond(ok, apply_fn, lambda: None)

        self.context.merge_call(cross_replica, args=(grads, update))


def unpack_videos(packed: tf.Tensor, unpack_index: tf.Tensor, video_mask: tf.Tensor) -> tf.Tensor:
    """Per-video layout of a packed sequence: packed [1, L, F] -> [B, T, F], row [b, t] =
    packed[0, unpack_index[b, t]] (see `data.pipeline.pack_videos`).

    Its gradient is a gather through the inverse index (packed position -> [b, t]), not the
    scatter-add of `tf.gather`'s gradient (an UnsortedSegmentSum over [B*T, F] that took ~10 ms
    of a D=2048 training step in `benchmarks.profile_step`).
    It assumes what `pack_videos` guarantees, valid [b, t] positions (video_mask > 0) map to
    distinct packed positions, and it drops the gradient of padded [b, t] rows (the losses
    mask them: it is zero).
    """
    flat_index = tf.reshape(unpack_index, [-1])
    flat_valid = tf.reshape(video_mask > 0, [-1])

    @tf.custom_gradient
    def unpack(x):
        rows = tf.reshape(x, tf.shape(x)[1:])  # [L, F]
        out = tf.gather(rows, unpack_index)

        def grad(upstream):
            b_t = tf.shape(flat_index)[0]
            inverse = tf.tensor_scatter_nd_update(
                tf.fill(tf.shape(rows)[:1], -1),  # gaps: -1, zero gradient
                tf.boolean_mask(flat_index, flat_valid)[:, None],
                tf.boolean_mask(tf.range(b_t), flat_valid),
            )
            flat = tf.reshape(upstream, tf.concat([[b_t], tf.shape(upstream)[2:]], 0))
            picked = tf.gather(flat, tf.maximum(inverse, 0))
            picked = tf.where((inverse >= 0)[:, None], picked, tf.zeros_like(picked))
            return tf.reshape(picked, tf.shape(x))

        return out, grad

    return unpack(packed)


@keras.saving.register_keras_serializable(package="d2net_tf")
class D2NetTask(keras.Model):
    """The training task of D2-Net: a Keras model whose `fit` trains `network`.

    Batches: dicts of features [B, T, D] and mask [B, T] (padded) or features [1, L, D],
    mask [1, L], unpack_index [B, T] and video_mask [B, T] (packed, `data.pipeline`), with
    labels [B, C]; optional perm [B] (the Eq. 3 pairing, global indices) and
    dropout_multiplier (the network's dropout masks). Calling the task calls the network.

    Args:
      network: `D2Net`.
      loss_config: dict of `LossConfig` fields (default: LossConfig()).
      weight_decay: float, 0.0. L2 coefficient added to the gradient (PyTorch
        `Adam(weight_decay=)`, as the official code; the decoupled decay is the optimizer's).
      seed: int, 0. Seed of the Eq. 3 pairing: step s pairs with a permutation drawn from (seed, s).
      skip_nonpositive_loss: bool, True. No optimizer update when the total loss is <= 0
        (official `if total_loss > 0`).
      evaluate_denoising: bool, True. `test_step` reports the denoising terms (Eq. 9-10).
      conv_algorithm: str, "direct". How the TC layers convolve on packed batches, forward and
        backward (`modeling.winograd`: "winograd", the same function with half the multiplications).
    """

    def __init__(self, network: D2Net, loss_config: dict | None = None, weight_decay: float = 0.0, seed: int = 0,
                 skip_nonpositive_loss: bool = True, evaluate_denoising: bool = True, conv_algorithm: str = "direct",
                 **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.loss_config = dataclasses.asdict(LossConfig(**(loss_config or {})))
        self.lcfg = LossConfig(**self.loss_config)
        if network.topk_divisor != self.lcfg.topk_divisor:  # the loss's p must be the network's video scores
            raise ValueError(f"the network's topk_divisor {network.topk_divisor} is not the loss config's "
                             f"{self.lcfg.topk_divisor}")
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.skip_nonpositive_loss = bool(skip_nonpositive_loss)
        self.evaluate_denoising = bool(evaluate_denoising)
        check_conv_algorithm(conv_algorithm)
        self.conv_algorithm = conv_algorithm
        self.train_steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           name="train_steps", dtype="int64", aggregation="only_first_replica")
        self.nonfinite_steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                               name="nonfinite_steps", dtype="int64",
                                               aggregation="only_first_replica")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in LOSS_METRICS}
        self.trackers["pdmi_dropped"] = keras.metrics.Sum(name="pdmi_dropped")
        self.trackers["skipped_nonfinite"] = keras.metrics.Sum(name="skipped_nonfinite")

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def x_ref(self):
        """The network's background reference (Eq. 8), which this task updates."""
        return self.network.x_ref

    def build(self, input_shape=None):
        if not self.network.built:
            self.network.build(input_shape)
        self.built = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras' tf trainer builds a model symbolically from its first batch at the start of
        fit/evaluate, MEAN-reducing that batch across replicas first. Under
        MultiWorkerMirroredStrategy the collective reduce refuses our batch (a dict of PerReplica
        tensors of per-replica shapes), which would stop `fit` at its first step. A task built by
        `build_task` (network built, no compiled loss or metrics) has nothing to build: skip it."""
        if self.built and self.network.built and (self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def call(self, features, snippet_mask=None, training=False, dropout_multiplier=None):
        return self.network(features, snippet_mask=snippet_mask, training=training,
                            dropout_multiplier=dropout_multiplier)

    def checkpoint_state(self) -> tf.train.Checkpoint:
        """The `model` part of a training checkpoint: the network's streams and x_ref and the step
        counters, in the object layout of the checkpoints written while the network and the task
        were one class (so their model directories still restore)."""
        net = self.network
        return tf.train.Checkpoint(rgb_stream=net.rgb_stream, flow_stream=net.flow_stream, x_ref=net.x_ref,
                                   train_steps=self.train_steps, nonfinite_steps=self.nonfinite_steps)

    def forward_batch(self, batch, training=False):
        """Outputs in the per-video layout [B, T, ...] and their mask [B, T], for a padded or a
        packed batch. A packed batch's outputs also hold its packed embeddings, `embedding_rows`
        [L, D], and `row_index` [B, T] (its unpack_index), which the losses read instead of the
        unpacked copy (in a traced step that copy is then never computed)."""
        outputs = self.network(batch["features"], snippet_mask=batch["mask"], training=training,
                               dropout_multiplier=batch.get("dropout_multiplier") if training else None,
                               packed="unpack_index" in batch, conv_algorithm=self.conv_algorithm)
        if "unpack_index" not in batch:
            return outputs, batch["mask"]
        unpacked = {k: unpack_videos(outputs[k], batch["unpack_index"], batch["video_mask"])
                    for k in ("tcam", "embeddings")}
        # [L, D] by squeeze: its gradient is a reshape (the gradient of [0] is a StridedSliceGrad copy).
        unpacked["embedding_rows"] = tf.squeeze(outputs["embeddings"], 0)
        unpacked["row_index"] = batch["unpack_index"]
        return unpacked, batch["video_mask"]

    def compute_losses(self, batch, outputs, perm, denoise, mask=None, replicas: Replicas | None = None) -> dict:
        """All loss terms (`losses.d2net_losses`) of the global batch from this replica's labels,
        per-video outputs and mask [B, T] (default: the batch's padded-layout mask); `perm` is
        the pairing of the global batch, `denoise` switches Eq. 9-10 on.

        On N replicas every replica gets the single-device terms; the gradient of the gathers
        sums the upstream gradient over the replicas, so the local gradient of the returned loss
        is N x this replica's share (`gradients` divides by N)."""
        mask = batch["mask"] if mask is None else mask
        replicas = replicas or Replicas()
        embeddings = outputs.get("embedding_rows", outputs["embeddings"])
        return L.d2net_losses(outputs["tcam"], embeddings, batch["labels"], mask, self.x_ref, perm, self.lcfg,
                              denoise=denoise, gather=replicas.gather, row_index=outputs.get("row_index"))

    def denoise_at(self, step):
        """Whether training step `step` (0-based) includes the denoising terms (Eq. 11 schedule)."""
        cfg = self.lcfg
        return tf.logical_and(step >= cfg.denoise_start_step, step % cfg.denoise_every == 0)

    def pairing(self, batch_size, step):
        """Eq. 3 pairing of a step (stateless, from the seed and step): a random permutation
        (official) or derangement (`pairing_allows_self=False`)."""
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)])
        return L.random_pairing(batch_size, tf.cast(seed, tf.int32), self.lcfg.pairing_allows_self)

    def batch_pairing(self, batch, step, replicas: Replicas):
        """The global batch's Eq. 3 pairing: the batch's `perm` (this replica's rows, gathered)
        or the step's `pairing` over B_local x N videos (every replica holds B / N)."""
        if "perm" in batch:
            return replicas.gather_rows(batch["perm"])
        return self.pairing(tf.shape(batch["labels"])[0] * replicas.num, step)

    def gradients(self, batch, replicas: Replicas | None = None):
        """(terms, local gradients, finite) of this replica's share of the global batch.

        The local gradients summed over the replicas (what the optimizer does) equal the
        single-device gradient of the global-batch loss plus the L2 term (weight_decay / N per
        replica). `finite` (loss and every replica's gradients) is the same on every replica:
        the optimizer's all-reduce is a collective, so a step is skipped everywhere or nowhere.
        """
        replicas = replicas or Replicas.current()
        n = replicas.num
        step = tf.convert_to_tensor(self.train_steps)
        perm = self.batch_pairing(batch, step, replicas)
        with tf.GradientTape() as tape:
            outputs, mask = self.forward_batch(batch, training=True)
            terms = self.compute_losses(batch, outputs, perm, self.denoise_at(step), mask, replicas)
            # The gathers' gradient sums the upstream gradient over the N replicas (each holds
            # the same global loss): scale by 1/N so the summed local gradients are exact.
            loss = terms["loss"] if n == 1 else terms["loss"] / float(n)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        if self.weight_decay > 0:  # PyTorch Adam(weight_decay=): L2 term added to the gradient
            grads = [g + (self.weight_decay / n) * ops.cast(v, g.dtype) for g, v in zip(grads, variables)]
        finite = tf.math.is_finite(terms["loss"])
        for g in grads:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
        return terms, grads, replicas.all_true(finite)

    def train_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        replicas = Replicas.current()
        terms, grads, finite = self.gradients(batch, replicas)
        replicas.apply_gradients(self.optimizer, grads, self.trainable_variables, self._should_update(terms, finite))
        # Eq. 8: the official code updates x_ref before it looks at the loss (also on steps it
        # skips for a loss <= 0); a non-finite step leaves it, like the weights, unchanged.
        # From the gathered batch: the same value on every replica.
        self.x_ref.assign(tf.where(finite, terms["x_ref"], self.x_ref))
        skipped = tf.cast(tf.logical_not(finite), tf.int64)
        self.nonfinite_steps.assign_add(skipped)
        self.train_steps.assign_add(1)
        # Every replica holds the same (global) terms; Keras metrics sum their state over the
        # replicas, so Mean trackers are unchanged and Sum trackers are divided by N.
        for k in LOSS_METRICS:
            # A skipped step adds no sample (where: NaN x weight 0 would still be NaN).
            self.trackers[k].update_state(tf.where(finite, terms[k], 0.0), sample_weight=tf.cast(finite, tf.float32))
        self.trackers["pdmi_dropped"].update_state(terms["pdmi_dropped"] / replicas.num)
        self.trackers["skipped_nonfinite"].update_state(tf.cast(skipped, tf.float32) / replicas.num)
        logs = {k: t.result() for k, t in self.trackers.items()}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras 3 reduces fit's logs under MultiWorkerMirroredStrategy with
            # strategy.reduce(MEAN, v, axis=0), which refuses scalars: give it one-element vectors.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def _should_update(self, terms, finite):
        """Whether the optimizer steps: finite loss and gradients and, with
        `skip_nonpositive_loss` (official: `if total_loss > 0`), a positive loss."""
        if self.skip_nonpositive_loss:
            return tf.logical_and(finite, terms["loss"] > 0)
        return finite

    def test_step(self, data):
        """The loss terms of a batch without training: dropout off, the batch's `perm` or the
        fixed pairing of step 0, and the denoising terms iff `evaluate_denoising`."""
        batch = data[0] if isinstance(data, tuple) else data
        outputs, mask = self.forward_batch(batch, training=False)
        perm = self.batch_pairing(batch, tf.constant(0, tf.int64), Replicas())
        terms = self.compute_losses(batch, outputs, perm, self.evaluate_denoising, mask)
        for k in LOSS_METRICS:
            self.trackers[k].update_state(terms[k])
        return {k: self.trackers[k].result() for k in LOSS_METRICS}

    def get_config(self):
        config = super().get_config()
        config.update(network=keras.saving.serialize_keras_object(self.network), loss_config=self.loss_config,
                      weight_decay=self.weight_decay, seed=self.seed,
                      skip_nonpositive_loss=self.skip_nonpositive_loss, evaluate_denoising=self.evaluate_denoising,
                      conv_algorithm=self.conv_algorithm)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def build_task(model_config: ModelConfig, loss_config: LossConfig, weight_decay: float = 0.0, seed: int = 0,
               skip_nonpositive_loss: bool = True, conv_algorithm: str = "direct") -> D2NetTask:
    """A built D2NetTask (not compiled) around a new network from typed configs."""
    task = D2NetTask(build_network(model_config, loss_config.topk_divisor), dataclasses.asdict(loss_config),
                     weight_decay, seed, skip_nonpositive_loss, conv_algorithm=conv_algorithm)
    task.build((None, None, model_config.feature_dim))
    return task

"""D2Net: the two-stream network (paper Sec. 3, Fig. 2) with its custom `train_step`."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from d2net_tf import losses as L
from d2net_tf.config import LossConfig, ModelConfig
from d2net_tf.layers import TemporalConvStream

LOSS_METRICS = ("loss", "dis", "snippet", "video", "w_fb", "w_fg", "w_bg")


def gather_statistics(stats: dict, ctx) -> dict:
    """All-gathers a dict of per-video [B_local, ...] float32 tensors along axis 0 in ONE
    collective: packed into [B_local, K] (K = sum of the per-video sizes), gathered to
    [B_global, K], unpacked. (One all_gather of a list of differently shaped tensors also
    fails to differentiate in TF 2.21: its gradient stacks them.)"""
    keys = sorted(stats)
    widths = [int(np.prod(stats[k].shape[1:])) for k in keys]
    flat = tf.concat([tf.reshape(tf.cast(stats[k], tf.float32), [-1, w]) for k, w in zip(keys, widths)], axis=1)
    gathered = ctx.all_gather(flat, axis=0)
    out = {}
    for k, part in zip(keys, tf.split(gathered, widths, axis=1)):
        out[k] = tf.reshape(part, [-1] + stats[k].shape[1:].as_list())
    return out


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
class D2Net(keras.Model):
    """D2-Net: RGB and flow TemporalConvStreams, averaged embeddings and TCAMs.

    Input: features [batch, time, D] (RGB = first D/2 dims, flow = last D/2) and an
    optional validity mask [batch, time]. Output dict:
      tcam [batch, time, C]        mean of the two streams' sigmoid outputs (T)
      embeddings [batch, time, D/2] mean of the streams' second-layer outputs (x)
      attention [batch, time]      bottom-up attention lambda' (Eq. 8) against x_ref
      video_scores [batch, C]      top-k mean of the TCAM (p)
    The background reference x_ref [D/2] is a non-trainable variable updated by an
    EMA in `train_step` (Eq. 8); it is saved in checkpoints and exported.

    Args:
      model_config: dict of `ModelConfig` fields.
      loss_config: dict of `LossConfig` fields.
      weight_decay: float, L2 coefficient added to the gradient when weight_decay_mode is "l2".
    """

    def __init__(self, model_config: dict | None = None, loss_config: dict | None = None,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.model_config = dataclasses.asdict(ModelConfig(**(model_config or {})))
        self.loss_config = dataclasses.asdict(LossConfig(**(loss_config or {})))
        self.weight_decay = float(weight_decay)
        m = ModelConfig(**self.model_config)  # validates itself
        self.mcfg, self.lcfg = m, LossConfig(**self.loss_config)
        stream_args = dict(
            channels=m.feature_dim // 2, num_classes=m.num_classes, kernel_size=m.kernel_size,
            dilation=m.dilation, classifier_kernel_size=m.classifier_kernel_size,
            classifier_dilation=m.classifier_dilation, residual=m.residual, dropout=m.dropout, init=m.init,
            embeddings_after_dropout=m.embeddings_after_dropout, rezero_padding=m.rezero_padding,
        )
        self.rgb_stream = TemporalConvStream(name="rgb_stream", **stream_args)
        self.flow_stream = TemporalConvStream(name="flow_stream", **stream_args)
        # Identical on every replica under tf.distribute (each replica assigns the same value,
        # computed from all-gathered statistics); "only_first_replica" lets a replica-context
        # assign of a mirrored variable take replica 0's value. One copy is saved.
        self.x_ref = self.add_weight(
            shape=(m.feature_dim // 2,), initializer="zeros", trainable=False, name="x_ref", dtype="float32",
            aggregation="only_first_replica",
        )
        self.train_steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                           name="train_steps", dtype="int64", aggregation="only_first_replica")
        self.nonfinite_steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                               name="nonfinite_steps", dtype="int64",
                                               aggregation="only_first_replica")
        self.trackers = {k: keras.metrics.Mean(name=k) for k in LOSS_METRICS}
        self.trackers["pdmi_dropped"] = keras.metrics.Sum(name="pdmi_dropped")
        self.trackers["skipped_nonfinite"] = keras.metrics.Sum(name="skipped_nonfinite")
        self.seed = 0
        self.skip_nonpositive_loss = True  # TrainConfig.skip_nonpositive_loss (set by training.create_model)
        self.evaluate_denoising = True  # test_step reports the denoising terms

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build(self, input_shape=None):
        d = self.mcfg.feature_dim
        shape = (None, None, d // 2)
        self.rgb_stream.build(shape)
        self.flow_stream.build(shape)
        self.built = True

    def call(self, features, snippet_mask=None, training=False, dropout_multiplier=None):
        """`dropout_multiplier` [batch, time, D] (optional, training only): the dropout masks
        (0 or 1 / keep) to use instead of random ones, RGB half then flow half."""
        half = self.mcfg.feature_dim // 2
        mask = snippet_mask
        if mask is None:
            mask = ops.ones(ops.shape(features)[:2], dtype="float32")
        mult_rgb = mult_flow = None
        if dropout_multiplier is not None:
            mult_rgb, mult_flow = dropout_multiplier[..., :half], dropout_multiplier[..., half:]
        emb_rgb, act_rgb = self.rgb_stream(features[..., :half], snippet_mask=mask, training=training,
                                           dropout_multiplier=mult_rgb)
        emb_flow, act_flow = self.flow_stream(features[..., half:], snippet_mask=mask, training=training,
                                              dropout_multiplier=mult_flow)
        embeddings = ops.cast(0.5 * (emb_rgb + emb_flow), "float32")
        tcam = 0.5 * (act_rgb + act_flow)
        return {
            "tcam": tcam,
            "embeddings": embeddings,
            "attention": L.bottom_up_attention(embeddings, self.x_ref) * ops.cast(mask, "float32"),
            "video_scores": L.video_scores(tcam, mask, self.lcfg.topk_divisor),
        }

    def packing_gap(self) -> int:
        """Zero snippets needed between packed videos: the widest 'same' padding of the TC layers."""
        m = self.mcfg
        return max((m.kernel_size - 1) * m.dilation // 2, (m.classifier_kernel_size - 1) * m.classifier_dilation // 2)

    def forward_batch(self, batch, training=False):
        """Outputs in the per-video layout [B, T, ...] and their mask [B, T], for a padded
        batch (features [B, T, D], mask) or a packed one (features [1, L, D], mask [1, L],
        unpack_index [B, T], video_mask [B, T]; see `data.pipeline.pack_videos`)."""
        outputs = self(batch["features"], snippet_mask=batch["mask"], training=training,
                       dropout_multiplier=batch.get("dropout_multiplier") if training else None)
        if "unpack_index" not in batch:
            return outputs, batch["mask"]
        unpacked = {k: unpack_videos(outputs[k], batch["unpack_index"], batch["video_mask"])
                    for k in ("tcam", "embeddings")}
        return unpacked, batch["video_mask"]

    def compute_losses(self, batch, outputs, perm, denoise, mask=None) -> dict:
        """All loss terms for a batch (labels) and its per-video outputs and mask [B, T]
        (default: the batch's padded-layout mask); `denoise` switches Eq. 9-10 on."""
        mask = batch["mask"] if mask is None else mask
        return L.d2net_losses(
            outputs["tcam"], outputs["embeddings"], batch["labels"], mask,
            self.x_ref, perm, self.lcfg, denoise=denoise,
        )

    def denoise_at(self, step):
        """Whether training step `step` (0-based) includes the denoising terms (Eq. 11 schedule)."""
        cfg = self.lcfg
        return tf.logical_and(step >= cfg.denoise_start_step, step % cfg.denoise_every == 0)

    def compute_global_losses(self, batch, outputs, step, mask=None, replica_context=None):
        """Loss terms of the GLOBAL batch from one replica's share of it.

        Each replica computes per-video statistics of its own videos, all-gathers them
        (replica order = order of the videos in the global batch) and evaluates the
        batch-level losses (Eq. 3 pairing, Eq. 4 mean, Eq. 9/10 pDMI, Eq. 8 mean) on the
        gathered [B_global, ...] tensors: every replica gets the single-device terms. The
        snippet statistics are measured against x_ref after this step's update, which needs
        the whole batch: they are computed and gathered second.
        The gradient of `all_gather` all-reduces (sums) the upstream gradient over the
        replicas, so the local gradient of the returned loss is N x this replica's share;
        `train_step` scales the loss by 1/N before differentiating. `batch["perm"]`, when
        given, is this replica's rows of the global pairing (global indices).
        Returns (terms, gathered statistics).
        """
        ctx = replica_context or tf.distribute.get_replica_context()
        mask = batch["mask"] if mask is None else mask
        cfg = self.lcfg
        stats = gather_statistics(
            L.per_video_statistics(outputs["tcam"], outputs["embeddings"], batch["labels"], mask, cfg), ctx)
        new_ref = L.updated_reference(stats, self.x_ref, cfg)
        ref = new_ref if cfg.snippet_uses_updated_xref else self.x_ref
        snippet = L.snippet_statistics(outputs["tcam"], outputs["embeddings"], batch["labels"], mask, ref, cfg)
        if snippet:
            stats.update(gather_statistics(snippet, ctx))
        perm = batch.get("perm")
        if perm is None:
            perm = self.pairing(tf.shape(stats["labels"])[0], step)
        else:
            perm = ctx.all_gather(perm, axis=0)
        terms = L.losses_from_statistics(stats, perm, cfg, denoise=self.denoise_at(step))
        terms["x_ref"] = new_ref
        return terms, stats

    def pairing(self, batch_size, step):
        """Eq. 3 pairing of a step (stateless, from the seed and step): a random permutation
        (official) or derangement (`pairing_allows_self=False`)."""
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)])
        return L.random_pairing(batch_size, tf.cast(seed, tf.int32), self.lcfg.pairing_allows_self)

    def train_step(self, data):
        ctx = tf.distribute.get_replica_context()
        if tf.distribute.has_strategy() and ctx is not None:  # inside strategy.run of a non-default strategy
            return self._distributed_train_step(data, ctx)
        batch = data[0] if isinstance(data, tuple) else data
        step = tf.convert_to_tensor(self.train_steps)
        perm = batch.get("perm")
        if perm is None:
            perm = self.pairing(tf.shape(batch["labels"])[0], step)
        with tf.GradientTape() as tape:
            outputs, mask = self.forward_batch(batch, training=True)
            terms = self.compute_losses(batch, outputs, perm, self.denoise_at(step), mask)
        variables = self.trainable_variables
        grads = tape.gradient(terms["loss"], variables)
        if self.weight_decay > 0:  # PyTorch Adam(weight_decay=): L2 term added to the gradient
            grads = [g + self.weight_decay * ops.cast(v, g.dtype) for g, v in zip(grads, variables)]
        finite = tf.math.is_finite(terms["loss"])
        for g in grads:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
        update = self._should_update(terms, finite)

        tf.cond(update, lambda: self.optimizer.apply(grads, variables), lambda: None)
        # Eq. 8: the official code updates x_ref before it looks at the loss (also on steps it
        # skips for a loss <= 0); a non-finite step leaves it, like the weights, unchanged.
        self.x_ref.assign(tf.where(finite, terms["x_ref"], self.x_ref))
        skipped = tf.cast(tf.logical_not(finite), tf.int64)
        self.nonfinite_steps.assign_add(skipped)
        self.train_steps.assign_add(1)
        return self._update_trackers(terms, finite, skipped, 1)

    def _should_update(self, terms, finite):
        """Whether the optimizer steps: finite loss and gradients and, with
        `skip_nonpositive_loss` (official: `if total_loss > 0`), a positive loss."""
        if self.skip_nonpositive_loss:
            return tf.logical_and(finite, terms["loss"] > 0)
        return finite

    def _update_trackers(self, terms, finite, skipped, num_replicas):
        # Every replica holds the same (global) terms; Keras metrics sum their state over the
        # replicas, so Mean trackers are unchanged and Sum trackers are divided by N.
        for k in LOSS_METRICS:
            # A skipped step adds no sample (where: NaN x weight 0 would still be NaN).
            self.trackers[k].update_state(tf.where(finite, terms[k], 0.0), sample_weight=tf.cast(finite, tf.float32))
        self.trackers["pdmi_dropped"].update_state(terms["pdmi_dropped"] / num_replicas)
        self.trackers["skipped_nonfinite"].update_state(tf.cast(skipped, tf.float32) / num_replicas)
        return {k: t.result() for k, t in self.trackers.items()}

    def distributed_gradients(self, batch, ctx=None):
        """(terms, local gradients, finite) of one replica's share of the global batch.

        The local gradients SUMMED over the replicas (what the Keras optimizer does in
        replica context) equal the single-device gradient of the global-batch loss plus
        the L2 term (added as weight_decay / N per replica).
        """
        ctx = ctx or tf.distribute.get_replica_context()
        n = ctx.num_replicas_in_sync
        step = tf.convert_to_tensor(self.train_steps)
        with tf.GradientTape() as tape:
            outputs, mask = self.forward_batch(batch, training=True)
            terms, _ = self.compute_global_losses(batch, outputs, step, mask, ctx)
            # all_gather's gradient sums the upstream gradient over the N replicas (each holds
            # the same global loss): scale by 1/N so the summed local gradients are exact.
            scaled = terms["loss"] / float(n)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if self.weight_decay > 0:
            grads = [g + (self.weight_decay / n) * ops.cast(v, g.dtype) for g, v in zip(grads, variables)]
        bad = tf.logical_not(tf.math.is_finite(terms["loss"]))
        for g in grads:
            bad = tf.logical_or(bad, tf.logical_not(tf.reduce_all(tf.math.is_finite(g))))
        # The skip decision must be the same on every replica (the optimizer's all-reduce is
        # a collective): any replica with a non-finite local gradient skips the step everywhere.
        finite = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(bad, tf.float32)) == 0.0
        return terms, grads, finite

    def _distributed_train_step(self, data, ctx):
        batch = data[0] if isinstance(data, tuple) else data
        n = ctx.num_replicas_in_sync
        terms, grads, finite = self.distributed_gradients(batch, ctx)
        variables = self.trainable_variables

        def cross_replica(distribution, grads, finite):
            # A cond whose branch calls merge_call (the optimizer update) must run in cross-replica
            # context (same pattern as keras LossScaleOptimizer._tf_apply).
            ok = distribution.experimental_local_results(finite)[0]

            def apply_fn():
                distribution.extended.call_for_each_replica(
                    lambda g: self.optimizer.apply(g, variables), args=(grads,))

            ops.cond(ok, apply_fn, lambda: None)

        ctx.merge_call(cross_replica, args=(grads, self._should_update(terms, finite)))
        # Eq. 8 EMA from the gathered batch: the same value on every replica.
        self.x_ref.assign(tf.where(finite, terms["x_ref"], self.x_ref))
        skipped = tf.cast(tf.logical_not(finite), tf.int64)
        self.nonfinite_steps.assign_add(skipped)
        self.train_steps.assign_add(1)
        return self._update_trackers(terms, finite, skipped, n)

    def test_step(self, data):
        batch = data[0] if isinstance(data, tuple) else data
        outputs, mask = self.forward_batch(batch, training=False)
        perm = batch.get("perm")
        if perm is None:
            perm = self.pairing(tf.shape(batch["labels"])[0], tf.constant(0, tf.int64))
        terms = self.compute_losses(batch, outputs, perm, self.evaluate_denoising, mask)
        for k in LOSS_METRICS:
            self.trackers[k].update_state(terms[k])
        return {k: self.trackers[k].result() for k in LOSS_METRICS}

    def get_config(self):
        config = super().get_config()
        config.update(model_config=self.model_config, loss_config=self.loss_config,
                      weight_decay=self.weight_decay)
        return config


def build_model(model_config: ModelConfig, loss_config: LossConfig, weight_decay: float = 0.0) -> D2Net:
    """A built D2Net from typed configs."""
    model = D2Net(dataclasses.asdict(model_config), dataclasses.asdict(loss_config), weight_decay)
    model.build((None, None, model_config.feature_dim))
    return model

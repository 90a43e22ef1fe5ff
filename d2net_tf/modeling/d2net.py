"""D2Net: the two-stream network of D2-Net (paper Sec. 3, Fig. 2), and nothing about training.

The losses, the pairing, the x_ref EMA and the optimizer step live in `d2net_tf.task`.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from d2net_tf.config import ModelConfig
from d2net_tf.losses.denoising import bottom_up_attention
from d2net_tf.modeling.layers import TemporalConvStream
from d2net_tf.scores import video_scores_tf


@keras.saving.register_keras_serializable(package="d2net_tf")
class D2Net(keras.Model):
    """D2-Net: RGB and flow TemporalConvStreams, averaged embeddings and TCAMs.

    Input: features [batch, time, D] (RGB = first D/2 dims, flow = last D/2) and an
    optional validity mask [batch, time]. Output dict:
      tcam [batch, time, C]        mean of the two streams' sigmoid outputs (T)
      embeddings [batch, time, D/2] mean of the streams' second-layer outputs (x)
      attention [batch, time]      bottom-up attention lambda' (Eq. 8) against x_ref
      video_scores [batch, C]      top-k mean of the TCAM (p, Sec. 3.1)
    The background reference x_ref [D/2] is a non-trainable variable, part of the network
    because the bottom-up attention output needs it; the training task updates it by the
    Eq. 8 EMA. It is saved in checkpoints and exported.

    Args:
      model_config: dict of `ModelConfig` fields (default: ModelConfig()).
      topk_divisor: float, 8.0. k = ceil(s / topk_divisor) of the video scores
        (`LossConfig.topk_divisor`: the classification loss reads the same scores).
      seed: int or None, None. Seed of the streams' dropout masks (RGB: seed, flow: seed + 1);
        None: drawn from Keras' global seeding (`keras.utils.set_random_seed`, as training does).
    """

    def __init__(self, model_config: dict | None = None, topk_divisor: float = 8.0, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        m = ModelConfig(**(model_config or {}))  # validates itself
        self.model_config = dataclasses.asdict(m)
        self.topk_divisor = float(topk_divisor)
        self.seed = seed
        self.mcfg = m
        stream_args = dict(
            channels=m.feature_dim // 2, num_classes=m.num_classes, kernel_size=m.kernel_size,
            dilation=m.dilation, classifier_kernel_size=m.classifier_kernel_size,
            classifier_dilation=m.classifier_dilation, residual=m.residual, dropout=m.dropout, init=m.init,
            embeddings_after_dropout=m.embeddings_after_dropout, rezero_padding=m.rezero_padding,
        )
        self.rgb_stream = TemporalConvStream(name="rgb_stream", seed=seed, **stream_args)
        self.flow_stream = TemporalConvStream(name="flow_stream", seed=None if seed is None else seed + 1,
                                              **stream_args)
        # Identical on every replica under tf.distribute (each replica assigns the same value,
        # computed from all-gathered statistics); "only_first_replica" lets a replica-context
        # assign of a mirrored variable take replica 0's value. One copy is saved.
        self.x_ref = self.add_weight(
            shape=(m.feature_dim // 2,), initializer="zeros", trainable=False, name="x_ref", dtype="float32",
            aggregation="only_first_replica",
        )

    def build(self, input_shape=None):
        shape = (None, None, self.mcfg.feature_dim // 2)
        self.rgb_stream.build(shape)
        self.flow_stream.build(shape)
        self.built = True

    def call(self, features, snippet_mask=None, training=False, dropout_multiplier=None, packed=False,
             conv_algorithm="direct"):
        """`dropout_multiplier` [batch, time, D] (optional, training only): the dropout masks
        (0 or 1 / keep) to use instead of random ones, RGB half then flow half.
        `packed=True`: features [1, L, D] and snippet_mask [1, L] are one packed sequence of
        `data.pipeline.pack_videos` with gap >= `packing_gap()`; the streams then compute on its
        rows (`TemporalConvStream._call_packed`). `conv_algorithm="winograd"` (packed sequences,
        training or inference): the TC layers by Winograd's algorithm (`modeling.winograd`), same
        outputs and gradients up to round-off."""
        half = self.mcfg.feature_dim // 2
        mask = snippet_mask
        if mask is None:
            mask = ops.ones(ops.shape(features)[:2], dtype="float32")
        mult_rgb = mult_flow = None
        if dropout_multiplier is not None:
            mult_rgb, mult_flow = dropout_multiplier[..., :half], dropout_multiplier[..., half:]
        emb_rgb, act_rgb = self.rgb_stream(features[..., :half], snippet_mask=mask, training=training,
                                           dropout_multiplier=mult_rgb, packed=packed,
                                           conv_algorithm=conv_algorithm)
        emb_flow, act_flow = self.flow_stream(features[..., half:], snippet_mask=mask, training=training,
                                              dropout_multiplier=mult_flow, packed=packed,
                                              conv_algorithm=conv_algorithm)
        embeddings = ops.cast(0.5 * (emb_rgb + emb_flow), "float32")
        tcam = 0.5 * (act_rgb + act_flow)
        return {
            "tcam": tcam,
            "embeddings": embeddings,
            "attention": bottom_up_attention(embeddings, self.x_ref) * ops.cast(mask, "float32"),
            "video_scores": video_scores_tf(tcam, mask, self.topk_divisor),
        }

    def packing_gap(self) -> int:
        """Zero snippets needed between packed videos: the widest 'same' padding of the TC layers."""
        return self.rgb_stream.reach

    def get_config(self):
        config = super().get_config()
        config.update(model_config=self.model_config, topk_divisor=self.topk_divisor, seed=self.seed)
        return config

    @classmethod
    def from_config(cls, config):
        # Configs saved while D2Net also was the training task carry the loss settings and the
        # weight decay: the network keeps the top-k divisor of its video scores from them.
        config = dict(config)
        loss_config = config.pop("loss_config", None) or {}
        config.pop("weight_decay", None)
        config.setdefault("topk_divisor", loss_config.get("topk_divisor", 8.0))
        return super().from_config(config)


def build_network(model_config: ModelConfig, topk_divisor: float = 8.0) -> D2Net:
    """A built D2Net from a typed config, under the global dtype policy (`d2net_tf.precision.dtype_policy`
    chooses it)."""
    network = D2Net(dataclasses.asdict(model_config), topk_divisor)
    network.build((None, None, model_config.feature_dim))
    return network

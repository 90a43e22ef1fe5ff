"""Serving: a trained D2Net network as a tf.Module with the TF Serving signatures.

`ServingModule` wraps the network (x_ref included, classlist baked in as a constant) with
two signatures:

  serving_default(features [B, T, D] float32, lengths [B] int32)
      -> tcam [B, T, C], attention [B, T], video_scores [B, C], embeddings [B, T, D/2]
  localize(features [T, D] float32, snippets_per_second [] float64)
      -> class_ids [n] int32, class_names [n] string, starts_s [n] float64,
         ends_s [n] float64, scores [n] float64

`scores_function` is the `serving_default` computation alone, which the TFLite and ONNX
converters (`d2net_tf.export`) convert. Writing a SavedModel: `d2net_tf.export.saved_model`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Sequence

import tensorflow as tf

from d2net_tf.errors import D2NetInputError
from d2net_tf.localization import LocalizationConfig
from d2net_tf.localization.tf_ops import localize_tf

SERVING_SIGNATURE = "serving_default"
LOCALIZE_SIGNATURE = "localize"
SERVING_OUTPUTS = ("tcam", "attention", "video_scores", "embeddings")
LOCALIZE_OUTPUTS = ("class_ids", "class_names", "starts_s", "ends_s", "scores")


def serving_input_signature(feature_dim: int, batch_size: int | None = None) -> list[tf.TensorSpec]:
    """features [batch, time, D] float32 and lengths [batch] int32; time is always dynamic."""
    return [tf.TensorSpec([batch_size, None, feature_dim], tf.float32, name="features"),
            tf.TensorSpec([batch_size], tf.int32, name="lengths")]


def scores_function(network, batch_size: int | None = None):
    """The `serving_default` computation of `network` as a tf.function (dynamic time; the
    batch is dynamic unless `batch_size` is given): features, lengths -> dict of SERVING_OUTPUTS."""

    def serve(features, lengths):
        mask = tf.sequence_mask(lengths, tf.shape(features)[1], dtype=tf.float32)
        out = network(features, snippet_mask=mask, training=False)
        return {k: tf.identity(out[k], name=k) for k in SERVING_OUTPUTS}

    return tf.function(serve, autograph=False,
                       input_signature=serving_input_signature(network.mcfg.feature_dim, batch_size))


class ServingModule(tf.Module):
    """A trained D2Net network with the `serving_default` and `localize` signatures.

    Args:
      model: built network `modeling.D2Net` (its variables, x_ref included, are tracked and saved).
      classlist: sequence of str class names (baked in as a constant).
      localization: LocalizationConfig used by `localize` (static).
    """

    def __init__(self, model, classlist: Sequence[str], localization: LocalizationConfig):
        super().__init__(name="d2net_serving")
        # Track the network's variables only (x_ref included): the network itself sits behind
        # closures, which tf.Module does not track.
        self._forward = lambda features, mask: model(features, snippet_mask=mask, training=False)
        self.model_variables = [getattr(v, "value", v) for v in model.weights]
        self.classlist = [str(c) for c in classlist]
        if len(self.classlist) != model.mcfg.num_classes:
            raise D2NetInputError(
                f"classlist has {len(self.classlist)} names, the model has {model.mcfg.num_classes} classes"
            )
        self.localization = localization
        d = model.mcfg.feature_dim
        self.serve = scores_function(model)
        self.localize = tf.function(
            self._localize, autograph=False,
            input_signature=[tf.TensorSpec([None, d], tf.float32, name="features"),
                             tf.TensorSpec([], tf.float64, name="snippets_per_second")],
        )

    def _localize(self, features, snippets_per_second):
        tf.debugging.assert_positive(snippets_per_second, message="snippets_per_second must be > 0")
        out = self._forward(features[None], tf.ones([1, tf.shape(features)[0]], tf.float32))
        tcam = tf.debugging.assert_all_finite(out["tcam"][0], "tcam must be finite (NaN/inf in features?)")
        det = localize_tf(tcam, out["attention"][0], snippets_per_second, self.localization)
        names = tf.constant(self.classlist, dtype=tf.string)
        det["class_names"] = tf.gather(names, det["class_ids"])
        return {k: tf.identity(det[k], name=k) for k in LOCALIZE_OUTPUTS}

    def signatures(self) -> dict:
        return {SERVING_SIGNATURE: self.serve.get_concrete_function(),
                LOCALIZE_SIGNATURE: self.localize.get_concrete_function()}

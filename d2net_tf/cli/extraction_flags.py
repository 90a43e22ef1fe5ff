"""Flags of the I3D feature extractor, shared by extract_features and localize --video."""

from __future__ import annotations

import sys

from absl import flags

from d2net_tf.features import protocol
from d2net_tf.features.extract import FeatureExtractor

FLAGS = flags.FLAGS


def define_extraction_flags() -> None:
    """The extractor's flags but --precision, which each command defines (`compute_flags`): I3D's
    alone in d2net-extract-features, I3D's and D2-Net's in d2net-localize."""
    flags.DEFINE_string("rgb_weights", None, "RGB I3D weights (d2net-convert-i3d; BUILD.md).")
    flags.DEFINE_string("flow_weights", None, "Flow I3D weights (d2net-convert-i3d; BUILD.md).")
    flags.DEFINE_integer("batch_snippets", 4, "Snippets per I3D call (memory ~ 16 frames x this).")
    flags.DEFINE_integer("short_side", protocol.SHORT_SIDE, "Resize the shorter side to this (protocol: 256).")
    flags.DEFINE_integer("crop", protocol.CROP, "Center crop size (protocol: 224; smaller only for quick tests).")
    flags.DEFINE_bool("progress", None, "Progress bars (default: when stderr is a terminal).")


def extractor_from_flags() -> FeatureExtractor:
    """The extractor the flags name (the weights are loaded now: missing ones stop before any work)."""
    progress = sys.stderr.isatty() if FLAGS.progress is None else FLAGS.progress
    return FeatureExtractor.from_weights(FLAGS.rgb_weights, FLAGS.flow_weights, FLAGS.precision,
                                         short_side=FLAGS.short_side, crop=FLAGS.crop,
                                         batch_snippets=FLAGS.batch_snippets, progress=progress)

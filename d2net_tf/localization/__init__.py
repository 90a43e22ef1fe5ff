"""Temporal action localization (Sec. 3.3): settings, the numpy post-processing and its TF twin.

  config.py      LocalizationConfig (the official / paper presets)
  detections.py  Detections, the table of scored segments
  numpy_ops.py   localize_video / localize_videos, tIoU and 1-D NMS (numpy, vectorised)
  tf_ops.py      localize_tf / nms_1d_tf, the same computation as TF ops (served graphs)

The package imports without TensorFlow (evaluation code relies on it); `tf_ops` is
imported by name where a graph is built.
"""

from d2net_tf.localization.config import (
    PRESETS,
    LocalizationConfig,
    localization_config,
)
from d2net_tf.localization.detections import Detections
from d2net_tf.localization.numpy_ops import (
    iter_localize_videos,
    localize_video,
    localize_videos,
    nms_1d,
    segment_iou,
    temporal_iou,
)

__all__ = [
    "PRESETS",
    "Detections",
    "LocalizationConfig",
    "iter_localize_videos",
    "localization_config",
    "localize_video",
    "localize_videos",
    "nms_1d",
    "segment_iou",
    "temporal_iou",
]

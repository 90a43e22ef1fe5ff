"""Running a trained D2Net over whole videos, then localizing and evaluating (Sec. 3.3)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from d2net_tf.data.dataset import VideoDataset
from d2net_tf.data.pipeline import evaluation_packs
from d2net_tf.evaluation import (
    ACTIVITYNET_TIOU_THRESHOLDS,
    THUMOS14_TIOU_THRESHOLDS,
    GroundTruth,
    classification_map,
    evaluate_detections,
)
from d2net_tf.localization import Detections, LocalizationConfig, localize_videos
from d2net_tf.scores import topk_mean


def compiled_forward(model) -> tf.types.experimental.GenericFunction:
    """model(features [b, T, D], mask [b, T]) as one tf.function with a dynamic batch and time."""
    d = model.mcfg.feature_dim

    @tf.function(input_signature=[tf.TensorSpec([None, None, d], tf.float32), tf.TensorSpec([None, None], tf.float32)])
    def forward(features, mask):
        return model(features, snippet_mask=mask, training=False)

    return forward


def predict_videos(
    model, dataset: VideoDataset, max_snippets: int = 50000
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (video_id, tcam [T, C], attention [T], video_scores [C]) for every video.

    Videos run packed into sequences of at most `max_snippets` snippets with zero gaps as
    wide as the convolutions' padding (no convolution on padding); each output equals the
    video run alone.
    """
    forward = compiled_forward(model)
    divisor = model.lcfg.topk_divisor
    for idx, batch, starts in evaluation_packs(dataset, model.packing_gap(), max_snippets):
        out = forward(tf.constant(batch["features"]), tf.constant(batch["mask"]))
        tcam, att = out["tcam"].numpy()[0], out["attention"].numpy()[0]
        for i, s in zip(idx, starts):
            t = dataset.features[i].shape[0]
            video_tcam = tcam[s : s + t]
            yield str(dataset.video_ids[i]), video_tcam, att[s : s + t], topk_mean(video_tcam, divisor)


def default_tiou_thresholds(dataset_name: str) -> tuple[float, ...]:
    return ACTIVITYNET_TIOU_THRESHOLDS if dataset_name.lower().startswith("activitynet") else THUMOS14_TIOU_THRESHOLDS


def evaluate_model(
    model,
    dataset: VideoDataset,
    localization: LocalizationConfig,
    *,
    protocol: str = "anet",
    tiou_thresholds=None,
    remove_ambiguous: bool | None = None,
    max_snippets: int = 50000,
    wtalc_options: dict | None = None,
) -> tuple[dict, Detections]:
    """Localization mAP (and classification mAP) of `model` on all videos of `dataset`.
    `wtalc_options`: keyword options of `evaluate_detections` for `protocol="wtalc"`."""
    scores, order = [], []

    def tcams():
        for vid, tcam, att, p in predict_videos(model, dataset, max_snippets):
            scores.append(p)
            order.append(vid)
            yield vid, tcam, att

    detections = localize_videos(tcams(), dataset.snippets_per_second, localization)
    gt = GroundTruth.from_dataset(dataset)
    thresholds = tiou_thresholds or default_tiou_thresholds(dataset.name)
    result = evaluate_detections(gt, detections, thresholds, protocol=protocol, remove_ambiguous=remove_ambiguous,
                                 **(wtalc_options or {}))
    pos = {v: i for i, v in enumerate(dataset.video_ids.tolist())}
    labels = dataset.labels[[pos[v] for v in order]]
    result["classification_mAP"] = float(classification_map(np.stack(scores), labels))
    return result, detections

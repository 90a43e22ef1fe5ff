"""Running a trained D2Net over whole videos, then localizing and evaluating (Sec. 3.3).

`predict_videos` / `evaluate_model` take a network (`evaluate_predictions` the outputs of
`predict_videos`); `evaluate_model_dir` and `localize_sources` / `localize_files` take a model
directory and use its record (`d2net_tf.model_dir`): its network, class names, feature rate and
LocalizationConfig.
"""

from __future__ import annotations

import os
import weakref
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from d2net_tf.data.benchmarks import THUMOS14, find_benchmark
from d2net_tf.data.dataset import VideoDataset, validate_features
from d2net_tf.data.pipeline import evaluation_packs
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.errors import D2NetInputError
from d2net_tf.evaluation import GroundTruth, classification_map, evaluate_detections
from d2net_tf.localization import Detections, LocalizationConfig, localize_videos
from d2net_tf.model_dir import restore_network
from d2net_tf.modeling.winograd import check_conv_algorithm
from d2net_tf.modeling.winograd import supports as winograd_supports
from d2net_tf.scores import topk_mean


_FORWARDS: dict[tuple[int, bool, str], tf.types.experimental.GenericFunction] = {}


def compiled_forward(model, packed: bool = False, conv_algorithm: str = "direct"
                     ) -> tf.types.experimental.GenericFunction:
    """model(features [b, T, D], mask [b, T]) as one tf.function with a dynamic batch and time.

    `packed=True`: b = 1 and the sequence is a packed one (`data.pipeline.pack_videos`, or one
    whole video), computed on its rows with 'valid' convolutions (`D2Net.call(packed=True)`);
    only "tcam" and "attention" are returned (the sequence's top-k video scores would mix its
    videos), so the graph does not compute the rest. `conv_algorithm="winograd"` (packed only):
    the TC layers by Winograd's algorithm (`modeling.winograd`: fewer multiplications, more
    round-off).

    One function per (model, packed, conv_algorithm), kept while the model lives: a training run evaluates the
    same network many times, and a new tf.function per evaluation would trace again each time.
    The function holds the model weakly (its graph captures the variables, which it reads at
    every call), so the cache does not keep a model alive."""
    key = (id(model), packed, conv_algorithm)
    if conv_algorithm != "direct":
        check_conv_algorithm(conv_algorithm)
        taps = sorted({model.mcfg.kernel_size, model.mcfg.classifier_kernel_size} - {1})
        if not packed or not all(winograd_supports(k) for k in taps):
            raise D2NetInputError(f"conv_algorithm={conv_algorithm!r} runs on packed sequences with 3- to 5-tap "
                                  f"layers (here packed={packed}, taps {taps})")
    if key not in _FORWARDS:
        model_ref, d = weakref.ref(model), model.mcfg.feature_dim

        @tf.function(input_signature=[tf.TensorSpec([None, None, d], tf.float32),
                                      tf.TensorSpec([None, None], tf.float32)])
        def forward(features, mask):
            out = model_ref()(features, snippet_mask=mask, training=False, packed=packed,
                              conv_algorithm=conv_algorithm)
            return {k: out[k] for k in ("tcam", "attention")} if packed else out

        _FORWARDS[key] = forward
        weakref.finalize(model, _FORWARDS.pop, key, None)
    return _FORWARDS[key]


def predict_videos(
    model, dataset: VideoDataset, max_snippets: int = 50000, conv_algorithm: str = "direct"
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (video_id, tcam [T, C], attention [T], video_scores [C]) for every video.

    Videos run packed into sequences of at most `max_snippets` snippets with zero gaps as
    wide as the convolutions' padding (no convolution on padding); each output equals the
    video run alone (`conv_algorithm`: see `compiled_forward`).
    """
    forward = compiled_forward(model, packed=True, conv_algorithm=conv_algorithm)
    divisor = model.topk_divisor
    for idx, batch, starts in evaluation_packs(dataset, model.packing_gap(), max_snippets):
        out = forward(tf.constant(batch["features"]), tf.constant(batch["mask"]))
        tcam, att = out["tcam"].numpy()[0], out["attention"].numpy()[0]
        for i, s in zip(idx, starts):
            t = dataset.features[i].shape[0]
            video_tcam = tcam[s : s + t]
            yield str(dataset.video_ids[i]), video_tcam, att[s : s + t], topk_mean(video_tcam, divisor)


def default_tiou_thresholds(dataset_name: str) -> tuple[float, ...]:
    """The tIoU thresholds of the dataset's benchmark (THUMOS14's for a dataset of no known benchmark)."""
    return (find_benchmark(dataset_name) or THUMOS14).tiou_thresholds


def evaluate_model(
    model,
    dataset: VideoDataset,
    localization: LocalizationConfig,
    *,
    max_snippets: int = 50000,
    conv_algorithm: str = "direct",
    **evaluate_options,
) -> tuple[dict, Detections]:
    """Localization mAP (and classification mAP) of `model` on all videos of `dataset`:
    `evaluate_predictions` of `predict_videos` (`conv_algorithm`: see `compiled_forward`;
    `evaluate_options`: protocol, tiou_thresholds, remove_ambiguous, wtalc_options)."""
    return evaluate_predictions(predict_videos(model, dataset, max_snippets, conv_algorithm), dataset, localization,
                                **evaluate_options)


def evaluate_predictions(
    predictions: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    dataset: VideoDataset,
    localization: LocalizationConfig,
    *,
    protocol: str = "anet",
    tiou_thresholds=None,
    remove_ambiguous: bool | None = None,
    wtalc_options: dict | None = None,
) -> tuple[dict, Detections]:
    """Localization mAP (and classification mAP) of `predictions`, (video_id, tcam, attention,
    video_scores) of every video of `dataset` as `predict_videos` yields them.
    `wtalc_options`: keyword options of `evaluate_detections` for `protocol="wtalc"`."""
    scores, order = [], []

    def tcams():
        for vid, tcam, att, p in predictions:
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


def evaluate_model_dir(model_dir: str, test_set: VideoDataset, *, which: str = "best", preset: str | None = None,
                       precision: str = "float32", conv_algorithm: str = "direct",
                       **evaluate_options) -> tuple[dict, Detections]:
    """`evaluate_model` of MODEL_DIR's `which` checkpoint, computing in `precision` with `conv_algorithm`,
    on `test_set`, with the model directory's LocalizationConfig (or that of `preset` when given).
    `evaluate_options`: the other keyword options of `evaluate_model` (protocol, tiou_thresholds, ...)."""
    network, record = restore_network(model_dir, which, precision)
    if test_set.feature_dim != record.config.model.feature_dim:
        raise D2NetInputError(f"{model_dir}: the model expects {record.config.model.feature_dim}-dim features, "
                              f"the data has {test_set.feature_dim}")
    result, detections = evaluate_model(network, test_set, record.localization_for(preset),
                                        conv_algorithm=conv_algorithm, **evaluate_options)
    result.update({"model_dir": model_dir, "checkpoint": which, "precision": precision,
                   "conv_algorithm": conv_algorithm, "localization_preset": preset or record.localization_preset})
    return result, detections


def feature_files(path: str) -> list[tuple[str, str]]:
    """(video_id, file) pairs of a .npy file or a folder of .npy files (video id = file name)."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".npy"))
        if not files:
            raise D2NetInputError(f"{path}: no .npy feature files in this folder")
        return [(f[:-4], os.path.join(path, f)) for f in files]
    if not os.path.exists(path):
        raise D2NetInputError(f"{path}: no such file")
    return [(os.path.splitext(os.path.basename(path))[0], path)]


def localize_sources(model_dir: str, sources: Callable[[], Iterable[tuple[str, np.ndarray, str]]],
                     fps: float | None = None, preset: str | None = None, which: str = "best",
                     conv_algorithm: str = "direct", precision: str = "float32"):
    """Localizes every video of `sources()`, an iterator of (video_id, [T, D] features, where
    they came from), with MODEL_DIR's `which` checkpoint computing in `precision`.

    `fps` defaults to the model's training feature rate and `preset` to the model directory's
    LocalizationConfig; `conv_algorithm`: see `compiled_forward`. Returns (detections,
    {first video id: (tcam, attention)}, classlist, fps).
    """
    network, record = restore_network(model_dir, which, precision)
    fps = fps or record.snippets_per_second
    forward = compiled_forward(network, packed=True, conv_algorithm=conv_algorithm)  # a packed sequence of one
    outputs = {}

    def videos():
        for vid, array, source in sources():
            feats = validate_features(array, source=source, video_id=vid, feature_dim=record.config.model.feature_dim)
            out = forward(tf.constant(feats[None]), tf.ones((1, feats.shape[0])))
            tcam, att = out["tcam"].numpy()[0], out["attention"].numpy()[0]
            if not outputs:
                outputs[vid] = (tcam, att)
            yield vid, tcam, att

    return localize_videos(videos(), fps, record.localization_for(preset)), outputs, list(record.classlist), fps


def localize_files(model_dir: str, path: str, fps: float | None = None, preset: str | None = None,
                   which: str = "best", conv_algorithm: str = "direct", precision: str = "float32"):
    """`localize_sources` on the feature files of `path` (a .npy file or a folder of them)."""
    return localize_sources(model_dir, lambda: ((vid, load_npy(file), file) for vid, file in feature_files(path)),
                            fps, preset, which, conv_algorithm, precision)

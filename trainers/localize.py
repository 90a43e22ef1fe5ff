"""Localize actions in feature files, or directly in videos, with a trained model.

    python -m trainers.localize --model_dir DIR --features video.npy [--fps 1.5625] \
        --output detections.json [--plot tcam.png] [--ground_truth GT.json]
    python -m trainers.localize --model_dir DIR --video clip.mp4 --rgb_weights i3d_rgb.weights.h5 \
        --flow_weights i3d_flow.weights.h5 --output detections.json [--plot tcam.png]

`--features` is one `[T, D]` .npy file or a folder of them (video id = file name). `--video` is
a video file or a folder of videos: their I3D features (d2net_tf.features, D = 2048) are
extracted in memory first (the model must have been trained on D = 2048 I3D features).
Writes ActivityNet-format detections; `--plot` draws, for one video, the TCAM of the
detected classes, lambda', the detections and (with --ground_truth) the ground truth.
"""

from __future__ import annotations

import os

from absl import app, flags

from d2net_tf.data.dataset import validate_features
from d2net_tf.data.safe_npy import load_npy
from d2net_tf.errors import D2NetInputError
from d2net_tf.cli.extraction_flags import define_extraction_flags
from d2net_tf.cli import run_cli

flags.DEFINE_string("model_dir", None, "Trained model directory (trainers.fit --model_dir).")
flags.DEFINE_string("features", None, "A [T, D] .npy feature file or a folder of them.")
flags.DEFINE_string("video", None, "A video file or a folder of videos (instead of --features): features are "
                    "extracted with the I3D weights of --rgb_weights / --flow_weights.")
flags.DEFINE_float("fps", None, "Feature rate in snippets per second (default: the model's training data rate).")
flags.DEFINE_string("output", None, "Detections JSON (ActivityNet format).")
flags.DEFINE_string("plot", None, "PNG of the TCAM, attention and detections (first video when a folder).")
flags.DEFINE_string("ground_truth", None, "Optional ActivityNet-style ground truth JSON drawn in --plot.")
flags.DEFINE_enum("localization", "official", ["official", "paper"], "Post-processing preset (Sec. 3.3).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of --model_dir.")
define_extraction_flags()
FLAGS = flags.FLAGS


def feature_files(path: str) -> list[tuple[str, str]]:
    """(video_id, file) pairs of a .npy file or a folder of .npy files."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if f.endswith(".npy"))
        if not files:
            raise D2NetInputError(f"{path}: no .npy feature files in this folder")
        return [(f[:-4], os.path.join(path, f)) for f in files]
    if not os.path.exists(path):
        raise D2NetInputError(f"{path}: no such file")
    return [(os.path.splitext(os.path.basename(path))[0], path)]


def localize_files(model_dir: str, path: str, fps: float | None, preset: str, checkpoint: str = "best"):
    """Runs the model over each feature file; returns (detections, per-video outputs, classlist, fps)."""
    return localize_sources(model_dir, lambda: ((vid, load_npy(file), file) for vid, file in feature_files(path)),
                            fps, preset, checkpoint)


def localize_sources(model_dir: str, sources, fps: float | None, preset: str, checkpoint: str = "best"):
    """`localize_files` on `sources()`: an iterator of (video_id, [T, D] features, where they came from)."""
    import json

    import tensorflow as tf

    from d2net_tf.data.benchmarks import I3D_SNIPPETS_PER_SECOND
    from d2net_tf.inference import compiled_forward
    from d2net_tf.localization import localize_videos
    from d2net_tf.training import localization_config, restore_model

    model, cfg = restore_model(model_dir, checkpoint)
    with open(os.path.join(model_dir, "config.json")) as f:
        record = json.load(f)
    classlist = record["classlist"]
    fps = fps or record.get("snippets_per_second", I3D_SNIPPETS_PER_SECOND)
    loc = localization_config(preset, record.get("dataset", "thumos14"), cfg.loss.topk_divisor)
    forward = compiled_forward(model)
    outputs = {}

    def videos():
        for vid, array, source in sources():
            feats = validate_features(array, source=source, video_id=vid, feature_dim=cfg.model.feature_dim)
            out = forward(tf.constant(feats[None]), tf.ones((1, feats.shape[0])))
            tcam, att = out["tcam"].numpy()[0], out["attention"].numpy()[0]
            if not outputs:
                outputs[vid] = (tcam, att)
            yield vid, tcam, att

    return localize_videos(videos(), fps, loc), outputs, classlist, fps


def video_sources(path: str):
    """`sources` of `localize_sources` for a video or a folder of videos: their I3D features,
    extracted with the --*_weights flags (loaded now, so missing weights stop before anything runs)."""
    from d2net_tf.cli.extraction_flags import extractor_from_flags
    from d2net_tf.features.video import list_videos

    videos = list_videos(path)
    extractor = extractor_from_flags()
    return lambda: ((vid, extractor.extract(file, vid).features, f"{file} (I3D features)") for vid, file in videos)


@run_cli
def main(argv):
    del argv
    from d2net_tf.evaluation import load_ground_truth_json, write_detections_json

    if not (FLAGS.model_dir and (FLAGS.features or FLAGS.video) and FLAGS.output):
        raise D2NetInputError("--model_dir, --features (or --video) and --output are required")
    if FLAGS.features and FLAGS.video:
        raise D2NetInputError("give --features or --video, not both")
    if FLAGS.video:
        detections, outputs, classlist, fps = localize_sources(
            FLAGS.model_dir, video_sources(FLAGS.video), FLAGS.fps, FLAGS.localization, FLAGS.checkpoint
        )
    else:
        detections, outputs, classlist, fps = localize_files(
            FLAGS.model_dir, FLAGS.features, FLAGS.fps, FLAGS.localization, FLAGS.checkpoint
        )
    write_detections_json(FLAGS.output, detections, classlist)
    print(f"{len(detections)} detections in {len(set(detections.video_ids.tolist()))} videos -> {FLAGS.output}")
    if FLAGS.plot:
        from d2net_tf.plotting import plot_tcam

        vid, (tcam, att) = next(iter(outputs.items()))
        gt = None
        if FLAGS.ground_truth:
            table = load_ground_truth_json(FLAGS.ground_truth, classlist=classlist)
            sel = table.video_ids == vid
            gt = (table.class_ids[sel], table.starts[sel], table.ends[sel])
        plot_tcam(FLAGS.plot, tcam, att, detections.select(detections.video_ids == vid), classlist, fps,
                  ground_truth=gt)
        print(f"plot of {vid} -> {FLAGS.plot}")


if __name__ == "__main__":
    app.run(main)

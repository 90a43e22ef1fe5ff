"""Localize actions in feature files, or directly in videos, with a trained model.

    d2net-localize --model_dir DIR --features video.npy [--fps 1.5625] \
        --output detections.json [--plot tcam.png] [--ground_truth GT.json]
    d2net-localize --model_dir DIR --video clip.mp4 --rgb_weights i3d_rgb.weights.h5 \
        --flow_weights i3d_flow.weights.h5 --output detections.json [--plot tcam.png]
    (from a checkout: python -m trainers.localize ...)

`--features` is one `[T, D]` .npy file or a folder of them (video id = file name). `--video` is
a video file or a folder of videos: their I3D features (d2net_tf.features, D = 2048) are
extracted in memory first (the model must have been trained on D = 2048 I3D features).
Writes ActivityNet-format detections; `--plot` draws, for one video, the TCAM of the
detected classes, lambda', the detections and (with --ground_truth) the ground truth.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.compute_flags import start_runtime
from d2net_tf.cli.extraction_flags import define_extraction_flags, extractor_from_flags
from d2net_tf.cli.inference_flags import define_inference_flags
from d2net_tf.errors import D2NetInputError

flags.DEFINE_string("model_dir", None, "Trained model directory (d2net-fit --model_dir).")
flags.DEFINE_string("features", None, "A [T, D] .npy feature file or a folder of them.")
flags.DEFINE_string("video", None, "A video file or a folder of videos (instead of --features): features are "
                    "extracted with the I3D weights of --rgb_weights / --flow_weights.")
flags.DEFINE_float("fps", None, "Feature rate in snippets per second (default: the model's training data rate).")
flags.DEFINE_string("output", None, "Detections JSON (ActivityNet format).")
flags.DEFINE_string("plot", None, "PNG of the TCAM, attention and detections (first video when a folder).")
flags.DEFINE_string("ground_truth", None, "Optional ActivityNet-style ground truth JSON drawn in --plot.")
flags.DEFINE_enum("localization", None, ["official", "paper"],
                  "Post-processing preset (Sec. 3.3); default: the settings stored in --model_dir.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of --model_dir.")
define_extraction_flags()
define_inference_flags("Compute precision of D2-Net and, with --video, of I3D: float32, or mixed_bfloat16 "
                       "(bfloat16 matmuls, float32 weights).")
flags.mark_flags_as_required(["model_dir", "output"])
FLAGS = flags.FLAGS


def video_sources(path: str):
    """`sources` of `inference.localize_sources` for a video or a folder of videos: their I3D features,
    extracted with the --*_weights flags (loaded now, so missing weights stop before anything runs)."""
    from d2net_tf.features.video import list_videos

    videos = list_videos(path)
    extractor = extractor_from_flags()
    return lambda: ((vid, extractor.extract(file, vid).features, f"{file} (I3D features)") for vid, file in videos)


@run_cli
def main(argv):
    del argv
    from d2net_tf.evaluation import load_ground_truth_json, write_detections_json
    from d2net_tf.inference import localize_files, localize_sources

    if bool(FLAGS.features) == bool(FLAGS.video):
        raise D2NetInputError("give --features or --video (one of them)")
    start_runtime()  # before TensorFlow's first op
    if FLAGS.video:
        detections, outputs, classlist, fps = localize_sources(
            FLAGS.model_dir, video_sources(FLAGS.video), FLAGS.fps, FLAGS.localization, FLAGS.checkpoint,
            FLAGS.conv_algorithm, FLAGS.precision,
        )
    else:
        detections, outputs, classlist, fps = localize_files(
            FLAGS.model_dir, FLAGS.features, FLAGS.fps, FLAGS.localization, FLAGS.checkpoint, FLAGS.conv_algorithm,
            FLAGS.precision,
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


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

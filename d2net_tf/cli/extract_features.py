"""Extract I3D features (RGB + TV-L1 flow, D = 2048) from videos into the per-video layout.

    d2net-extract-features --videos FILE_OR_DIR --rgb_weights i3d_rgb.weights.h5 \
        --flow_weights i3d_flow.weights.h5 --out DATA_DIR [--subset test] [--precision mixed_bfloat16]
    (from a checkout: python -m trainers.extract_features ...)

Writes DATA_DIR/features/{video_id}.npy ([snippets, 2048] float32, RGB then flow) and
DATA_DIR/ground_truth.json (ActivityNet style, each video with its duration; annotations are
kept when the file exists), which `--data_layout=per_video --data_dir=DATA_DIR` reads. Videos
already written are skipped (resumable); every file is written atomically. The weights come
from the public kinetics-i3d checkpoints, converted once (d2net-convert-i3d; BUILD.md, "Video
features").
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.extraction_flags import define_extraction_flags, extractor_from_flags
from d2net_tf.cli.compute_flags import define_cpu_allocator_flag, define_precision_flag, start_runtime
from d2net_tf.errors import D2NetInputError

flags.DEFINE_string("videos", None, "A video file or a folder of videos (video id = file name without extension).")
flags.DEFINE_string("out", None, "Output data folder (features/{video_id}.npy and ground_truth.json).")
flags.DEFINE_string("subset", "test", "Subset written for new videos in ground_truth.json.")
flags.DEFINE_enum("on_error", "stop", ["stop", "skip"], "A video that cannot be decoded: stop (one-line error, "
                  "exit 2) or skip it with a warning (exit 2 at the end if any was skipped).")
define_extraction_flags()
define_precision_flag("I3D compute precision.")
define_cpu_allocator_flag()
flags.mark_flags_as_required(["videos", "out"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.features.extract import FeatureStore, extract_videos
    from d2net_tf.features.video import list_videos

    videos = list_videos(FLAGS.videos)
    start_runtime()  # before TensorFlow's first op
    store = FeatureStore(FLAGS.out, FLAGS.subset)
    todo = [(vid, path) for vid, path in videos if not store.done(vid)]
    if len(todo) < len(videos):
        print(f"{len(videos) - len(todo)} of {len(videos)} videos already extracted in {FLAGS.out}: skipped")
    if not todo:
        return
    extractor = extractor_from_flags()
    failed = extract_videos(extractor, todo, store, FLAGS.on_error)
    seconds = extractor.seconds_of_video
    print(f"{len(todo) - len(failed)} videos ({seconds:.1f} s of video, {extractor.snippets} snippets) -> "
          f"{store.feature_dir}, {store.json_path}")
    print("seconds per second of video: " + ", ".join(
        f"{stage} {t / max(seconds, 1e-9):.3f}" for stage, t in extractor.timings.items()))
    if extractor.precision_error is not None:
        e = extractor.precision_error
        print(f"{FLAGS.precision} vs float32 on the first {e['snippets']} snippets: max abs error {e['max_abs']:.3g} "
              f"(features up to {e['reference_max_abs']:.3g}), relative L2 error {e['relative_l2']:.3g}")
    if failed:
        raise D2NetInputError(f"{len(failed)} of {len(todo)} videos could not be decoded (skipped: {', '.join(failed)})")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

"""Extract I3D features (RGB + TV-L1 flow, D = 2048) from videos into the per-video layout.

    python -m trainers.extract_features --videos FILE_OR_DIR --rgb_weights i3d_rgb.weights.h5 \
        --flow_weights i3d_flow.weights.h5 --out DATA_DIR [--subset test] [--precision mixed_bfloat16]

Writes DATA_DIR/features/{video_id}.npy ([snippets, 2048] float32, RGB then flow) and
DATA_DIR/ground_truth.json (ActivityNet style, each video with its duration; annotations are
kept when the file exists), which `--data_layout=per_video --data_dir=DATA_DIR` reads. Videos
already written are skipped (resumable); every file is written atomically. The weights come
from the public kinetics-i3d checkpoints, converted once (BUILD.md, "Video features").
"""

from __future__ import annotations

from absl import app, flags

from d2net_tf.errors import D2NetInputError
from d2net_tf.features.extract import define_extraction_flags
from trainers.common import run_cli

flags.DEFINE_string("videos", None, "A video file or a folder of videos (video id = file name without extension).")
flags.DEFINE_string("out", None, "Output data folder (features/{video_id}.npy and ground_truth.json).")
flags.DEFINE_string("subset", "test", "Subset written for new videos in ground_truth.json.")
flags.DEFINE_enum("on_error", "stop", ["stop", "skip"], "A video that cannot be decoded: stop (one-line error, "
                  "exit 2) or skip it with a warning (exit 2 at the end if any was skipped).")
define_extraction_flags()
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    import sys

    from d2net_tf.features.extract import FeatureStore, extractor_from_flags
    from d2net_tf.features.video import VideoError, list_videos, require

    if not (FLAGS.videos and FLAGS.out):
        raise D2NetInputError("--videos and --out are required")
    videos = list_videos(FLAGS.videos)
    store = FeatureStore(FLAGS.out, FLAGS.subset)
    todo = [(vid, path) for vid, path in videos if not store.done(vid)]
    if len(todo) < len(videos):
        print(f"{len(videos) - len(todo)} of {len(videos)} videos already extracted in {FLAGS.out}: skipped")
    if not todo:
        return
    extractor = extractor_from_flags()
    outer = require("tqdm").tqdm(total=len(todo), unit="video", desc="videos", disable=not extractor.progress,
                                 position=0, dynamic_ncols=True)
    failed = []
    for vid, path in todo:
        try:
            result = extractor.extract(path, vid, position=1)
        except VideoError as e:
            if FLAGS.on_error == "stop":
                raise
            failed.append(vid)
            print(f"warning: skipped: {e}", file=sys.stderr)
            continue
        finally:
            outer.update(1)
        store.add(vid, result)
    outer.close()
    done = len(todo) - len(failed)
    seconds = extractor.seconds_of_video
    print(f"{done} videos ({seconds:.1f} s of video, {extractor.snippets} snippets) -> {store.feature_dir}, "
          f"{store.json_path}")
    print("seconds per second of video: " + ", ".join(
        f"{stage} {t / max(seconds, 1e-9):.3f}" for stage, t in extractor.timings.items()))
    if extractor.precision_error is not None:
        e = extractor.precision_error
        print(f"{FLAGS.precision} vs float32 on the first {e['snippets']} snippets: max abs error {e['max_abs']:.3g} "
              f"(features up to {e['reference_max_abs']:.3g}), relative L2 error {e['relative_l2']:.3g}")
    if failed:
        raise D2NetInputError(f"{len(failed)} of {len(todo)} videos could not be decoded (skipped: {', '.join(failed)})")


if __name__ == "__main__":
    app.run(main)

"""Converts a W-TALC dataset (pickled object arrays) once into the pickle-free per-video layout.

    d2net-convert-wtalc --features X-I3D-JOINTFeatures.npy --annotations X-Annotations/ --out DIR
    (from a checkout: python -m d2net_tf.cli.convert_wtalc ...)

Writes DIR/features/{video_id}.npy and DIR/ground_truth.json (d2net_tf.data.convert), which
`--data_layout=per_video --data_dir=DIR` reads.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command

flags.DEFINE_string("features", None, "W-TALC {DATASET}-I3D-JOINTFeatures.npy.")
flags.DEFINE_string("annotations", None, "W-TALC {DATASET}-Annotations/ folder.")
flags.DEFINE_string("out", None, "Output folder (features/ and ground_truth.json).")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --out.")
flags.mark_flags_as_required(["features", "annotations", "out"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.data.convert import convert

    summary = convert(FLAGS.features, FLAGS.annotations, FLAGS.out, overwrite=FLAGS.overwrite)
    print(f"wrote {summary['num_videos']} videos ({summary['total_snippets']} snippets, "
          f"{summary['classes']} classes) to {summary['out']}")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

"""W-TALC annotations -> ActivityNet-style ground-truth JSON.

    d2net-ground-truth --annotations DIR --subset test --output gt.json
    (from a checkout: python -m d2net_tf.cli.ground_truth ...)

The conversion is `d2net_tf.data.wtalc.write_ground_truth` (layout: `data.ground_truth_json`).
Segments with end <= start (ten in ActivityNet1.2) cannot be written as valid
ActivityNet segments and are skipped, with a warning on stderr.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command

flags.DEFINE_string("annotations", None, "W-TALC {DATASET}-Annotations folder.")
flags.DEFINE_string("subset", None, "e.g. test / validation (default: all videos).")
flags.DEFINE_string("output", None, "Output JSON path.")
flags.mark_flags_as_required(["annotations", "output"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.data.wtalc import write_ground_truth

    payload = write_ground_truth(FLAGS.annotations, FLAGS.output, FLAGS.subset)
    db = payload["database"]
    n_seg = sum(len(v["annotations"]) for v in db.values())
    print(f"wrote {FLAGS.output}: {len(db)} videos, {n_seg} segments, {len(payload['classlist'])} classes")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

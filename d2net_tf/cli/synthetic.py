"""Writes a synthetic W-TALC-layout dataset (real annotations, generated I3D-like features).

    d2net-synthetic --preset thumos14 --out DIR [--feature_dim 2048] [--seed 0]
    (from a checkout: python -m d2net_tf.cli.synthetic ...)

The feature model is described in d2net_tf.data.synthetic; same seed, same bytes.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.data.synthetic import PRESETS

flags.DEFINE_enum("preset", "thumos14", sorted(PRESETS), "Which real annotations to put features on.")
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_integer("feature_dim", None, "Feature width D (even); default: 2048, or 32 for tiny.")
flags.DEFINE_integer("seed", 0, "Random seed (same seed, same bytes).")
flags.DEFINE_bool("overwrite", False, "Replace an existing dataset of the same name in --out.")
flags.mark_flag_as_required("out")
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.data.synthetic import generate

    summary = generate(FLAGS.preset, FLAGS.out, FLAGS.feature_dim, FLAGS.seed, overwrite=FLAGS.overwrite, log=print)
    print(f"wrote {summary['dataset']} ({summary['preset']}) to {FLAGS.out}")
    print(f"  videos: {summary['num_videos']} " + ", ".join(f"{k}: {v}" for k, v in summary["videos_per_subset"].items()))
    print(f"  snippets: {summary['total_snippets']}  feature_dim: {summary['feature_dim']}")
    print(f"  size on disk: {summary['bytes_on_disk'] / 2**20:.1f} MiB  time: {summary['seconds']:.1f} s  "
          f"peak RSS: {summary['peak_rss_mb']:.0f} MiB")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

"""Flags and helpers shared by the command lines (data location, preset, error handling)."""

from __future__ import annotations

import os

from absl import flags, logging

from d2net_tf.cli import run_cli  # noqa: F401  (the commands import it from here)

from d2net_tf.data.benchmarks import BENCHMARK_NAMES, benchmark_for, find_benchmark
from d2net_tf.data.dataset import VideoDataset
from d2net_tf.errors import D2NetInputError

FLAGS = flags.FLAGS


def define_data_flags() -> None:
    flags.DEFINE_enum("dataset", "thumos14", list(BENCHMARK_NAMES), "Benchmark the data follows.")
    flags.DEFINE_enum("data_layout", "wtalc", ["wtalc", "per_video"], "Layout of --data_dir.")
    flags.DEFINE_string("data_dir", None, "W-TALC layout: folder with {DATASET}-I3D-JOINTFeatures.npy and "
                        "{DATASET}-Annotations/. per_video: folder with features/{vid}.npy and ground_truth.json.")
    flags.DEFINE_enum("synthetic", "none", ["none", "tiny", *BENCHMARK_NAMES],
                      "Generate this synthetic dataset into --data_dir first when it does not exist yet.")
    flags.DEFINE_integer("feature_dim", 2048, "Feature dimension D (RGB half + flow half).")
    flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic data generator.")
    flags.DEFINE_integer("min_snippets", 2, "Videos shorter than this are skipped (one warning).")


def load_dataset_from_flags() -> VideoDataset:
    """The dataset named by the data flags (generating the synthetic one when asked)."""
    if not FLAGS.data_dir:
        raise D2NetInputError("--data_dir is required")
    name = benchmark_for(FLAGS.dataset).file_prefix
    if FLAGS.synthetic != "none":
        from d2net_tf.data import synthetic

        feat = os.path.join(FLAGS.data_dir, f"{name}-I3D-JOINTFeatures.npy")
        if not os.path.exists(feat):
            logging.info("generating the %s synthetic dataset in %s", FLAGS.synthetic, FLAGS.data_dir)
            print(f"generating the synthetic {FLAGS.synthetic} dataset (D={FLAGS.feature_dim}) in {FLAGS.data_dir}")
            synthetic.generate(FLAGS.synthetic, FLAGS.data_dir, feature_dim=FLAGS.feature_dim, seed=FLAGS.synthetic_seed)
    if FLAGS.data_layout == "wtalc":
        from d2net_tf.data.wtalc import load_wtalc_dataset

        return load_wtalc_dataset(FLAGS.data_dir, name, feature_dim=FLAGS.feature_dim,
                                  min_snippets=FLAGS.min_snippets, warn=logging.warning)
    from d2net_tf.data.per_video import load_per_video_dataset

    return load_per_video_dataset(
        os.path.join(FLAGS.data_dir, "features"), os.path.join(FLAGS.data_dir, "ground_truth.json"),
        feature_dim=FLAGS.feature_dim, min_snippets=FLAGS.min_snippets, name=name, warn=logging.warning,
    )


def split_train_test(dataset: VideoDataset) -> tuple[VideoDataset, VideoDataset]:
    bench = find_benchmark(dataset.name)
    # A dataset of no known benchmark (a per-video JSON of one's own): the generic subset names.
    train_subset, test_subset = bench.splits if bench else ("training", "validation")
    return dataset.subset(train_subset), dataset.subset(test_subset)

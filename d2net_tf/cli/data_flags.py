"""Flags naming a dataset folder (its benchmark, layout, feature width, synthetic generation)."""

from __future__ import annotations

from absl import flags, logging

from d2net_tf.data.benchmarks import BENCHMARK_NAMES
from d2net_tf.data.dataset import VideoDataset
from d2net_tf.data.loading import LAYOUTS, load_dataset

FLAGS = flags.FLAGS


def define_data_flags() -> None:
    flags.DEFINE_enum("dataset", "thumos14", list(BENCHMARK_NAMES), "Benchmark the data follows.")
    flags.DEFINE_enum("data_layout", "wtalc", list(LAYOUTS), "Layout of --data_dir.")
    flags.DEFINE_string("data_dir", None, "W-TALC layout: folder with {DATASET}-I3D-JOINTFeatures.npy and "
                        "{DATASET}-Annotations/. per_video: folder with features/{vid}.npy and ground_truth.json.")
    flags.DEFINE_enum("synthetic", "none", ["none", "tiny", *BENCHMARK_NAMES],
                      "Generate this synthetic dataset into --data_dir first when it does not exist yet.")
    flags.DEFINE_integer("feature_dim", 2048, "Feature dimension D (RGB half + flow half).")
    flags.DEFINE_integer("synthetic_seed", 0, "Seed of the synthetic data generator.")
    flags.DEFINE_integer("min_snippets", 2, "Videos shorter than this are skipped (one warning).")


def dataset_from_flags() -> VideoDataset:
    """The dataset the data flags name (generating the synthetic one when asked)."""
    return load_dataset(FLAGS.data_dir, FLAGS.dataset, FLAGS.data_layout, feature_dim=FLAGS.feature_dim,
                        min_snippets=FLAGS.min_snippets,
                        synthetic=None if FLAGS.synthetic == "none" else FLAGS.synthetic,
                        synthetic_seed=FLAGS.synthetic_seed, warn=logging.warning)

"""Opening a dataset folder by its layout, and the benchmark's train / test split of it.

Layouts of `data_dir`:
  wtalc      {prefix}-I3D-JOINTFeatures.npy and {prefix}-Annotations/ (d2net_tf.data.wtalc)
  per_video  features/{video_id}.npy and ground_truth.json (d2net_tf.data.per_video)
  per_video_mmap  the same, read lazily by memory-mapping (d2net_tf.data.sources.NpyVideo)
  tfrecord   indexed TFRecord shards + tfrecord_index.json (d2net_tf.data.sources; written by
             d2net-convert-tfrecord); read lazily, one seek per video
where prefix is the benchmark's W-TALC file prefix (e.g. Thumos14reduced).
"""

from __future__ import annotations

import os
from typing import Callable

from d2net_tf.data.benchmarks import benchmark_for, find_benchmark
from d2net_tf.data.dataset import VideoDataset
from d2net_tf.errors import D2NetInputError

LAYOUTS = ("wtalc", "per_video", "per_video_mmap", "tfrecord")


def load_dataset(data_dir: str, benchmark: str = "thumos14", layout: str = "wtalc", *, feature_dim: int = 2048,
                 min_snippets: int = 2, synthetic: str | None = None, synthetic_seed: int = 0,
                 warn: Callable[[str], None] = print,
                 log: Callable[[str], None] = print) -> VideoDataset:
    """The dataset in `data_dir` (named after `benchmark`'s file prefix).

    With `synthetic` (a d2net_tf.data.synthetic preset) the synthetic dataset is generated
    into `data_dir` first when its feature file does not exist yet (reported through `log`).
    Videos shorter than `min_snippets` are skipped with one `warn`.
    """
    if not data_dir:
        raise D2NetInputError("--data_dir is required")
    if layout not in LAYOUTS:
        raise D2NetInputError(f"data layout must be one of {LAYOUTS}, got {layout!r}")
    name = benchmark_for(benchmark).file_prefix
    if synthetic:
        from d2net_tf.data import synthetic as synthetic_data

        if not os.path.exists(os.path.join(data_dir, f"{name}-I3D-JOINTFeatures.npy")):
            log(f"generating the synthetic {synthetic} dataset (D={feature_dim}) in {data_dir}")
            synthetic_data.generate(synthetic, data_dir, feature_dim=feature_dim, seed=synthetic_seed)
    if layout == "wtalc":
        from d2net_tf.data.wtalc import load_wtalc_dataset

        return load_wtalc_dataset(data_dir, name, feature_dim=feature_dim, min_snippets=min_snippets, warn=warn)
    if layout == "tfrecord":
        from d2net_tf.data.sources import load_tfrecord_dataset

        return load_tfrecord_dataset(data_dir, feature_dim=feature_dim, min_snippets=min_snippets, warn=warn)
    from d2net_tf.data.per_video import load_per_video_dataset

    return load_per_video_dataset(
        os.path.join(data_dir, "features"), os.path.join(data_dir, "ground_truth.json"),
        feature_dim=feature_dim, min_snippets=min_snippets, name=name, warn=warn, mmap=layout == "per_video_mmap",
    )


def split_train_test(dataset: VideoDataset) -> tuple[VideoDataset, VideoDataset]:
    """(training, evaluation) subsets of `dataset`: its benchmark's, or training / validation."""
    bench = find_benchmark(dataset.name)
    # A dataset of no known benchmark (a per-video JSON of one's own): the generic subset names.
    train_subset, test_subset = bench.splits if bench else ("training", "validation")
    return dataset.subset(train_subset), dataset.subset(test_subset)

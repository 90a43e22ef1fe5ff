"""Writes a dataset (any --data_layout) as indexed TFRecord shards for `--data_layout=tfrecord`.

    python -m trainers.convert_tfrecord --dataset=activitynet12 --data_dir=/data/wtalc --out=/data/anet12-tfr \
        --num_shards=16

Writes OUT/{name}-{i:05d}-of-{n:05d}.tfrecord (one tf.train.Example per video) and
OUT/tfrecord_index.json (metadata, ground truth and (shard, offset, length) per video;
d2net_tf.data.sources). Videos are read and written one at a time: with
--data_layout=per_video_mmap the conversion needs O(one video) memory.
"""

from __future__ import annotations

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.data_flags import dataset_from_flags, define_data_flags

define_data_flags()
flags.DEFINE_string("out", None, "Output folder of the shards and tfrecord_index.json.")
flags.DEFINE_integer("num_shards", 8, "Number of shards (video j goes to shard j mod n).", lower_bound=1)
flags.mark_flags_as_required(["data_dir", "out"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.data.sources import write_indexed_tfrecords

    dataset = dataset_from_flags()
    index = write_indexed_tfrecords(dataset, FLAGS.out, FLAGS.num_shards)
    print(f"wrote {len(dataset)} videos of {dataset.name} (D={dataset.feature_dim}) into {FLAGS.num_shards} shards; "
          f"index {index}")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

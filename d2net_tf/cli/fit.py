"""Train D2-Net and evaluate it on the benchmark's test split.

    d2net-fit --flagfile=configs/demo.flags
    (from a checkout: python -m trainers.fit --flagfile=configs/demo.flags)

Every field of ModelConfig / LossConfig / TrainConfig is a flag of the same name (the loss
variant is `--loss`); unset flags keep the value of `--preset` (d2net_tf.cli.training_flags).
MODEL_DIR receives the checkpoints, the TensorBoard logs, config.json and results.json.
"""

from __future__ import annotations

import os

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.compute_flags import start_runtime
from d2net_tf.cli.data_flags import dataset_from_flags
from d2net_tf.cli.training_flags import config_from_flags, define_training_flags, run_config_from_flags

define_training_flags()
flags.mark_flags_as_required(["model_dir", "data_dir"])
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    applied = start_runtime(FLAGS.cpu_thread_pools)  # before TensorFlow's first op
    from d2net_tf.data.loading import split_train_test
    from d2net_tf.evaluation import format_results_table
    from d2net_tf.training import train_and_evaluate

    dataset = dataset_from_flags()
    train_set, test_set = split_train_test(dataset)
    cfg = config_from_flags(dataset.feature_dim, dataset.num_classes)
    run = run_config_from_flags(FLAGS.model_dir)
    threads = (f"{applied['inter_op_threads']} x {applied['intra_op_threads']} threads" if "inter_op_threads" in applied
               else "TensorFlow's thread pools")
    threads += f", CPU allocator: {applied.get('cpu_allocator', 'tensorflow')}"
    print(f"training {cfg.loss.variant} ({FLAGS.preset} preset) on {dataset.name}: {len(train_set)} training "
          f"videos, {len(test_set)} evaluation videos, D={cfg.model.feature_dim}, {cfg.train.num_steps} steps, "
          f"{threads}")
    result = train_and_evaluate(cfg, run, train_set, test_set)
    if "mAP" in result:
        print(format_results_table(result))
        print(f"results written to {os.path.join(FLAGS.model_dir, 'results.json')}")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

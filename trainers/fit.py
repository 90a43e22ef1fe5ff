"""Train D2-Net: `python -m trainers.fit --flagfile=configs/demo.flags`.

Every field of ModelConfig / LossConfig / TrainConfig is a flag of the same name
(the loss variant is `--loss`); unset flags keep the value of `--preset`
(trainers/training_flags.py).
"""

from __future__ import annotations

import os

from absl import app, flags

from d2net_tf.evaluation import format_results_table
from d2net_tf.training import train_and_evaluate
from trainers.common import load_dataset_from_flags, run_cli, split_train_test
from trainers.training_flags import config_from_flags, run_config_from_flags

FLAGS = flags.FLAGS

@run_cli
def main(argv):
    del argv
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    dataset = load_dataset_from_flags()
    train_set, test_set = split_train_test(dataset)
    cfg = config_from_flags(dataset.feature_dim, dataset.num_classes)
    run = run_config_from_flags(FLAGS.model_dir)
    print(f"training {cfg.loss.variant} ({FLAGS.preset} preset) on {dataset.name}: {len(train_set)} training "
          f"videos, {len(test_set)} evaluation videos, D={cfg.model.feature_dim}, {cfg.train.num_steps} steps")
    result = train_and_evaluate(cfg, run, train_set, test_set)
    if "mAP" in result:
        print(format_results_table(result))
        print(f"results written to {os.path.join(FLAGS.model_dir, 'results.json')}")


if __name__ == "__main__":
    app.run(main)

"""The model directory (MODEL_DIR): the one owner of creating, guarding, restoring and reading it.

  record.py       config.json as one typed record (`ModelDir`): the config, the run options,
                  the LocalizationConfig, the class names, the dataset and its feature rate
  checkpoints.py  what a checkpoint holds; saving (a full disk is one clear error) and the
                  leftovers of interrupted saves
  lock.py         one writer per directory (`ModelDirLock`)
  restore.py      the trained network of a directory (`restore_network`)

Training creates a directory (`create_model_dir`, under `ModelDirLock`); evaluation,
localization and export read it with `read_model_dir` / `restore_network`, so they all
use the settings stored at training time.
"""

from d2net_tf.model_dir.checkpoints import (
    latest_checkpoint,
    network_checkpoint,
    remove_stale_temp_checkpoints,
    save_checkpoint,
    save_once,
    seed_generator_states,
    training_checkpoint,
)
from d2net_tf.model_dir.lock import ModelDirLock
from d2net_tf.model_dir.record import CONFIG_NAME, ModelDir, create_model_dir, read_model_dir
from d2net_tf.model_dir.restore import restore_network

__all__ = [
    "CONFIG_NAME",
    "ModelDir",
    "ModelDirLock",
    "create_model_dir",
    "latest_checkpoint",
    "network_checkpoint",
    "read_model_dir",
    "remove_stale_temp_checkpoints",
    "restore_network",
    "save_checkpoint",
    "save_once",
    "seed_generator_states",
    "training_checkpoint",
]

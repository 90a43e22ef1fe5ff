"""Checkpoints in a model directory: what they hold, finding the best / latest one, saving
(a full disk is one clear error, not a traceback) and removing what an interrupted save
leaves behind.

tf.train.Checkpoint writes a save into `ckpt-N_temp/` and renames it into place; the
`checkpoint` pointer moves only after that, so a failed or killed save leaves the pointer on
the last complete checkpoint and a `ckpt-N_temp/` folder that nothing reads.
"""

from __future__ import annotations

import os
import re
import shutil

import keras
import tensorflow as tf

from d2net_tf.errors import D2NetInputError, ModelDirError

_TEMP = re.compile(r"^ckpt-\d+_temp")
# Errors of a directory that cannot take the save (ENOSPC / EDQUOT are RESOURCE_EXHAUSTED in TF).
_WRITE_ERRORS = (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)


def seed_generator_states(model: keras.Model) -> list:
    """The state variables of the Keras seed generators (dropout) in `model`, in layer order.

    Keras does not track them for tf.train.Checkpoint; without them a resumed run would draw
    other dropout masks than an uninterrupted one.
    """
    states = []
    for layer in model._flatten_layers():
        for gen in getattr(layer, "_seed_generators", None) or []:
            states.append(gen.state)
    return states


def training_checkpoint(task) -> tf.train.Checkpoint:
    """A training checkpoint of `task` (task.D2NetTask): the network and step counters
    (`model`), the optimizer state and the dropout RNG states."""
    return tf.train.Checkpoint(model=task.checkpoint_state(), optimizer=task.optimizer,
                               dropout_rng=seed_generator_states(task))


def network_checkpoint(task) -> tf.train.Checkpoint:
    """The `model` part of `training_checkpoint` alone: what inference restores (no optimizer)."""
    return tf.train.Checkpoint(model=task.checkpoint_state())


def latest_checkpoint(model_dir: str, which: str = "best") -> str:
    """The checkpoint `which` (best: MODEL_DIR/best, falling back to the latest; latest) of MODEL_DIR."""
    folder = os.path.join(model_dir, "best") if which == "best" else model_dir
    path = tf.train.latest_checkpoint(folder) or tf.train.latest_checkpoint(model_dir)
    if path is None:
        raise D2NetInputError(f"{model_dir}: no checkpoint found")
    return path


def remove_stale_temp_checkpoints(model_dir: str) -> list[str]:
    """Removes `ckpt-N_temp*` left by interrupted saves in MODEL_DIR and MODEL_DIR/best; returns their paths.
    Only safe while no other job writes there (`lock.ModelDirLock`)."""
    removed = []
    for folder in (model_dir, os.path.join(model_dir, "best")):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if _TEMP.match(name):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)
                removed.append(path)
    return removed


def save_checkpoint(manager: tf.train.CheckpointManager, step: int) -> None:
    """`manager.save(step)`; a directory that cannot take it (full disk, no permission) raises
    ModelDirError naming the directory and its last complete checkpoint."""
    try:
        manager.save(checkpoint_number=step)
    except _WRITE_ERRORS as e:
        remove_stale_temp_checkpoints(manager.directory)  # frees the space the failed save took
        # TF's message: "{{function_node ...}} PATH; No space left on device [Op:SaveV2]"
        reason = re.sub(r"\s*\[Op:\w+\]$", "", (e.message or type(e).__name__).splitlines()[0]).rsplit("; ", 1)[-1]
        raise ModelDirError(
            f"{manager.directory}: could not write checkpoint ckpt-{step} ({reason}); the last complete "
            f"checkpoint there is {manager.latest_checkpoint or 'none'}; free space and run the same command "
            "again to resume"
        ) from e


def save_once(manager: tf.train.CheckpointManager, step: int) -> None:
    """Saves checkpoint `step` unless it is already the latest: re-writing the latest checkpoint
    in place could leave it half-written (index and data of different saves) if killed meanwhile."""
    latest = manager.latest_checkpoint
    if latest is not None and latest.endswith(f"-{step}"):
        return
    save_checkpoint(manager, step)

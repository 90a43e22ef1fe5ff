"""Checkpoint files in a model directory: saving (a full disk is one clear error, not a
traceback) and removing what an interrupted save leaves behind.

tf.train.Checkpoint writes a save into `ckpt-N_temp/` and renames it into place; the
`checkpoint` pointer moves only after that, so a failed or killed save leaves the pointer on
the last complete checkpoint and a `ckpt-N_temp/` folder that nothing reads.
"""

from __future__ import annotations

import os
import re
import shutil

import tensorflow as tf

from d2net_tf.errors import ModelDirError

_TEMP = re.compile(r"^ckpt-\d+_temp")
# Errors of a directory that cannot take the save (ENOSPC / EDQUOT are RESOURCE_EXHAUSTED in TF).
_WRITE_ERRORS = (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError)


def remove_stale_temp_checkpoints(model_dir: str) -> list[str]:
    """Removes `ckpt-N_temp*` left by interrupted saves in MODEL_DIR and MODEL_DIR/best; returns their paths.
    Only safe while no other job writes there (model_dir_lock)."""
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

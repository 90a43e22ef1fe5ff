"""The trained network of a model directory, for inference and export (no optimizer, no task)."""

from __future__ import annotations

from d2net_tf.model_dir.checkpoints import latest_checkpoint, network_checkpoint
from d2net_tf.model_dir.record import ModelDir, read_model_dir
from d2net_tf.modeling import D2Net
from d2net_tf.precision import dtype_policy
from d2net_tf.task import build_task


def restore_network(model_dir: str | ModelDir, which: str = "best", precision: str = "float32"
                    ) -> tuple[D2Net, ModelDir]:
    """(network, record) of MODEL_DIR: its config.json and the network of its `which`
    (best | latest) checkpoint, computing in `precision` (`d2net_tf.precision`; the weights are
    float32 in either, as training saved them)."""
    record = model_dir if isinstance(model_dir, ModelDir) else read_model_dir(model_dir)
    path = latest_checkpoint(record.path, which)
    cfg = record.config
    with dtype_policy(precision):
        task = build_task(cfg.model, cfg.loss)  # the task knows the checkpoint's object layout
    network_checkpoint(task).restore(path).expect_partial()
    return task.network, record

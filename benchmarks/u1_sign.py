"""Sign of the snippet-level joint matrix U1 (Eq. 9) over training, per saved checkpoint of a model directory.

    python -m benchmarks.u1_sign --model_dir runs/demo --data_dir data/demo [--feature_dim 256]

For every training video with pseudo-foreground and pseudo-background snippets (bottom-up attention of Eq. 8
against the checkpoint's x_ref, inference embeddings), a = mean top-down attention of the labelled classes at
the pseudo-foreground snippets and b = mean top-down attention over ALL classes at the pseudo-background ones
(what `losses.batch_losses.snippet_statistics` feeds Eq. 9). U1 = [[a, b], [1 - a, 1 - b]], det U1 = a - b.
pDMI = log(sigma_1 / sigma_2) is minimal both at (a, b) = (1, 0) and at (0, 1): where a < b its gradient
drives the TCAM towards the second, inverted, solution, and raising ANY one class on background snippets
raises b. Prints, per checkpoint, how many videos have a < b, the means of a and b, and the class that is
the top-down argmax on most pseudo-background snippets with its share. The synthetic dataset only.
"""

from __future__ import annotations

import argparse
import glob
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from benchmarks.common import markdown_table
from d2net_tf.config import LossConfig
from d2net_tf.data.loading import load_dataset, split_train_test
from d2net_tf.losses.denoising import bottom_up_attention, snippet_selection
from d2net_tf.losses.discriminative import top_down_attention
from d2net_tf.model_dir.checkpoints import network_checkpoint
from d2net_tf.model_dir.record import read_model_dir
from d2net_tf.task import build_task


def u1_sign(network, videos, cfg: LossConfig) -> dict:
    """The counts of the module docstring for one network, from the loss code's own attention and
    selection functions (Eq. 8, Sec. 3.1) and `cfg`'s thresholds."""
    a_all, b_all, bg_argmax = [], [], np.zeros(videos.labels.shape[1], int)
    for i in range(len(videos)):
        out = network(np.asarray(videos.features[i], np.float32)[None], training=False)
        labels = np.asarray(videos.labels[i], np.float32)[None]
        mask = tf.ones(out["tcam"].shape[:2])
        fg, bg = snippet_selection(bottom_up_attention(out["embeddings"], network.x_ref), mask, cfg)
        fg, bg = fg.numpy()[0] > 0, bg.numpy()[0] > 0
        if not (fg.any() and bg.any() and labels.any()):
            continue
        a_all.append(top_down_attention(out["tcam"], labels).numpy()[0][fg].mean())
        b_all.append(top_down_attention(out["tcam"]).numpy()[0][bg].mean())
        bg_argmax += np.bincount(out["tcam"].numpy()[0][bg].argmax(1), minlength=len(bg_argmax))
    a, b = np.array(a_all), np.array(b_all)
    top = int(bg_argmax.argmax())
    return {"videos": len(a), "a_below_b": int(np.sum(a < b)), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "bg_argmax_class": videos.classlist[top], "bg_argmax_share": float(bg_argmax[top] / bg_argmax.sum())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--feature_dim", type=int, default=256)
    args = parser.parse_args()
    data = load_dataset(args.data_dir, "thumos14", feature_dim=args.feature_dim, synthetic="thumos14",
                        warn=lambda m: None, log=lambda m: None)
    train, _ = split_train_test(data)
    record = read_model_dir(args.model_dir)
    paths = sorted({p[: -len(".index")] for p in glob.glob(os.path.join(args.model_dir, "ckpt-*.index"))},
                   key=lambda p: int(p.rsplit("-", 1)[1]))
    rows = []
    for path in paths:
        task = build_task(record.config.model, record.config.loss)
        network_checkpoint(task).restore(path).expect_partial()
        rows.append({"checkpoint": os.path.basename(path), **u1_sign(task.network, train, record.config.loss)})
    print(markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

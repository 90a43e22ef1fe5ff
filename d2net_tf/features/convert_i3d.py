"""Converts a public kinetics-i3d TensorFlow checkpoint to Keras weights for InceptionI3d.

The command line is d2net_tf.cli.convert_i3d (`d2net-convert-i3d`). The checkpoint is its
folder (one `*.index` in it) or the prefix (`.../model.ckpt`). Reads it with
tf.train.load_checkpoint and maps every variable: `{scope}/inception_i3d/...` (scope RGB or
Flow; the Kinetics-600 checkpoint has no scope) to the one InceptionI3d variable of that
name. The stream is read from the first convolution (3 input channels: RGB, 2: flow).
A model variable missing from the checkpoint, a checkpoint variable with no model variable
(other than optimizer state: `.../Momentum`, `global_step`) or a shape that differs (other than
Sonnet's [1, 1, 1, 1, C] batch-norm statistics for [C]) is an error that names it. Nothing is
downloaded: the checkpoints come from the kinetics-i3d repository (BUILD.md, "Video features").
"""

from __future__ import annotations

import glob
import os

import numpy as np

from d2net_tf.errors import D2NetInputError
from d2net_tf.features import protocol

FIRST_CONV = "Conv3d_1a_7x7/conv_3d/w"
TRAINING_STATE = ("/Momentum", "/ExponentialMovingAverage")  # optimizer slots: not model weights
IGNORED_NAMES = ("global_step",)


def checkpoint_prefix(path: str) -> str:
    """The checkpoint prefix of a folder with exactly one `*.index` file, or of a prefix path."""
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(path, "*.index")))
        if len(found) == 1:
            return found[0][: -len(".index")]
        if found:
            raise D2NetInputError(f"{path}: {len(found)} checkpoints in this folder; give one prefix (e.g. "
                                  f"{found[0][:-len('.index')]})")
        raise D2NetInputError(f"{path}: no checkpoint (*.index) in this folder: point --checkpoint at a kinetics-i3d "
                              f"folder such as data/checkpoints/rgb_imagenet")
    raise D2NetInputError(f"{path}: no such checkpoint folder or prefix")


def _squeezable(src: tuple[int, ...], dst: tuple[int, ...]) -> bool:
    return tuple(d for d in src if d != 1) == tuple(d for d in dst if d != 1) and int(np.prod(src)) == int(np.prod(dst))


def convert_checkpoint(checkpoint: str, out: str, stream: str | None = None) -> dict:
    """Writes `out` (.weights.h5, atomically); returns a summary (prefix, stream, scope, counts)."""
    import tensorflow as tf

    from d2net_tf.features.i3d import InceptionI3d, save_weights

    prefix = checkpoint_prefix(checkpoint)
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
    except (tf.errors.OpError, ValueError) as e:
        raise D2NetInputError(f"{prefix}: not a readable TensorFlow checkpoint ({str(e).splitlines()[0]})") from None
    firsts = [k for k in shapes if k == FIRST_CONV or k.endswith("/" + FIRST_CONV)]
    if len(firsts) != 1:
        raise D2NetInputError(f"{prefix}: {'no' if not firsts else len(firsts)} I3D first convolution "
                              f"(.../{FIRST_CONV}) in this checkpoint: not a kinetics-i3d checkpoint of one stream")
    scope = firsts[0][: -len(FIRST_CONV)]
    channels = shapes[firsts[0]][3] if len(shapes[firsts[0]]) == 5 else -1
    found = {c: s for s, c in protocol.STREAM_CHANNELS.items()}.get(channels)
    if found is None:
        raise D2NetInputError(f"{firsts[0]}: shape {list(shapes[firsts[0]])}, expected [7, 7, 7, 3 (RGB) or 2 (flow), 64]")
    if stream is not None and stream != found:
        raise D2NetInputError(f"{prefix}: a {found} checkpoint ({channels} input channels), not {stream}")
    logits_w = scope + "Logits/Conv3d_0c_1x1/conv_3d/w"
    if logits_w not in shapes:
        raise D2NetInputError(f"{prefix}: missing variable {logits_w}")
    model = InceptionI3d(channels, shapes[logits_w][-1])
    mapping = {scope + name: var for name, var in model.checkpoint_variables()}
    for name in sorted(shapes):
        if name not in mapping and not name.endswith(TRAINING_STATE) and name not in IGNORED_NAMES:
            raise D2NetInputError(f"{prefix}: checkpoint variable {name} (shape {list(shapes[name])}) is not mapped "
                                  f"to any InceptionI3d variable")
    for name, var in mapping.items():
        if name not in shapes:
            raise D2NetInputError(f"{prefix}: missing variable {name} (InceptionI3d expects shape {list(var.shape)})")
        if shapes[name] != tuple(var.shape) and not _squeezable(shapes[name], tuple(var.shape)):
            raise D2NetInputError(f"{prefix}: variable {name}: checkpoint shape {list(shapes[name])}, "
                                  f"InceptionI3d expects {list(var.shape)}")
    for name, var in mapping.items():
        var.assign(np.reshape(reader.get_tensor(name), var.shape).astype(np.float32))
    save_weights(model, out)
    params = sum(int(np.prod(v.shape)) for v in mapping.values())
    return {"prefix": prefix, "stream": found, "scope": scope, "variables": len(mapping), "parameters": params,
            "ignored": sorted(n for n in shapes if n not in mapping), "num_classes": model.num_classes}


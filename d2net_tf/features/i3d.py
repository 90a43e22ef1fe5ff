"""Inception-v1 I3D (Carreira & Zisserman, CVPR 2017) as Keras 3 layers, laid out like
deepmind/kinetics-i3d's `i3d.py` so that every checkpoint variable has one Keras variable.

Unit3D = Conv3D (SAME padding, no bias) + BatchNorm (offset only: Sonnet's default scale=False,
eps=1e-3) + ReLU. The network runs up to Mixed_5c; `features` averages Mixed_5c over time and
space (1024 per clip), `logits` is the original Kinetics head (average pool 2x7x7 VALID, 1x1x1
conv with bias, mean over time), kept so that converted weights can be checked on a known clip.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import keras
import tensorflow as tf

from d2net_tf.errors import D2NetInputError
from d2net_tf.features import protocol

BN_EPSILON = 1e-3  # snt.BatchNorm's default

# (endpoint, kind, arguments) in network order; a "mixed" block's filters are
# (branch 0: 1x1, branch 1: 1x1 -> 3x3, branch 2: 1x1 -> 3x3, branch 3: max pool -> 1x1).
ARCHITECTURE = (
    ("Conv3d_1a_7x7", "unit", dict(filters=64, kernel_size=(7, 7, 7), strides=(2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", dict(pool_size=(1, 3, 3), strides=(1, 2, 2))),
    ("Conv3d_2b_1x1", "unit", dict(filters=64, kernel_size=(1, 1, 1))),
    ("Conv3d_2c_3x3", "unit", dict(filters=192, kernel_size=(3, 3, 3))),
    ("MaxPool3d_3a_3x3", "pool", dict(pool_size=(1, 3, 3), strides=(1, 2, 2))),
    ("Mixed_3b", "mixed", dict(filters=(64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", "mixed", dict(filters=(128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", "pool", dict(pool_size=(3, 3, 3), strides=(2, 2, 2))),
    ("Mixed_4b", "mixed", dict(filters=(192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", "mixed", dict(filters=(160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", "mixed", dict(filters=(128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", "mixed", dict(filters=(112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", "mixed", dict(filters=(256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", "pool", dict(pool_size=(2, 2, 2), strides=(2, 2, 2))),
    # kinetics-i3d names Mixed_5b's second branch-2 conv "Conv3d_0a_3x3" (not 0b): kept.
    ("Mixed_5b", "mixed", dict(filters=(256, 160, 320, 32, 128, 128), branch_2b_name="Conv3d_0a_3x3")),
    ("Mixed_5c", "mixed", dict(filters=(384, 192, 384, 48, 128, 128))),
)
LOGITS = "Logits/Conv3d_0c_1x1"


def _mixed_units(filters, branch_2b_name="Conv3d_0b_3x3"):
    """(checkpoint sub-path, filters, kernel) of a mixed block's six units, in branch order."""
    f0, f1a, f1b, f2a, f2b, f3 = filters
    return (("Branch_0/Conv3d_0a_1x1", f0, 1), ("Branch_1/Conv3d_0a_1x1", f1a, 1),
            ("Branch_1/Conv3d_0b_3x3", f1b, 3), ("Branch_2/Conv3d_0a_1x1", f2a, 1),
            (f"Branch_2/{branch_2b_name}", f2b, 3), ("Branch_3/Conv3d_0b_1x1", f3, 1))


@keras.saving.register_keras_serializable("d2net_tf")
class Unit3D(keras.layers.Layer):
    """Conv3D (SAME, stride) [+ BatchNorm without scale] [+ activation]; variables named as in
    kinetics-i3d: conv_3d/w (+ conv_3d/b), batch_norm/{beta, moving_mean, moving_variance}."""

    def __init__(self, filters, kernel_size=(1, 1, 1), strides=(1, 1, 1), use_batch_norm=True, use_bias=False,
                 activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), tuple(kernel_size), tuple(strides)
        self.use_batch_norm, self.use_bias, self.activation = bool(use_batch_norm), bool(use_bias), activation
        self.conv = keras.layers.Conv3D(self.filters, self.kernel_size, self.strides, padding="same",
                                        use_bias=self.use_bias, name="conv_3d", dtype=self.dtype_policy)
        self.bn = (keras.layers.BatchNormalization(epsilon=BN_EPSILON, center=True, scale=False, name="batch_norm",
                                                   dtype=self.dtype_policy) if self.use_batch_norm else None)
        self.act = keras.activations.get(activation) if activation else None

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, training=False)
        return self.act(x) if self.act is not None else x

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def checkpoint_variables(self) -> Iterator[tuple[str, object]]:
        yield "conv_3d/w", self.conv.kernel
        if self.use_bias:
            yield "conv_3d/b", self.conv.bias
        if self.bn is not None:
            yield "batch_norm/beta", self.bn.beta
            yield "batch_norm/moving_mean", self.bn.moving_mean
            yield "batch_norm/moving_variance", self.bn.moving_variance

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "use_batch_norm": self.use_batch_norm, "use_bias": self.use_bias,
                "activation": self.activation}


@keras.saving.register_keras_serializable("d2net_tf")
class InceptionBlock(keras.layers.Layer):
    """An Inception "Mixed" block: four branches concatenated on channels."""

    def __init__(self, filters, branch_2b_name="Conv3d_0b_3x3", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.branch_2b_name = tuple(int(f) for f in filters), branch_2b_name
        self.paths = [p for p, _, _ in _mixed_units(self.filters, branch_2b_name)]
        self.units = [Unit3D(f, (k, k, k), name=p.replace("/", "_"), dtype=self.dtype_policy)
                      for p, f, k in _mixed_units(self.filters, branch_2b_name)]
        self.pool = keras.layers.MaxPooling3D((3, 3, 3), (1, 1, 1), padding="same", name="Branch_3_MaxPool3d_0a_3x3",
                                              dtype=self.dtype_policy)

    def build(self, input_shape):
        u = self.units
        for unit in (u[0], u[1], u[3], u[5]):
            unit.build(input_shape)
        u[2].build(u[1].compute_output_shape(input_shape))
        u[4].build(u[3].compute_output_shape(input_shape))

    def call(self, x):
        u = self.units
        return keras.ops.concatenate([u[0](x), u[2](u[1](x)), u[4](u[3](x)), u[5](self.pool(x))], axis=-1)

    def compute_output_shape(self, input_shape):
        f = self.filters
        return (*input_shape[:-1], f[0] + f[2] + f[4] + f[5])

    def checkpoint_variables(self) -> Iterator[tuple[str, object]]:
        for path, unit in zip(self.paths, self.units):
            for name, var in unit.checkpoint_variables():
                yield f"{path}/{name}", var

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "branch_2b_name": self.branch_2b_name}


@keras.saving.register_keras_serializable("d2net_tf")
class InceptionI3d(keras.Model):
    """I3D on [batch, frames, height, width, in_channels] clips scaled to [-1, 1].

    `call` returns the Mixed_5c output averaged over time and space: [batch, 1024] (any frame
    count and spatial size; the protocol uses 16 x 224 x 224). `logits(x)` is the Kinetics head.
    """

    def __init__(self, in_channels=3, num_classes=400, **kwargs):
        kwargs.setdefault("name", "inception_i3d")
        super().__init__(**kwargs)
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.blocks = []
        for endpoint, kind, args in ARCHITECTURE:
            if kind == "unit":
                layer = Unit3D(**args, name=endpoint, dtype=self.dtype_policy)
            elif kind == "mixed":
                layer = InceptionBlock(**args, name=endpoint, dtype=self.dtype_policy)
            else:
                layer = keras.layers.MaxPooling3D(padding="same", name=endpoint, dtype=self.dtype_policy, **args)
            self.blocks.append(layer)
        self.logits_pool = keras.layers.AveragePooling3D((2, 7, 7), (1, 1, 1), padding="valid", name="Logits_pool",
                                                         dtype=self.dtype_policy)
        self.logits_conv = Unit3D(self.num_classes, use_batch_norm=False, use_bias=True, activation=None,
                                  name="Logits_Conv3d_0c_1x1", dtype=self.dtype_policy)
        self.build((None, protocol.SNIPPET_FRAMES, 64, 64, self.in_channels))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.blocks:
            if isinstance(layer, (Unit3D, InceptionBlock)):
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.logits_conv.build((*shape[:-1], protocol.STREAM_DIM))
        self.built = True

    def mixed_5c(self, x):
        for layer in self.blocks:
            x = layer(x)
        return x

    def call(self, x):
        return keras.ops.mean(self.mixed_5c(x), axis=(1, 2, 3))

    def logits(self, x):
        y = self.logits_conv(self.logits_pool(self.mixed_5c(x)))
        return keras.ops.mean(y, axis=(1, 2, 3))

    def checkpoint_variables(self) -> Iterator[tuple[str, object]]:
        """(checkpoint name below the `{scope}/inception_i3d/` prefix, Keras variable), every variable once."""
        for (endpoint, kind, _), layer in zip(ARCHITECTURE, self.blocks):
            if kind != "pool":
                for name, var in layer.checkpoint_variables():
                    yield f"{endpoint}/{name}", var
        for name, var in self.logits_conv.checkpoint_variables():
            yield f"{LOGITS}/{name}", var

    def get_config(self):
        return {"name": self.name, "in_channels": self.in_channels, "num_classes": self.num_classes,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def conv_flops(frames: int = protocol.SNIPPET_FRAMES, size: int = protocol.CROP, in_channels: int = 3) -> float:
    """Forward FLOPs (2 per multiply-add) of the convolutions up to Mixed_5c for one clip.

    SAME padding: an output dimension is ceil(input / stride); pools, BN and ReLU are not counted.
    """

    def conv(shape, filters, k, s=(1, 1, 1)):
        t, h, w, c = shape
        out = (math.ceil(t / s[0]), math.ceil(h / s[1]), math.ceil(w / s[2]), filters)
        return out, 2.0 * out[0] * out[1] * out[2] * filters * c * k[0] * k[1] * k[2]

    shape, total = (frames, size, size, in_channels), 0.0
    for _, kind, args in ARCHITECTURE:
        if kind == "unit":
            shape, f = conv(shape, args["filters"], args["kernel_size"], args.get("strides", (1, 1, 1)))
            total += f
        elif kind == "pool":
            s = args["strides"]
            shape = (math.ceil(shape[0] / s[0]), math.ceil(shape[1] / s[1]), math.ceil(shape[2] / s[2]), shape[3])
        else:
            f0, f1a, f1b, f2a, f2b, f3 = args["filters"]
            for a, b in ((f1a, f1b), (f2a, f2b)):
                mid, fa = conv(shape, a, (1, 1, 1))
                _, fb = conv(mid, b, (3, 3, 3))
                total += fa + fb
            total += conv(shape, f0, (1, 1, 1))[1] + conv(shape, f3, (1, 1, 1))[1]
            shape = (*shape[:3], f0 + f1b + f2b + f3)
    return total


def weights_hint(stream: str, path: str) -> str:
    scope = {"rgb": "rgb_imagenet", "flow": "flow_imagenet"}[stream]
    return (f"convert the public kinetics-i3d checkpoint once (github.com/deepmind/kinetics-i3d, "
            f"data/checkpoints/{scope}): python -m d2net_tf.cli.convert_i3d "
            f"--checkpoint kinetics-i3d/data/checkpoints/{scope} --out {path} (BUILD.md, 'Video features')")


def save_weights(model: InceptionI3d, out: str) -> None:
    """model.save_weights(out) through a temporary file and a rename (never a half-written file)."""
    import tempfile

    if not out.endswith(".weights.h5"):
        raise D2NetInputError(f"{out}: the Keras weights file name must end with .weights.h5")
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".weights.h5")
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _h5_shapes(path: str) -> dict[str, tuple[int, ...]]:
    import h5py

    shapes: dict[str, tuple[int, ...]] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: shapes.__setitem__(name, obj.shape) if isinstance(obj, h5py.Dataset) else None)
    return shapes


def load_i3d(path: str | None, stream: str, dtype: str = "float32") -> InceptionI3d:
    """The I3D of `stream` ("rgb" / "flow") with the converted weights at `path` (.weights.h5).

    A missing file, a file of the other stream or not an I3D weights file: D2NetInputError (one
    line, with where to get the weights). Nothing is downloaded.
    """
    channels = protocol.STREAM_CHANNELS[stream]
    if not path or not os.path.isfile(path):
        raise D2NetInputError(f"no I3D {stream} weights at {path or '(no --%s_weights given)' % stream}: "
                              + weights_hint(stream, path or f"i3d_{stream}.weights.h5"))
    try:
        shapes = _h5_shapes(path)
    except OSError as e:
        raise D2NetInputError(f"{path}: not a Keras .weights.h5 file ({str(e).splitlines()[0]})") from None
    first = [s for s in shapes.values() if len(s) == 5 and s[:3] == (7, 7, 7)]
    classes = [s[4] for s in shapes.values() if len(s) == 5 and s[:4] == (1, 1, 1, protocol.STREAM_DIM)]
    if not first or not classes:
        raise D2NetInputError(f"{path}: not an I3D weights file written by d2net_tf.cli.convert_i3d")
    if first[0][3] != channels:
        raise D2NetInputError(f"{path}: I3D weights for {first[0][3]}-channel input, but the {stream} stream "
                              f"needs {channels} channels (RGB 3, flow 2): wrong --{stream}_weights?")
    model = InceptionI3d(channels, classes[0], dtype=dtype)
    try:
        model.load_weights(path)
    except ValueError as e:
        raise D2NetInputError(f"{path}: does not fit InceptionI3d ({str(e).splitlines()[0]})") from None
    return model


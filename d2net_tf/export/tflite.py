"""A trained network's `serving_default` outputs as a TFLite / LiteRT flatbuffer.

The flatbuffer has one signature `serving_default`: features [1, T, D] float32 and
lengths [1] int32 -> tcam [1, T, C], attention [1, T], video_scores [1, C],
embeddings [1, T, D/2]. T is dynamic: resize the input at run time
(`interpreter.resize_tensor_input` + `allocate_tensors`, or the signature runner, which
resizes by itself). The batch is 1 (one video per call): the TFLite StridedSlice kernel
has no `new_axis_mask`, which the masked network needs when both batch and time are dynamic.

The variables (x_ref included) are frozen into constants before the conversion
(`TFLiteConverter.from_keras_model` does not work with Keras 3). Quantization: `dynamic`
= int8 weights (dynamic range), `float16` = float16 weights.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from d2net_tf.errors import D2NetInputError
from d2net_tf.export.file_export import export_file
from d2net_tf.serving import SERVING_SIGNATURE, scores_function

QUANTIZE_MODES = ("none", "dynamic", "float16")


def convert_network(network, quantize: str = "none") -> bytes:
    """The TFLite flatbuffer of `network`'s serving function (batch 1, dynamic time)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if quantize not in QUANTIZE_MODES:
        raise D2NetInputError(f"--quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    serve = scores_function(network, batch_size=1)
    concrete = serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)  # weights and x_ref as constants
    structure = concrete.structured_outputs

    holder = tf.Module()
    holder.serve = tf.function(
        lambda features, lengths: tf.nest.pack_sequence_as(structure, frozen(features=features, lengths=lengths)),
        input_signature=serve.input_signature, autograph=False,
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([holder.serve.get_concrete_function()], holder)
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def make_interpreter(model_path: str | None = None, model_content: bytes | None = None, num_threads: int = 2):
    """A LiteRT interpreter (ai_edge_litert), or tf.lite.Interpreter when LiteRT is missing."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=model_path, model_content=model_content, num_threads=num_threads)


def run_tflite(interpreter, features, lengths=None) -> dict:
    """Runs the `serving_default` signature on one video: features [1, T, D] (or [T, D])."""
    x = np.asarray(features, np.float32)
    if x.ndim == 2:
        x = x[None]
    if lengths is None:
        lengths = [x.shape[1]]
    runner = interpreter.get_signature_runner(SERVING_SIGNATURE)
    return runner(features=x, lengths=np.asarray(lengths, np.int32).reshape(1))


def export_tflite(model_dir: str, output: str, quantize: str = "none", which: str = "best") -> int:
    """Converts MODEL_DIR's `which` checkpoint to OUTPUT (atomic write); returns the size in bytes."""
    return export_file(model_dir, output, which, lambda network: convert_network(network, quantize))

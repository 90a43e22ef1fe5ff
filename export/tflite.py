"""Converts a trained D2Net's network (`serving_default` outputs) to a TFLite / LiteRT flatbuffer.

    python -m export.tflite --model_dir DIR --output model.tflite [--quantize none|dynamic|float16] \
        [--checkpoint best|latest]

The flatbuffer has one signature `serving_default`: features [1, T, D] float32 and
lengths [1] int32 -> tcam [1, T, C], attention [1, T], video_scores [1, C],
embeddings [1, T, D/2]. T is dynamic: resize the input at run time
(`interpreter.resize_tensor_input` + `allocate_tensors`, or the signature runner, which
resizes by itself). The batch is 1 (one video per call): the TFLite StridedSlice kernel
has no `new_axis_mask`, which the masked network needs when both batch and time are dynamic.

The variables (x_ref included) are frozen into constants before the conversion
(`TFLiteConverter.from_keras_model` does not work with Keras 3). Quantization: `dynamic`
= int8 weights (dynamic range), `float16` = float16 weights. Written atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from trainers.common import run_cli

QUANTIZE_MODES = ("none", "dynamic", "float16")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_string("output", None, "Output .tflite file.")
    flags.DEFINE_enum("quantize", "none", list(QUANTIZE_MODES), "Weight quantization.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to convert.")


def convert_model(model, quantize: str = "none") -> bytes:
    """The TFLite flatbuffer of `model`'s serving function (batch 1, dynamic time)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from d2net_tf.errors import D2NetInputError
    from d2net_tf.serving import ServingModule

    if quantize not in QUANTIZE_MODES:
        raise D2NetInputError(f"--quantize must be one of {QUANTIZE_MODES}, got {quantize!r}")
    d = model.mcfg.feature_dim
    spec = [tf.TensorSpec([1, None, d], tf.float32, name="features"), tf.TensorSpec([1], tf.int32, name="lengths")]
    module = ServingModule(model, [str(i) for i in range(model.mcfg.num_classes)], None)
    concrete = tf.function(module._serve, autograph=False, input_signature=spec).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)  # weights and x_ref as constants
    structure = concrete.structured_outputs

    holder = tf.Module()
    holder.serve = tf.function(
        lambda features, lengths: tf.nest.pack_sequence_as(structure, frozen(features=features, lengths=lengths)),
        input_signature=spec, autograph=False,
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
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=model_path, model_content=model_content, num_threads=num_threads)


def run_tflite(interpreter, features, lengths=None) -> dict:
    """Runs the `serving_default` signature on one video: features [1, T, D] (or [T, D])."""
    import numpy as np

    x = np.asarray(features, np.float32)
    if x.ndim == 2:
        x = x[None]
    if lengths is None:
        lengths = [x.shape[1]]
    runner = interpreter.get_signature_runner("serving_default")
    return runner(features=x, lengths=np.asarray(lengths, np.int32).reshape(1))


def export(model_dir: str, output: str, quantize: str = "none", which: str = "best") -> int:
    """Converts MODEL_DIR to OUTPUT (atomic write); returns the size in bytes."""
    from d2net_tf.serving import export_file

    return export_file(model_dir, output, which, lambda model: convert_model(model, quantize))


def main(argv):
    del argv
    size = export(FLAGS.model_dir, FLAGS.output, FLAGS.quantize, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, quantize={FLAGS.quantize})")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

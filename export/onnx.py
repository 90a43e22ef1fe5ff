"""Converts a trained D2Net's network (`serving_default` outputs) to ONNX with tf2onnx.

    python -m export.onnx --model_dir DIR --output model.onnx [--opset 17] [--checkpoint best|latest]

Inputs `features` [batch, time, D] float32 and `lengths` [batch] int32, outputs `tcam`
[batch, time, C], `attention` [batch, time], `video_scores` [batch, C], `embeddings`
[batch, time, D/2]; batch and time are dynamic axes. Converted with
`tf2onnx.convert.from_function` on the serving tf.function (`from_keras` is broken on
Keras 3); x_ref is a constant of the graph. Written atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from trainers.common import run_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_string("output", None, "Output .onnx file.")
    flags.DEFINE_integer("opset", 17, "ONNX opset.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to convert.")

OUTPUT_NAMES = ("tcam", "attention", "video_scores", "embeddings")


def convert_model(model, opset: int = 17) -> bytes:
    """The serialized ONNX model of `model`'s serving function (dynamic batch and time)."""
    import tensorflow as tf
    import tf2onnx

    from d2net_tf.serving import ServingModule

    d = model.mcfg.feature_dim
    module = ServingModule(model, [str(i) for i in range(model.mcfg.num_classes)], None)
    spec = (tf.TensorSpec([None, None, d], tf.float32, name="features"), tf.TensorSpec([None], tf.int32, name="lengths"))
    fn = tf.function(module._serve, autograph=False, input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    # tf2onnx names outputs after the graph tensors ("Identity:0", ...); give them the signature names.
    flat = tf.nest.flatten(fn.get_concrete_function().structured_outputs, expand_composites=False)
    keys = sorted(fn.get_concrete_function().structured_outputs)  # tf.nest flattens dicts by sorted key
    assert len(flat) == len(keys) == len(proto.graph.output)
    rename = {o.name: k for o, k in zip(proto.graph.output, keys)}
    for node in proto.graph.node:
        node.output[:] = [rename.get(n, n) for n in node.output]
        node.input[:] = [rename.get(n, n) for n in node.input]
    for o in proto.graph.output:
        o.name = rename[o.name]
    for i in proto.graph.input:
        i.name = i.name.split(":")[0]
    for v in list(proto.graph.input) + list(proto.graph.output):  # name the dynamic axes
        for axis, dim in enumerate(v.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                dim.dim_param = ("batch", "time")[min(axis, 1)]
    return proto.SerializeToString()


def make_session(path_or_bytes, threads: int = 2):
    """An onnxruntime CPU session with `threads` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, opts, providers=["CPUExecutionProvider"])


def export(model_dir: str, output: str, opset: int = 17, which: str = "best") -> int:
    """Converts MODEL_DIR to OUTPUT (atomic write); returns the size in bytes."""
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.serving import export_file

    if opset < 13:
        raise D2NetInputError(f"--opset must be >= 13, got {opset}")
    return export_file(model_dir, output, which, lambda model: convert_model(model, opset))


def main(argv):
    del argv
    size = export(FLAGS.model_dir, FLAGS.output, FLAGS.opset, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, opset {FLAGS.opset})")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

"""A trained network's `serving_default` outputs as an ONNX model (tf2onnx).

Inputs `features` [batch, time, D] float32 and `lengths` [batch] int32, outputs `tcam`
[batch, time, C], `attention` [batch, time], `video_scores` [batch, C], `embeddings`
[batch, time, D/2]; batch and time are dynamic axes. Converted with
`tf2onnx.convert.from_function` on the serving tf.function (`from_keras` is broken on
Keras 3); x_ref is a constant of the graph.
"""

from __future__ import annotations

from d2net_tf.errors import D2NetInputError
from d2net_tf.export.file_export import export_file
from d2net_tf.serving import scores_function

MIN_OPSET = 13


def convert_network(network, opset: int = 17) -> bytes:
    """The serialized ONNX model of `network`'s serving function (dynamic batch and time)."""
    import tensorflow as tf
    import tf2onnx

    fn = scores_function(network)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=opset)
    # tf2onnx names outputs after the graph tensors ("Identity:0", ...); give them the signature names.
    structured = fn.get_concrete_function().structured_outputs
    flat = tf.nest.flatten(structured, expand_composites=False)
    keys = sorted(structured)  # tf.nest flattens dicts by sorted key
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


def export_onnx(model_dir: str, output: str, opset: int = 17, which: str = "best") -> int:
    """Converts MODEL_DIR's `which` checkpoint to OUTPUT (atomic write); returns the size in bytes."""
    if opset < MIN_OPSET:
        raise D2NetInputError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    return export_file(model_dir, output, which, lambda network: convert_network(network, opset))

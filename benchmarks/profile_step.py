"""Where a training step's time goes: `python -m benchmarks.profile_step [--precision P] [--conv_algorithm A] [--feature_dim D] [--batch_size B]`.

Traces a few training steps (THUMOS14-shaped packed batches, default B=10, D=2048, C=20, the same
batches as `benchmarks.train_step`) with the TensorFlow profiler, with one inter-op thread
so that the op times add up to the step time, and prints the op time per step by part
(forward / backward / optimizer; conv matmuls / dropout RNG / other element-wise work /
losses) and the most expensive non-matmul ops. This is how the throughput work of
benchmarks/RESULTS.md found its targets (Keras Adam, kernel slicing, einsum, dropout RNG).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

from benchmarks.common import markdown_table
from benchmarks.train_step import make_batches, thumos_lengths
from d2net_tf.config import CONV_ALGORITHMS, preset
from d2net_tf.modeling.layers import GRADIENT_SCOPE
from d2net_tf.training import RunConfig, create_model


def op_times(logdir: str) -> collections.Counter:
    """{op name: total ms} of the ops executed in the trace under `logdir` (one entry per
    TensorFlow op event "name:type"; the executor's wrapper events are left out)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # TF-internal proto, shipped with TF

    totals: collections.Counter = collections.Counter()
    for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" in name and not name.endswith(":Process"):
                        totals[name] += event.duration_ps / 1e9
    return totals


def part_of(op: str) -> tuple[str, str]:
    """(phase, kind) of a traced op from its name "scope/.../name:type"."""
    name, kind = op.rsplit(":", 1)
    if "adam" in name:
        return "optimizer", "update"
    in_conv_gradient = GRADIENT_SCOPE in name  # the 'valid' layers' hand-written gradients
    phase = "backward" if name.startswith("gradient_tape") or in_conv_gradient else "forward"
    if "stream" not in name and not in_conv_gradient:
        return phase, "losses, unpacking, L2, finiteness"
    if "MatMul" in kind:
        return phase, "conv matmuls"
    if "Random" in kind:
        return phase, "dropout RNG"
    return phase, "streams: element-wise (shift, bias, mask, activation, casts)"


def profile(precision: str, steps: int = 6, feature_dim: int = 2048, batch_size: int = 10,
            conv_algorithm: str = "direct") -> tuple[list[dict], list[dict], float]:
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cfg = preset("official_fixed")  # packed batches need rezero_padding
    cfg.model.feature_dim, cfg.model.num_classes = feature_dim, 20
    cfg.train.batch_size = batch_size
    cfg.loss.denoise_start_step, cfg.loss.denoise_every = 0, 1
    model = create_model(cfg, RunConfig(model_dir="", precision=precision, packed=True, conv_algorithm=conv_algorithm))
    batches = make_batches(thumos_lengths(), feature_dim, 3, batch_size=batch_size, packed=True,
                           gap=model.network.packing_gap())
    real = sum(b["real"] for b in batches) / len(batches)
    tensors = [{k: tf.constant(v) for k, v in b.items() if k not in ("real", "convolved")} for b in batches]
    step = tf.function(model.train_step, reduce_retracing=True)
    for i in range(2 * len(tensors)):
        float(step(tensors[i % len(tensors)])["loss"])
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for i in range(steps):
            float(step(tensors[i % len(tensors)])["loss"])
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
    parts: collections.Counter = collections.Counter()
    for op, ms in totals.items():
        parts[part_of(op)] += ms
    total = sum(parts.values())
    rows = [{"phase": p, "kind": k, "ms_per_step": ms / steps, "share": ms / total}
            for (p, k), ms in sorted(parts.items(), key=lambda kv: -kv[1])]
    rows.append({"phase": "total", "kind": f"{real:.0f} real snippets/step", "ms_per_step": total / steps, "share": 1.0})
    top = [{"op": op.replace("d2_net_1/", "")[:110], "ms_per_step": ms / steps}
           for op, ms in totals.most_common() if "MatMul" not in op.rsplit(":", 1)[1]][:15]
    return rows, top, total / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--conv_algorithm", default="direct", choices=list(CONV_ALGORITHMS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--feature_dim", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=10)
    args = parser.parse_args()
    rows, top, _ = profile(args.precision, args.steps, args.feature_dim, args.batch_size, args.conv_algorithm)
    print(f"D={args.feature_dim}, B={args.batch_size}, precision {args.precision}, {args.conv_algorithm} convolution; op time per step (one inter-op thread: adds up to the step time)")
    print(markdown_table(rows, ["phase", "kind", "ms_per_step", "share"]))
    print("\nmost expensive ops other than matmuls")
    print(markdown_table(top, ["op", "ms_per_step"]))


if __name__ == "__main__":
    main()

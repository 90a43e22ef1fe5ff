"""Converts a trained D2Net's network (`serving_default` outputs) to ONNX with tf2onnx.

    python -m export.onnx --model_dir DIR --output model.onnx [--opset 17] [--checkpoint best|latest]

The logic and the model's inputs and outputs: `d2net_tf.export.onnx`. Written atomically.
Bad input: one line on stderr and exit status 2.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from d2net_tf.cli import run_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_string("output", None, "Output .onnx file.")
    flags.DEFINE_integer("opset", 17, "ONNX opset.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to convert.")


def main(argv):
    del argv
    from d2net_tf.export.onnx import export_onnx

    size = export_onnx(FLAGS.model_dir, FLAGS.output, FLAGS.opset, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, opset {FLAGS.opset})")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

"""Converts a trained D2Net's network (`serving_default` outputs) to ONNX with tf2onnx.

    d2net-export-onnx --model_dir DIR --output model.onnx [--opset 17] [--checkpoint best|latest]
    (from a checkout: python -m export.onnx ...)

The model's inputs and outputs: d2net_tf.export.onnx. Written atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.export_flags import define_export_flags

define_export_flags("Output .onnx file.")
flags.DEFINE_integer("opset", 17, "ONNX opset.")
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.export.onnx import export_onnx

    size = export_onnx(FLAGS.model_dir, FLAGS.output, FLAGS.opset, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, opset {FLAGS.opset})")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

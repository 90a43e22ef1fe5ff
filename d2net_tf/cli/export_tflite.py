"""Converts a trained D2Net's network (`serving_default` outputs) to a TFLite / LiteRT flatbuffer.

    d2net-export-tflite --model_dir DIR --output model.tflite [--quantize none|dynamic|float16] \
        [--checkpoint best|latest]
    (from a checkout: python -m export.tflite ...)

The flatbuffer's signature and the quantization modes: d2net_tf.export.tflite. Written atomically.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.export_flags import define_export_flags
from d2net_tf.export.tflite import QUANTIZE_MODES  # imports TensorFlow: the modes are written once, there

define_export_flags("Output .tflite file.")
flags.DEFINE_enum("quantize", "none", list(QUANTIZE_MODES), "Weight quantization.")
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.export.tflite import export_tflite

    size = export_tflite(FLAGS.model_dir, FLAGS.output, FLAGS.quantize, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, quantize={FLAGS.quantize})")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

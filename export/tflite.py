"""Converts a trained D2Net's network (`serving_default` outputs) to a TFLite / LiteRT flatbuffer.

    python -m export.tflite --model_dir DIR --output model.tflite [--quantize none|dynamic|float16] \
        [--checkpoint best|latest]

The logic, the flatbuffer's signature and the quantization modes: `d2net_tf.export.tflite`.
Written atomically. Bad input: one line on stderr and exit status 2.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from d2net_tf.cli import run_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    from d2net_tf.export.tflite import QUANTIZE_MODES

    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_string("output", None, "Output .tflite file.")
    flags.DEFINE_enum("quantize", "none", list(QUANTIZE_MODES), "Weight quantization.")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to convert.")


def main(argv):
    del argv
    from d2net_tf.export.tflite import export_tflite

    size = export_tflite(FLAGS.model_dir, FLAGS.output, FLAGS.quantize, FLAGS.checkpoint)
    print(f"wrote {FLAGS.output} ({size} bytes, quantize={FLAGS.quantize})")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

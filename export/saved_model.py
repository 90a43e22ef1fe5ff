"""Exports a trained D2Net as a TF Serving SavedModel (EXPORT/N) with in-graph localization.

    python -m export.saved_model --model_dir DIR --export_dir EXPORT [--version N] \
        [--localization_preset official|paper] [--checkpoint best|latest]

The logic is `d2net_tf.export.saved_model.export_saved_model`. Signatures (see `d2net_tf.serving`):
  serving_default: features [B, T, D] float32, lengths [B] int32
                   -> tcam [B, T, C], attention [B, T], video_scores [B, C], embeddings [B, T, D/2]
  localize:        features [T, D] float32, snippets_per_second [] float64
                   -> class_ids, class_names, starts_s, ends_s, scores (one row per detection)

The version folder is written to a temporary folder inside EXPORT and renamed; an existing
version is never overwritten. Default version: 1 + the largest existing one. Bad input:
one line on stderr and exit status 2.
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
    flags.DEFINE_string("export_dir", None, "TF Serving model base folder; the export goes to EXPORT/VERSION.")
    flags.DEFINE_integer("version", None, "Version number (default: 1 + the largest existing version).")
    flags.DEFINE_enum("localization_preset", None, ["official", "paper"],
                      "Post-processing of the `localize` signature (default: the model directory's stored settings).")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.")


def main(argv):
    del argv
    from d2net_tf.export.saved_model import export_saved_model

    path = export_saved_model(FLAGS.model_dir, FLAGS.export_dir, FLAGS.version, FLAGS.localization_preset,
                              FLAGS.checkpoint)
    print(f"exported {path} (signatures: serving_default, localize)")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

"""Exports a trained D2Net as a TF Serving SavedModel (EXPORT/N) with in-graph localization.

    python -m export.saved_model --model_dir DIR --export_dir EXPORT [--version N] \
        [--localization_preset official|paper] [--checkpoint best|latest]

Signatures (see `d2net_tf.serving`):
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

from trainers.common import run_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command-line flags (defined only when run as a program, so the module imports cleanly)."""
    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_string("export_dir", None, "TF Serving model base folder; the export goes to EXPORT/VERSION.")
    flags.DEFINE_integer("version", None, "Version number (default: 1 + the largest existing version).")
    flags.DEFINE_enum("localization_preset", None, ["official", "paper"],
                      "Post-processing of the `localize` signature (default: the run's preset).")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.")


def export(model_dir: str, export_dir: str, version: int | None = None, preset: str | None = None,
           which: str = "best") -> str:
    """Exports MODEL_DIR into EXPORT/VERSION; returns the version folder."""
    from d2net_tf.errors import D2NetInputError
    from d2net_tf.serving import ServingModule, export_saved_model, read_model_dir

    if not model_dir or not export_dir:
        raise D2NetInputError("--model_dir and --export_dir are required")
    if version is not None and os.path.exists(os.path.join(export_dir, str(version))):
        raise FileExistsError(f"{os.path.join(export_dir, str(version))} already exists; "
                              "choose another --version (nothing was overwritten)")
    model, classlist, loc, _ = read_model_dir(model_dir, preset, which)
    return export_saved_model(ServingModule(model, classlist, loc), export_dir, version)


def main(argv):
    del argv
    path = export(FLAGS.model_dir, FLAGS.export_dir, FLAGS.version, FLAGS.localization_preset, FLAGS.checkpoint)
    print(f"exported {path} (signatures: serving_default, localize)")


if __name__ == "__main__":
    define_flags()
    app.run(run_cli(main))

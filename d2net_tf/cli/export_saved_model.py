"""Exports a trained D2Net as a TF Serving SavedModel (EXPORT/N) with in-graph localization.

    d2net-export-saved-model --model_dir DIR --export_dir EXPORT [--version N] \
        [--localization_preset official|paper] [--checkpoint best|latest]
    (from a checkout: python -m export.saved_model ...)

Signatures (`serving_default` and `localize`), the version rule and the atomic write:
d2net_tf.export.saved_model. An existing version is never overwritten.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags

from d2net_tf.cli import run_cli, run_command
from d2net_tf.cli.export_flags import define_export_flags

define_export_flags()
flags.DEFINE_string("export_dir", None, "TF Serving model base folder; the export goes to EXPORT/VERSION.")
flags.DEFINE_integer("version", None, "Version number (default: 1 + the largest existing version).")
flags.DEFINE_enum("localization_preset", None, ["official", "paper"],
                  "Post-processing of the `localize` signature (default: the model directory's stored settings).")
flags.mark_flag_as_required("export_dir")
FLAGS = flags.FLAGS


@run_cli
def main(argv):
    del argv
    from d2net_tf.export.saved_model import export_saved_model

    path = export_saved_model(FLAGS.model_dir, FLAGS.export_dir, FLAGS.version, FLAGS.localization_preset,
                              FLAGS.checkpoint)
    print(f"exported {path} (signatures: serving_default, localize)")


def run() -> None:
    run_command(main)


if __name__ == "__main__":
    run()

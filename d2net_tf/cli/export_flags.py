"""Flags shared by the export commands: the model directory, its checkpoint and the output file."""

from __future__ import annotations

from absl import flags


def define_export_flags(output_help: str | None = None) -> None:
    """--model_dir and --checkpoint (and a required --output described by `output_help`, when given)."""
    flags.DEFINE_string("model_dir", None, "Trained model directory (config.json + checkpoints).")
    flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to export.")
    flags.mark_flag_as_required("model_dir")
    if output_help:
        flags.DEFINE_string("output", None, output_help)
        flags.mark_flag_as_required("output")

"""--precision, the flag of every command that runs a network (d2net_tf.precision)."""

from __future__ import annotations

from absl import flags

from d2net_tf.precision import PRECISIONS


def define_precision_flag(help_text: str) -> None:
    """--precision (default float32); `help_text` says which networks it sets in this command."""
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), help_text)

"""A model directory's network converted into one file (TFLite, ONNX), written atomically."""

from __future__ import annotations

import os
from typing import Callable

from d2net_tf.errors import D2NetInputError
from d2net_tf.jsonio import write_bytes_atomic
from d2net_tf.model_dir import restore_network


def export_file(model_dir: str, output: str, which: str, convert: Callable[..., bytes]) -> int:
    """Restores MODEL_DIR's `which` checkpoint, converts its network with `convert`
    (network -> file bytes) and writes OUTPUT atomically. Returns the size in bytes."""
    if not model_dir or not output:
        raise D2NetInputError("--model_dir and --output are required")
    network, _ = restore_network(model_dir, which)
    data = convert(network)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    write_bytes_atomic(output, data)
    return len(data)

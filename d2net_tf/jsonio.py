"""JSON files: reading with errors that name the file; writing files (JSON or bytes) atomically."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from d2net_tf.errors import DataFormatError


def read_json(path: str) -> Any:
    """json.load of `path`; a missing, malformed or non-UTF-8 file raises DataFormatError naming it."""
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: file not found")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a UTF-8 JSON text file") from None


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` through a temporary file in the same folder and a rename: never a
    half-written file. The folder must exist."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, data: Any) -> None:
    """Writes JSON through a temporary file and a rename: never a half-written file."""
    write_bytes_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=float).encode())

"""Loading .npy files from strangers without running their pickles.

`np.load(path, allow_pickle=True)` executes whatever the pickle inside an
object-array .npy says, e.g. `os.system("...")`. The W-TALC annotation and
feature files are object arrays, so they must be unpickled; `load_npy` does it
with an unpickler that can only rebuild numpy arrays, dtypes, numpy scalars and
plain Python data (lists, tuples, dicts, sets, strings, bytes, numbers). Any
other global is refused with `UnsafeFileError` before it is called.

Non-object arrays are read without pickle at all.
"""

from __future__ import annotations

import ast
import collections
import io
import os
import pickle
import struct
import tempfile
from typing import Any

import numpy as np

from d2net_tf.errors import DataFormatError, UnsafeFileError

__all__ = ["load_npy", "save_npy"]


def _safe_codecs_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """`_codecs.encode` restricted to the text codecs protocol-2 pickles use for bytes."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in (
        "latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) is not allowed")
    return obj.encode(encoding, errors)


def _numpy_attr(modname: str, name: str) -> Any:
    """Resolves a numpy internal by name, trying numpy 2 (`numpy._core`) then numpy 1 (`numpy.core`)."""
    import importlib

    for mod in (modname, modname.replace("numpy.core", "numpy._core"), modname.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {modname}.{name}")


# The allowed globals. Python-2 module names (`__builtin__`) are listed too,
# since overriding find_class bypasses fix_imports.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_BUILTIN_NAMES = {
    "list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset,
    "bytes": bytes, "bytearray": bytearray, "str": str, "int": int, "float": float,
    "complex": complex, "bool": bool,
}


def _resolve_allowed(module: str, name: str) -> Any | None:
    if (module, name) in _NUMPY_GLOBALS:
        return _numpy_attr(module, name)
    if module in ("builtins", "__builtin__") and name in _BUILTIN_NAMES:
        return _BUILTIN_NAMES[name]
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "_codecs" and name == "encode":
        return _safe_codecs_encode
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals needed for numpy arrays and plain data."""

    def __init__(self, file: io.BufferedIOBase, *, source: str) -> None:
        super().__init__(file, encoding="latin1", fix_imports=True)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        obj = _resolve_allowed(module, name)
        if obj is None:
            raise UnsafeFileError(
                f"refusing to load {module}.{name} from {self._source}: "
                "only numpy arrays and plain Python data are allowed"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"refusing persistent id {pid!r} in {self._source}: not plain data")


def _read_header(fp: io.BufferedIOBase, source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fp)
    except ValueError as e:
        raise DataFormatError(f"truncated or not a .npy file: {source} ({e})") from None
    try:
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fp, max_header_size=1 << 20)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fp, max_header_size=1 << 20)
        if version == (3, 0):
            return _read_header_3_0(fp)
    except (ValueError, SyntaxError, struct.error, UnicodeDecodeError, EOFError) as e:
        raise DataFormatError(f"truncated or not a .npy file: {source} (bad header: {e})") from None
    raise DataFormatError(f"{source}: unsupported .npy format version {version[0]}.{version[1]}")


def _read_header_3_0(fp: io.BufferedIOBase) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Version 3.0 header: like 2.0 (uint32 length) but UTF-8 encoded."""
    raw = fp.read(4)
    if len(raw) != 4:
        raise ValueError("EOF in header length")
    (hlen,) = struct.unpack("<I", raw)
    if hlen > (1 << 20):
        raise ValueError(f"header of {hlen} bytes is too large")
    text = fp.read(hlen)
    if len(text) != hlen:
        raise ValueError("EOF in header")
    d = ast.literal_eval(text.decode("utf8"))
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"header is not a dict with keys descr, fortran_order, shape: {d!r}")
    shape, fortran = d["shape"], d["fortran_order"]
    if not (isinstance(shape, tuple) and all(isinstance(x, int) and x >= 0 for x in shape)):
        raise ValueError(f"bad shape {shape!r}")
    if not isinstance(fortran, bool):
        raise ValueError(f"bad fortran_order {fortran!r}")
    return shape, fortran, np.lib.format.descr_to_dtype(d["descr"])


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Loads a .npy file; object arrays are unpickled with a restricted unpickler.

    Args:
      path: the .npy file.

    Returns:
      The array (object arrays hold lists, strings, numbers, numpy arrays...).

    Raises:
      DataFormatError: missing, truncated or malformed file.
      UnsafeFileError: the pickle asks for anything but numpy arrays and plain data.
    """
    source = os.fspath(path)
    try:
        fp = open(source, "rb")
    except FileNotFoundError:
        raise DataFormatError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise DataFormatError(f"{source}: is a directory, expected a .npy file") from None
    with fp:
        shape, fortran, dtype = _read_header(fp, source)
        if dtype.hasobject:
            return _load_pickled(fp, source, shape, fortran, dtype)
        count = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(fp, dtype=dtype, count=count) if count else np.empty(0, dtype)
        if data.size != count:
            raise DataFormatError(
                f"truncated or not a .npy file: {source} (expected {count} items of {dtype}, found {data.size})"
            )
        return data.reshape(shape[::-1]).transpose() if fortran else data.reshape(shape)


def _load_pickled(fp: io.BufferedIOBase, source: str, shape: tuple, fortran: bool, dtype: np.dtype) -> np.ndarray:
    try:
        array = _RestrictedUnpickler(fp, source=source).load()
    except DataFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            struct.error, MemoryError, UnicodeDecodeError) as e:
        raise DataFormatError(f"truncated or not a .npy file: {source} (bad pickle payload: {e})") from None
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape) or array.dtype != dtype:
        got = f"{type(array).__name__} {getattr(array, 'shape', '')} {getattr(array, 'dtype', '')}"
        raise DataFormatError(f"{source}: pickle payload is {got}, header says {dtype} array of shape {shape}")
    return array


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes `array` to `path` atomically (temporary file in the same folder + os.replace)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.asanyarray(array), allow_pickle=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

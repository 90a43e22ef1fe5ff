"""A streaming writer of object-array .npy files (the W-TALC feature file) of any size."""

from __future__ import annotations

import pickle
import pickletools
from typing import Iterable

import numpy as np


def write_object_npy(path: str, n: int, items: Iterable[np.ndarray]) -> int:
    """Writes an object array of `n` arrays to a .npy, one item at a time. Returns bytes written.

    The bytes are the pickle `np.save` would write (`np.load(allow_pickle=True)` and
    `safe_npy.load_npy` read it), but only one item is in memory at a time.
    """
    template = np.empty(n, dtype=object)
    payload = pickle.dumps(template, protocol=3)
    ops = list(pickletools.genops(payload))
    names = [op.name for op, _, _ in ops]
    positions = [pos for _, _, pos in ops] + [len(payload)]
    if names.count("EMPTY_LIST") != 1:
        raise RuntimeError("unexpected pickle layout of numpy object arrays; cannot stream")
    j = names.index("EMPTY_LIST") + 1
    if names[j] in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        j += 1
    head = payload[:positions[j]]
    appends = [k for k, name in enumerate(names) if name in ("APPEND", "APPENDS")]
    rest = appends[-1] + 1 if n else j
    tail = payload[positions[rest]:]
    if any(name.endswith("GET") for name in names[rest:]) or not tail.endswith(pickle.STOP):
        raise RuntimeError("unexpected pickle layout of numpy object arrays; cannot stream")
    count = 0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(template))
        f.write(head)
        for item in items:
            blob = pickle.dumps(item, protocol=3)
            f.write(pickle.MARK + blob[2:-1] + pickle.APPENDS)  # strip PROTO and STOP
            count += 1
        if count != n:
            raise ValueError(f"write_object_npy: expected {n} items, got {count}")
        f.write(tail)
        return f.tell()

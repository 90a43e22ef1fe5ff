"""Tests for d2net_tf.data.safe_npy: vendored annotations load; crafted pickles do not run."""

import glob
import io
import os
import pathlib

import numpy as np
import pytest

from d2net_tf.data import safe_npy
from d2net_tf.errors import DataFormatError, UnsafeFileError

ANNOTATIONS = pathlib.Path(safe_npy.__file__).parent / "annotations"
VENDORED = sorted(glob.glob(str(ANNOTATIONS / "*" / "*.npy")))


def _assert_same(a, b):
    """Element-wise equality, recursing into object arrays, lists, tuples and dicts."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        if a.dtype == object:
            for x, y in zip(a.ravel(), b.ravel()):
                _assert_same(x, y)
        else:
            np.testing.assert_array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    else:
        assert type(a) is type(b) and a == b


def test_vendored_folders_found():
    names = {os.path.basename(os.path.dirname(p)) for p in VENDORED}
    assert names == {"Thumos14reduced-Annotations", "ActivityNet1.2-Annotations"}
    assert len(VENDORED) >= 17


@pytest.mark.parametrize("path", VENDORED, ids=lambda p: "/".join(p.split(os.sep)[-2:]))
def test_vendored_annotations_equal_np_load(path):
    _assert_same(safe_npy.load_npy(path), np.load(path, allow_pickle=True))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        np.array([b"a", b"bcd"]),
        np.array(["unicode", "é"]),
        np.zeros((0, 5), np.float64),
        np.float64(3.5),
        np.array([[1, 2], [3]], dtype=object),
        np.array([np.ones((2, 3), np.float32), np.zeros((1, 3), np.float32)] + [None], dtype=object),
        np.array({"a": (1, 2.5, "x"), "b": {1, 2}, "c": np.float32(2), "d": b"\x00\xff"}, dtype=object),
        np.array([bytearray(b"xy"), frozenset([1]), 1 + 2j, True], dtype=object),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}",
)
def test_round_trip(tmp_path, array):
    path = tmp_path / "a.npy"
    safe_npy.save_npy(path, array)
    _assert_same(safe_npy.load_npy(path), np.load(path, allow_pickle=True))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]  # no temporary file left


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_header_versions(tmp_path, version):
    for array in (np.arange(6, dtype=np.int16).reshape(2, 3), np.array([[1.0], ["x"]], dtype=object)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as f:
            np.lib.format.write_array(f, array, version=version, allow_pickle=True)
        with open(path, "rb") as f:
            assert np.lib.format.read_magic(f) == version
        _assert_same(safe_npy.load_npy(path), array)


class _CreateFile:
    """Pickles as `func(*args)`; unpickling it with plain pickle would run `func`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    "make_payload,refused",
    [
        (lambda target: _CreateFile(open, str(target), "w"), f"{open.__module__}.open"),
        (lambda target: _CreateFile(os.system, f"touch {target}"), f"{os.system.__module__}.system"),
        (lambda target: _CreateFile(pathlib.Path.touch, target), "pathlib"),
    ],
    ids=["open", "os.system", "Path.touch"],
)
def test_malicious_pickle_is_refused(tmp_path, make_payload, refused):
    victim = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([1, make_payload(victim)], dtype=object), allow_pickle=True)

    with pytest.raises(UnsafeFileError) as excinfo:
        safe_npy.load_npy(evil)
    message = str(excinfo.value)
    assert str(evil) in message and refused in message
    assert "only numpy arrays and plain Python data are allowed" in message
    assert not victim.exists()

    # The payload is real: np.load(allow_pickle=True) does create the file.
    np.load(evil, allow_pickle=True)
    assert victim.exists()


def test_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        safe_npy.load_npy(tmp_path / "nope.npy")


@pytest.mark.parametrize(
    "array",
    [np.arange(1000, dtype=np.float32), np.array([np.arange(100.0), "abc"], dtype=object)],
    ids=["float32", "object"],
)
@pytest.mark.parametrize("keep", [3, 20, 0.5, -1])
def test_truncated_file(tmp_path, array, keep):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    data = buf.getvalue()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.npy"
    path.write_bytes(data[:cut])
    with pytest.raises(DataFormatError, match="truncated or not a .npy file") as excinfo:
        safe_npy.load_npy(path)
    assert str(path) in str(excinfo.value)


def test_not_npy(tmp_path):
    path = tmp_path / "x.npy"
    path.write_text("hello, this is not numpy")
    with pytest.raises(DataFormatError, match="truncated or not a .npy file"):
        safe_npy.load_npy(path)


def test_payload_disagreeing_with_header(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array([1, 2], dtype=object), allow_pickle=True)
    data = buf.getvalue().replace(b"(2,)", b"(3,)", 1)
    path = tmp_path / "lie.npy"
    path.write_bytes(data)
    with pytest.raises(DataFormatError, match="header says"):
        safe_npy.load_npy(path)

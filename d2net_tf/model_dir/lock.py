"""One writer per model directory: an exclusive lock on `MODEL_DIR/.lock` for a job's lifetime.

`fcntl.flock` locks belong to the open file, so the kernel drops them when the holder exits
in any way (SIGKILL included): a killed job never leaves the directory locked. The file holds
the holder's PID so that a refused job can say who holds it; its presence alone means nothing.
Where `fcntl` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from d2net_tf.errors import ModelDirError

LOCK_NAME = ".lock"


class ModelDirLock:
    """`with ModelDirLock(model_dir):` holds the directory or raises ModelDirError
    "MODEL_DIR is being trained by process N" at once (it never waits)."""

    def __init__(self, model_dir: str):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ModelDirError(f"{self.model_dir} is being trained by process {holder}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> "ModelDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

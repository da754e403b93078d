"""One process holds a run at a time: an exclusive lock on ``<run>/.lock``.

A run (fresh or resumed) takes the lock before it touches its folder and
keeps it while it runs; a second process asking for the same run is refused
with a message naming the holder (pid and host, written into the lock file).
The lock is the operating system's (``fcntl.flock``), tied to the open file:
it goes away with the process however that ends (exit, crash, ``kill -9``),
so no stale lock is ever left to clean up::

    runs/<run_name>/.lock     "pid 12345 on host-a"   (flock held by pid 12345)

Where ``fcntl`` does not exist (Windows) the lock is not taken.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK_FILE = ".lock"


class RunInUseError(OSError):
    """Another live process holds the run."""


class RunLock:
    """The exclusive lock of the run folder ``path``, taken at once or refused (never waits).

    Raises :class:`RunInUseError` naming the holder when another process has it.
    """

    def __init__(self, path: str | Path):
        self.file = Path(path) / LOCK_FILE
        self._fd: int | None = None
        if fcntl is None:
            return
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or "another process"
            os.close(fd)
            raise RunInUseError(f"run folder {Path(path)} is in use by {holder}; wait for it to end "
                                "(or stop it) before running or resuming it again.") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Let the run go (closing the file drops the lock; the file stays, emptied)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # no holder named any more
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


__all__ = ["LOCK_FILE", "RunInUseError", "RunLock"]

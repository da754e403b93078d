"""Atomic file writes: a reader sees the old file or the whole new one, never half of either.

Each write goes to a unique temporary file beside the target (so two writers
never share one), is flushed and fsynced, then renamed over the target with
``os.replace`` (atomic on POSIX and Windows). On any failure the temporary
file is removed and the target is left as it was. The file gets the mode a
plain ``open()`` would give it (the target's own, or ``0o666`` less the umask),
not ``mkstemp``'s private ``0o600``::

    <folder>/.<name>.<random>.tmp  --fsync, os.replace-->  <folder>/<name>
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    mode = file_mode(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def file_mode(path: Path) -> int:
    """The permission bits ``open(path, "w")`` leaves: the existing file's, else ``0o666`` less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """This process's umask (read from ``/proc`` where it is, so no other thread sees it changed)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data, indent: int | None = 1, **dumps_options) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (``dumps_options`` go to ``json.dumps``, e.g. ``default=str``)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, **dumps_options))

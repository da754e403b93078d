"""Where a run stands, in one small JSON file a watcher can read at any moment.

The run folder and its metrics stream exist only once the model is loaded and
prepared (bad input fails before a folder is made), and a squeeze or a
decomposition can take a while before the first training step. A run started
with a progress file reports every phase from its first second::

    {"phase": "training", "done": 41, "total": 126, "unit": "steps", "started": t0, "phase_started": t1,
     "updated": t, "pid": 1234, "threads": 1}

``done``/``total`` count the phase's work where it has a count. Writes are
atomic (a reader sees the old file or the new one) and at most every
``min_interval`` seconds within a phase; a new phase is written at once.
:func:`read_progress` is the bounded reader; :func:`time_left` turns a phase's
pace into an estimate.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..json_file import loads_bounded
from .atomic_write import atomic_write_bytes

#: a progress file is a few hundred bytes; anything larger is not one
MAX_BYTES = 64 * 1024


class ProgressFile:
    """Writes a run's progress to ``path`` (``None``: a no-op, so callers need no branches)."""

    def __init__(self, path: str | Path | None, min_interval: float = 0.5):
        self.path = None if path is None else Path(path)
        self.min_interval = min_interval
        self.started = time.time()
        self.state: dict = {}
        self._written = 0.0

    def phase(self, name: str, done: int | None = None, total: int | None = None, unit: str | None = None,
              **extra) -> None:
        """Enter phase ``name`` (written at once)."""
        now = time.time()
        self.state = {"phase": name, "done": done, "total": total, "unit": unit, "phase_started": now, **extra}
        self._write(now)

    def advance(self, done: int, total: int | None = None, **extra) -> None:
        """``done`` of the phase's work (written at most every ``min_interval`` seconds, and at the last unit)."""
        now = time.time()
        self.state.update(done=done, **({} if total is None else {"total": total}), **extra)
        if now - self._written >= self.min_interval or done == self.state.get("total"):
            self._write(now)

    def _write(self, now: float) -> None:
        if self.path is None:
            return
        record = {**self.state, "started": self.started, "updated": now, "pid": os.getpid()}
        try:
            atomic_write_bytes(self.path, json.dumps(record, default=float).encode())
        except OSError:  # progress is a courtesy: a full disk must not fail the run
            return
        self._written = now


def read_progress(path: str | Path) -> dict | None:
    """The progress record at ``path``, or ``None`` (missing, oversized, torn or not a JSON object)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        record = loads_bounded(path.read_text(), str(path))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def time_left(progress: dict, now: float | None = None) -> float | None:
    """Seconds left in the phase at its measured pace (``None`` before two units are done or without a count)."""
    done, total = progress.get("done"), progress.get("total")
    start, updated = progress.get("phase_started"), progress.get("updated")
    if not all(isinstance(v, (int, float)) for v in (done, total, start, updated)):
        return None
    if done >= total:
        return 0.0
    if done < 2:
        return None
    pace = (updated - start) / done
    elapsed_since = max(0.0, (time.time() if now is None else now) - updated)
    return max(0.0, (total - done) * pace - elapsed_since)

"""Which code made a result: the repository's commit, and whether the code differed from it.

A result's provenance is the code that *ran*, so it is taken once per process,
at the first ask (an experiment asks as it starts), not when the result is
saved: the run's own outputs (tracked records under ``results/``) and edits
made elsewhere while it ran do not mark it. Only code counts as "dirty":
uncommitted changes outside ``results/``.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FIRST: list = []  # the first answer of this process


def commit() -> str | None:
    """The commit the running code came from (``+dirty`` with uncommitted code changes), or ``None`` outside git.

    Taken at the first call of the process and returned unchanged after (see the module docstring).
    """
    if not _FIRST:
        _FIRST.append(_read_commit())
    return _FIRST[0]


def _read_commit() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


__all__ = ["commit"]

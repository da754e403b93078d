"""Run names: one safe folder name, checked wherever a name comes in (CLI, API, dashboard).

A run name becomes ``<runs_dir>/<run_name>/`` and ``<runs_dir>/.jobs/<run_name>.log``,
so it must never reach outside ``runs_dir``: no separators, no ``..``, no
absolute paths, no hidden names, nothing a shell or a file system treats specially.
"""
from __future__ import annotations

import re

#: letters, digits and ``. _ - @ + =``, starting with a letter or digit, at most 128 characters
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}")


def check_run_name(name) -> str:
    """``name`` if it is a safe run name, else ``ValueError`` saying what is allowed."""
    if not isinstance(name, str) or not RUN_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"run_name {name!r} is not allowed: use 1-128 letters, digits and . _ - @ + =, "
                         "starting with a letter or digit (no path separators).")
    return name

"""Allowed folders: the dashboard's path fields may only name folders inside configured roots.

The dashboard has no login (README, "Serving the dashboard"), so a typed "runs
folder" must not become a way to create or overwrite files wherever the
server's user can write, nor a typed "GLUE folder" a way to read any file.
Each kind of folder has one root, the first of these that is set::

    kind    command line (after --)   environment       default
    runs    --runs-dir DIR            $MPO_RUNS_DIR     <repository>/runs
    cache   --cache-dir DIR           $MPO_CACHE_DIR    <repository>/cache
    glue    --glue-dir DIR            $GLUE_DIR         ../shared/glue (beside the repository)

for example ``streamlit run app/main.py -- --runs-dir /data/runs``. A typed path
is resolved (``~``, ``..`` and every symlink followed) and must then lie in its
root or below; the root is resolved the same way, so a root may itself be a
link. The root is also the field's default.

A symlink swapped in after the check is not caught (the check is not a
sandbox); it keeps people who reach the page from naming arbitrary folders.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from mpo_core.data.glue import GLUE_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class FolderKind:
    """One kind of folder field: how users call it and where its root comes from."""

    label: str  # as the page's field says it
    flag: str  # command-line option after ``--``
    env: str  # environment variable
    default: str  # root when neither is set


def _kinds() -> dict[str, FolderKind]:
    return {
        "runs": FolderKind("runs folder", "--runs-dir", "MPO_RUNS_DIR", str(ROOT / "runs")),
        "cache": FolderKind("cache folder", "--cache-dir", "MPO_CACHE_DIR", str(ROOT / "cache")),
        "glue": FolderKind("GLUE folder", "--glue-dir", GLUE_DIR_ENV, str(ROOT.parent / "shared" / "glue")),
    }


KINDS = tuple(_kinds())


def _resolve(path, label: str) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte, an unknown ~user
        raise ValueError(f"the {label} {str(path)!r} is not a usable path ({exc}).") from None


@dataclass(frozen=True)
class AllowedPaths:
    """The root folder of each kind of path field; typed paths must lie inside theirs."""

    runs: str  # run folders and job files are created only under this folder
    cache: str  # the Compare page's curve cache lives under this folder
    glue: str  # GLUE data are read only from under this folder

    def __post_init__(self):
        for kind in KINDS:
            if not str(getattr(self, kind)).strip():
                raise ValueError(f"the root of the {_kinds()[kind].label} is empty; give a folder.")

    def root(self, kind: str) -> Path:
        """The resolved root folder of ``kind`` (``"runs"``, ``"cache"`` or ``"glue"``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of folder {kind!r}; use one of {', '.join(KINDS)}.")
        return _resolve(getattr(self, kind), f"root of the {_kinds()[kind].label}")

    def check(self, kind: str, path) -> str:
        """``path`` resolved, if it lies in the root of ``kind`` (or is the root); else ``ValueError`` saying why.

        Relative paths are taken from the server's working directory, like every path Streamlit sees.
        """
        root = self.root(kind)
        about = _kinds()[kind]
        if path is None or not str(path).strip():
            raise ValueError(f"the {about.label} is empty; give a folder inside {root}.")
        resolved = _resolve(str(path).strip(), about.label)
        if resolved != root and root not in resolved.parents:
            raise ValueError(
                f"the {about.label} {str(path)!r} is outside {root} (it resolves to {resolved}): the dashboard "
                f"only uses {about.label}s inside that folder. Choose one inside it, or restart the dashboard "
                f"with {about.flag} DIR (after `--`) or ${about.env} naming the folder you want to allow."
            )
        return str(resolved)


def dashboard_roots(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AllowedPaths:
    """The roots of this dashboard: command line (``sys.argv`` after ``--``), then environment, then defaults."""
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for kind, about in _kinds().items():
        parser.add_argument(about.flag, dest=kind)
    try:
        flags, _ = parser.parse_known_args(argv)  # other arguments belong to someone else (pytest under AppTest)
    except argparse.ArgumentError as exc:
        raise ValueError(f"dashboard arguments: {exc}") from None
    roots = {kind: getattr(flags, kind) or environ.get(about.env) or about.default
             for kind, about in _kinds().items()}
    return AllowedPaths(**roots)

"""Where reproduction results live, in which mode, and what each record says about its run.

Every experiment ``name`` writes, per mode::

    results/<mode>/<name>.csv     the table (one row per run or point)
    results/<mode>/<name>.json    settings, the run records (results.json of each fine-tuning run),
                                  hardware, commit, versions, wall time, the command that regenerates it

Modes: ``small`` (tiny subsets and steps, minutes in all: what CI executes),
``full`` (the real experiment, with the CPU reductions stated in its
settings) and ``gpu`` (the full mode's design at the papers' scale: all
training data, max length 128, 3 epochs; for the GLUE grids on a GPU). The mode comes from ``$MPO_REPRO_MODE`` (default ``small``); the
folder from ``$MPO_RESULTS_DIR`` (default ``<repository>/results``). Files are
written atomically, so an interrupted experiment never leaves a half table.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from ..tensor.validation import check_choice
from ..runs.atomic_write import atomic_write_json, atomic_write_text
from ..runs.provenance import commit
from ..runs.run_folder import read_json

MODES = ("small", "full", "gpu")
ROOT = Path(__file__).resolve().parents[2]


def current_mode() -> str:
    """``$MPO_REPRO_MODE`` (``small`` unless set), checked."""
    return check_mode(os.environ.get("MPO_REPRO_MODE", "small"))


def check_mode(mode: str) -> str:
    return check_choice("mode (set MPO_REPRO_MODE=small, full or gpu)", mode, MODES)


def results_dir(mode: str | None = None) -> Path:
    """``$MPO_RESULTS_DIR/<mode>`` (default ``<repository>/results/<mode>``)."""
    base = Path(os.environ.get("MPO_RESULTS_DIR") or ROOT / "results")
    return base / check_mode(mode or current_mode())


def regenerate_command(name: str, mode: str) -> str:
    return f"python -m mpo_core reproduce {name} --mode {mode}"


def hardware() -> dict:
    """What ran it: CPU/GPU, core count, torch threads."""
    info = {"machine": platform.machine(), "processor": platform.processor() or "unknown",
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    return info


def versions() -> dict:
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}


@dataclass
class Results:
    """One experiment's table and its metadata (settings, run records, hardware, commit, wall time)."""

    name: str
    mode: str
    table: pd.DataFrame
    meta: dict

    @property
    def command(self) -> str:
        return regenerate_command(self.name, self.mode)

    def describe(self) -> str:
        """One line for a notebook: where, when and how the numbers were made."""
        m = self.meta
        device = (m.get("hardware") or {}).get("gpu") or f"CPU ({(m.get('hardware') or {}).get('cpu_count')} cores)"
        minutes = (m.get("wall_seconds") or 0) / 60
        return (f"{self.name} [{self.mode}]: {device}, commit {str(m.get('commit'))[:12]}, "
                f"finished {m.get('finished')}, {minutes:.1f} min; regenerate: {self.command}")


def save_results(name: str, mode: str, table: pd.DataFrame, settings: dict, records: list[dict],
                 wall_seconds: float) -> Results:
    """Write ``<name>.csv`` and ``<name>.json`` under :func:`results_dir` (JSON last: it marks completion)."""
    folder = results_dir(mode)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "mode": mode, "settings": settings, "records": records, "hardware": hardware(),
            "commit": commit(), "versions": versions(), "wall_seconds": wall_seconds,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "command": regenerate_command(name, mode)}
    atomic_write_text(folder / f"{name}.csv", table.to_csv(index=False))
    atomic_write_json(folder / f"{name}.json", meta, indent=1, default=str)
    return Results(name, mode, table, meta)


def load_results(name: str, mode: str) -> Results | None:
    """A finished experiment's results, or ``None`` when it has not been run in this mode."""
    folder = results_dir(mode)
    table_file, meta_file = folder / f"{name}.csv", folder / f"{name}.json"
    if not (table_file.is_file() and meta_file.is_file()):
        return None
    return Results(name, mode, pd.read_csv(table_file), read_json(meta_file))


def load_or_run(name: str, mode: str, run: Callable[[str], Results], force: bool = False) -> Results:
    """Stored results of ``name`` in ``mode`` when they exist (and not ``force``), else ``run(mode)``.

    Results saved as partial (``settings["partial"]``: an experiment stopped before its last point) are
    not an answer: the experiment runs, and its stored points are reused by it.
    """
    mode = check_mode(mode)
    stored = None if force else load_results(name, mode)
    if stored is not None and (stored.meta.get("settings") or {}).get("partial"):
        stored = None
    return stored if stored is not None else run(mode)


def missing_message(name: str, mode: str = "full") -> str:
    return (f"No {mode} results for {name} in {results_dir(mode)} yet; run `{regenerate_command(name, mode)}` "
            f"(see notebooks/README.md for its run time).")

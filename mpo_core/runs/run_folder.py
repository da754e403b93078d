"""A run's folder: config, metrics stream (JSONL), results, checkpoints.

::

    runs/<run_name>/
        config.json       the FineTuneConfig
        metrics.jsonl     one JSON object per line, appended and flushed as training goes
        results.json      final record (written last)
        final_model/      the trained model (save_mpo_model: safetensors + mpo_layers.json) and tokenizer
        checkpoints/      Trainer checkpoints (safetensors), for resuming
        STOP              present = please stop (a dashboard's stop button); training ends cleanly

The stream is appended line by line and fsynced, so a dashboard can draw
live curves and a crash loses nothing already written. JSON files are written
atomically (:mod:`~mpo_core.runs.atomic_write`); the readers here
(:func:`read_config`, :func:`read_run_results`, :func:`read_metrics`,
:func:`read_results`) are the one way to read them back.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .atomic_write import atomic_write_json

CONFIG_FILE, METRICS_FILE, RESULTS_FILE, CHECKPOINTS = "config.json", "metrics.jsonl", "results.json", "checkpoints"
STOP_FILE = "STOP"
FINAL_MODEL = "final_model"


def is_main_process() -> bool:
    """Rank 0 (or a single process): the only one that owns the run folder under torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


class RunFolder:
    """Create (or reopen, to resume) a run folder; other ranks of a distributed run only read its path."""

    def __init__(self, path: str | Path, resume: bool = False):
        self.path = Path(path)
        self.writer = is_main_process()
        if self.writer:
            self.check(self.path, resume)
            self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def check(path: Path, resume: bool) -> None:
        """Refuse to overwrite a run, or to resume one that does not exist."""
        if path.exists() and not resume:
            raise FileExistsError(f"run folder {path} exists; choose another run_name, delete it, or resume it (--resume).")
        if resume and not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"cannot resume: {path / CONFIG_FILE} does not exist.")

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def has_checkpoint(self) -> bool:
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("checkpoint-*"))

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    def write_json(self, name: str, data: dict) -> None:
        """Write atomically: a half-written file never replaces a good one."""
        if not self.writer:
            return
        atomic_write_json(self.path / name, data, indent=1, default=str)

    def append_metrics(self, record: dict) -> None:
        if not self.writer:
            return
        line = json.dumps({"time": time.time(), **record}, default=float)
        with open(self.path / METRICS_FILE, "a") as stream:
            stream.write(line + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def request_stop(path: str | Path) -> None:
    """Ask the run in ``path`` (possibly another process) to stop after its current step."""
    (Path(path) / STOP_FILE).touch()


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a run's metrics stream (a torn last line is ignored)."""
    file = Path(path) / METRICS_FILE
    if not file.is_file():
        return []
    records = []
    for line in file.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_json(file: str | Path):
    """The JSON in ``file``; a torn or invalid file raises ``ValueError`` naming it."""
    file = Path(file)
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc}); it may be torn or hand-edited: "
                         "delete it or write it again.") from None


def read_config(run_path: str | Path) -> dict:
    """A run's ``config.json`` as a dict (``FineTuneConfig.from_dict`` turns it into a config)."""
    file = Path(run_path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist: {Path(run_path)} is not a run folder.")
    return read_json(file)


def read_run_results(run_path: str | Path) -> dict | None:
    """A run's ``results.json``, or ``None`` while it has not finished."""
    file = Path(run_path) / RESULTS_FILE
    return read_json(file) if file.is_file() else None


def read_results(runs_dir: str | Path) -> list[dict]:
    """The ``results.json`` of every finished run under ``runs_dir``."""
    return [read_json(f) for f in sorted(Path(runs_dir).glob(f"*/{RESULTS_FILE}"))]

"""A run's folder: config, metrics stream (JSONL), results, checkpoints.

::

    runs/<run_name>/
        config.json       the FineTuneConfig
        metrics.jsonl     one JSON object per line, appended and flushed as training goes
        results.json      final record (written last)
        final_model/      the trained model (save_mpo_model: safetensors + mpo_layers.json) and tokenizer
        checkpoints/      Trainer checkpoints (safetensors), for resuming
            checkpoint-N/complete.json   written after everything else of the checkpoint: it is whole
        STOP              present = please stop (a dashboard's stop button); training ends cleanly

The stream is appended line by line and fsynced, so a dashboard can draw
live curves and a crash loses nothing already written. JSON files are written
atomically (:mod:`~mpo_core.runs.atomic_write`); the readers here
(:func:`read_config`, :func:`read_run_results`, :func:`read_metrics`,
:func:`read_results`) are the one way to read them back.

Crash safety: the folder is created exclusively (``mkdir``), so two starts
with one name cannot both run, and held by one process at a time (an
exclusive lock on ``<run>/.lock``, :mod:`~mpo_core.runs.run_lock`), so two
resumes of one run cannot both run either. A checkpoint counts only once its
``complete.json`` exists; it records how many lines the metrics stream had,
and a resumed run cuts the stream back to that many (:meth:`RunFolder.rewind_metrics`)
before it appends a ``resume`` record, so however often a run is killed and
resumed, readers see every step once.
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from ..json_file import loads_bounded, read_json_bounded
from .atomic_write import atomic_write_bytes, atomic_write_json
from .run_lock import RunLock

CONFIG_FILE, METRICS_FILE, RESULTS_FILE, CHECKPOINTS = "config.json", "metrics.jsonl", "results.json", "checkpoints"
COMPLETE_FILE = "complete.json"  # inside a checkpoint folder, written last
STOP_FILE = "STOP"
FINAL_MODEL = "final_model"
ADAPTER = "adapter"  # <run>/adapter: the trained tensors as a task adapter (save_adapter)


def is_main_process() -> bool:
    """Rank 0 (or a single process): the only one that owns the run folder under torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


class FinalWriteError(OSError):
    """A write after training failed; the run stays resumable (:meth:`RunFolder.final_write`)."""


def is_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed write: an ``OSError``, or how torch (``RuntimeError``) and safetensors report one."""
    return isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError"


class RunFolder:
    """Create (or reopen, to resume) a run folder and hold it; other ranks of a distributed run only read its path.

    The writer (rank 0) holds the folder's lock from here until :meth:`close` (or
    its process ends): a second process for the same run is refused, naming this one.
    Use it as a context manager to close it however the run ends.
    """

    def __init__(self, path: str | Path, resume: bool = False):
        self.path = Path(path)
        self.writer = is_main_process()
        self.lock: RunLock | None = None
        self.created = False  # this process made the folder (a fresh run)
        if self.writer:
            self.check(self.path, resume)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:  # exclusive: of two starts with one name, one gets the folder, the other this error
                self.path.mkdir(exist_ok=resume)
            except FileExistsError:
                raise FileExistsError(self._exists_message(self.path)) from None
            self.created = not resume
            self.lock = RunLock(self.path)  # a live holder: RunInUseError naming it
            if resume:  # again, now that it is ours: the holder we waited on may have finished it
                self._check_or_release(resume)

    def _check_or_release(self, resume: bool) -> None:
        try:
            self.check(self.path, resume)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Let the run go: another process may now resume it."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def abandon(self) -> None:
        """Delete the folder this process just created and let it go (its config could not be written)."""
        import shutil

        if self.writer and self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        self.close()

    @staticmethod
    def _exists_message(path: Path) -> str:
        return f"run folder {path} exists; choose another run_name, delete it, or resume it (--resume)."

    @staticmethod
    def check(path: Path, resume: bool) -> None:
        """Refuse to overwrite a run, to resume one that does not exist, or one that has finished."""
        if path.exists() and not resume:
            raise FileExistsError(RunFolder._exists_message(path))
        if resume and not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"cannot resume: {path / CONFIG_FILE} does not exist.")
        if resume and (path / RESULTS_FILE).is_file():
            raise FileExistsError(f"cannot resume {path}: it has finished ({RESULTS_FILE} exists); "
                                  "start a new run under another run_name.")

    #: Steps done before the Trainer's count began: a run resumed without a Trainer checkpoint
    #: (``mpop``'s own state) restarts the Trainer at step 0, and its records number on from here.
    step_offset: int = 0

    def step(self, global_step: int) -> int:
        """The run's step number of the Trainer's ``global_step`` (what records carry)."""
        return global_step + self.step_offset

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def has_checkpoint(self) -> bool:
        return self.last_checkpoint() is not None

    def last_checkpoint(self) -> Path | None:
        """The newest *complete* Trainer checkpoint, or ``None`` (:func:`checkpoint_complete`)."""
        complete = [p for p in _checkpoint_folders(self.checkpoints) if checkpoint_complete(p)]
        return complete[-1] if complete else None

    def discard_incomplete_checkpoints(self) -> list[Path]:
        """Delete checkpoints a crash left half-written; the ones deleted."""
        import shutil

        incomplete = [p for p in _checkpoint_folders(self.checkpoints) if not checkpoint_complete(p)]
        if self.writer:
            for folder in incomplete:
                shutil.rmtree(folder, ignore_errors=True)
        return incomplete

    def mark_checkpoint_complete(self, folder: str | Path, step: int) -> None:
        """Declare ``folder`` whole, with the metrics stream's length now (the Trainer has written the rest)."""
        if self.writer:
            atomic_write_json(Path(folder) / COMPLETE_FILE, {"step": step, "metrics_lines": self.metrics_lines()})

    def metrics_lines(self) -> int:
        """Complete lines in the metrics stream (a torn last line does not count)."""
        file = self.path / METRICS_FILE
        return file.read_bytes().count(b"\n") if file.is_file() else 0

    def resume_point(self, checkpoint: Path | None) -> int:
        """How many metrics lines were written when ``checkpoint`` was saved (0 without one).

        From its ``complete.json``; a checkpoint of an older version has none, and
        then the records up to its step are kept.
        """
        if checkpoint is None:
            return 0
        marker = checkpoint / COMPLETE_FILE
        if marker.is_file():
            record = read_json(marker)
            lines = record.get("metrics_lines") if isinstance(record, dict) else None
            if type(lines) is not int or lines < 0:
                raise ValueError(f"{marker}: metrics_lines must be a non-negative integer, got {str(lines)[:40]!r} "
                                 f"(it may be hand-edited): delete {checkpoint} to resume from the checkpoint before.")
            return lines
        step = int(checkpoint.name.split("-")[1])
        records = read_metrics(self.path)
        after = next((i for i, r in enumerate(records) if isinstance(r.get("step"), int) and r["step"] > step),
                     len(records))
        return after

    def rewind_metrics(self, lines: int) -> None:
        """Keep only the first ``lines`` records of the metrics stream (what a resumed run restarts from)."""
        file = self.path / METRICS_FILE
        if not self.writer or not file.is_file():
            return
        kept = file.read_bytes().split(b"\n")[:lines]
        atomic_write_bytes(file, b"".join(line + b"\n" for line in kept))

    def stop_requested(self) -> bool:
        return (self.path / STOP_FILE).exists()

    @contextmanager
    def final_write(self, name: str):
        """Around writing ``<run>/<name>`` after training (the final model, the adapter, ``results.json``).

        A failed write (a full disk, most often) becomes one :class:`FinalWriteError` saying what was not
        written; the run is not marked finished (``results.json`` comes last) and keeps its checkpoints, so
        ``--resume`` writes it all again.
        """
        try:
            yield self.path / name
        except Exception as exc:
            if not is_write_failure(exc):
                raise
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise FinalWriteError(
                f"could not write {self.path / name} ({detail}); the run is not marked finished and its checkpoints "
                f"are kept: free disk space, then resume it (--resume --run-name {self.path.name}) to write the "
                "final model and results again.") from exc

    def write_json(self, name: str, data: dict) -> None:
        """Write atomically: a half-written file never replaces a good one (non-finite numbers as ``null``)."""
        if not self.writer:
            return
        atomic_write_json(self.path / name, finite_json(data), indent=1, default=str)

    def append_metrics(self, record: dict) -> None:
        if not self.writer:
            return
        line = json.dumps(finite_json({"time": time.time(), **record}), default=float, allow_nan=False)
        with open(self.path / METRICS_FILE, "a") as stream:
            stream.write(line + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def _checkpoint_folders(folder: Path) -> list[Path]:
    """``checkpoint-N`` folders in ``folder``, oldest step first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def checkpoint_complete(folder: Path) -> bool:
    """Whether a Trainer checkpoint folder is whole.

    ``complete.json`` is written after the Trainer's last file; checkpoints of
    older versions count when their ``trainer_state.json`` (the Trainer's last
    file) reads as JSON.
    """
    if (folder / COMPLETE_FILE).is_file():
        return True
    try:
        read_json_bounded(folder / "trainer_state.json")
    except (OSError, ValueError):
        return False
    return not any(folder.parent.glob(f"*/{COMPLETE_FILE}"))  # a run of this version marks all of its own


def finite_json(value):
    """``value`` with every NaN/infinite float (numpy and torch scalars included) as ``None``.

    JSON has no NaN or Infinity; writing them makes files other tools reject.
    """
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def request_stop(path: str | Path) -> None:
    """Ask the run in ``path`` (possibly another process) to stop after its current step."""
    (Path(path) / STOP_FILE).touch()


#: the longest line of a metrics stream read (longer ones are skipped, like torn ones)
MAX_METRICS_LINE = 1 << 20


def read_metrics(path: str | Path) -> list[dict]:
    """All records of a run's metrics stream (a torn last line, or any line that is no bounded JSON object, is ignored)."""
    file = Path(path) / METRICS_FILE
    if not file.is_file():
        return []
    records = []
    with open(file, "rb") as stream:
        for line in _bounded_lines(stream, MAX_METRICS_LINE):
            try:
                record = loads_bounded(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def _bounded_lines(stream, limit: int):
    """The lines of binary ``stream``, each read at most ``limit`` bytes at a time; longer ones are dropped whole."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit:
            yield line
            continue
        while line and not line.endswith(b"\n"):  # skip the rest of the long line
            line = stream.readline(limit + 1)


def read_json(file: str | Path):
    """The JSON in ``file``; a torn, invalid, non-UTF-8, too large or too deep file raises ``ValueError`` naming it.

    Reads through :func:`~mpo_core.json_file.read_json_bounded` (at most
    ``MAX_JSON_BYTES``, nesting at most ``MAX_JSON_DEPTH``), so no file makes
    the reader run out of memory or recursion.
    """
    return read_json_bounded(file)


def read_json_object(file: str | Path) -> dict:
    """:func:`read_json`, and a ``ValueError`` naming ``file`` unless it holds a JSON object."""
    data = read_json(file)
    if not isinstance(data, dict):
        raise ValueError(f"{file} holds a JSON {type(data).__name__}, not the JSON object (a dict) of a run record; "
                         "it may be hand-edited: delete it or write it again.")
    return data


def read_config(run_path: str | Path) -> dict:
    """A run's ``config.json`` as a dict (``FineTuneConfig.from_dict`` turns it into a config)."""
    file = Path(run_path) / CONFIG_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist: {Path(run_path)} is not a run folder.")
    return read_json_object(file)


def read_run_results(run_path: str | Path) -> dict | None:
    """A run's ``results.json``, or ``None`` while it has not finished (an unreadable one raises, naming it)."""
    file = Path(run_path) / RESULTS_FILE
    return read_json_object(file) if file.is_file() else None


#: why a run record may be unreadable: torn, invalid, too large/deep, not a dict (ValueError), no permission (OSError)
RECORD_ERRORS = (ValueError, OSError, MemoryError, RecursionError)


def read_results(runs_dir: str | Path, problems: list | None = None) -> list[dict]:
    """The ``results.json`` of every finished run under ``runs_dir``.

    A file that cannot be read as a run record, whatever the reason (torn,
    not JSON, not UTF-8, too large or too deeply nested, not a JSON object,
    no permission), is skipped; its message (naming it) goes to ``problems``
    when given.
    """
    out = []
    for file in sorted(Path(runs_dir).glob(f"*/{RESULTS_FILE}")):
        try:
            out.append(read_json_object(file))
        except RECORD_ERRORS as exc:
            if problems is not None:
                problems.append(str(exc) if str(file) in str(exc) else f"{file}: {exc or type(exc).__name__}")
    return out

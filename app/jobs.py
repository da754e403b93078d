"""Background training jobs for the dashboard (no streamlit import).

A job is ``python -m mpo_core finetune --config FILE`` in its own process
session, so it outlives page reloads and even a restart of the app. Everything
it produces goes to its run folder (``<runs_dir>/<run_name>/``: metrics
stream, results); the dashboard only reads those files, so two browser tabs
see the same runs and cannot corrupt each other's. Bookkeeping of the
process itself (pid, launch config, console log) lives in
``<runs_dir>/.jobs/``.

Names are claimed atomically: :func:`start_job` first creates
``.jobs/<name>.log`` exclusively (``O_CREAT | O_EXCL``), so of two starts with
one name at the same moment exactly one launches and the other is refused;
an existing log is never truncated. Every function taking a run name checks
it with :func:`~mpo_core.runs.run_name.check_run_name` (no path escapes).

Jobs are reaped: each launched process gets a daemon thread that waits for it,
so a finished job does not stay a zombie while the server lives (a job that
outlives the server is adopted and reaped by init). Polling alone would leave
a zombie for as long as no page looks at the run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from mpo_core.training.fine_tune_config import FineTuneConfig
from mpo_core.data.glue import glue_file
from mpo_core.runs.process_alive import process_alive
from mpo_core.runs.atomic_write import atomic_write_json
from mpo_core.runs.run_folder import CONFIG_FILE, RESULTS_FILE, read_json, request_stop
from mpo_core.runs.run_name import RUN_NAME_PATTERN, check_run_name

ROOT = Path(__file__).resolve().parents[1]
JOBS_DIR = ".jobs"
STATUSES = ("starting", "running", "finished", "stopped", "failed")


@dataclass(frozen=True)
class Job:
    run_name: str
    runs_dir: str
    pid: int
    started: float

    @property
    def run_path(self) -> Path:
        return Path(self.runs_dir) / self.run_name

    @property
    def log_path(self) -> Path:
        return Path(self.runs_dir) / JOBS_DIR / f"{self.run_name}.log"


def _jobs_dir(runs_dir) -> Path:
    return Path(runs_dir) / JOBS_DIR


def progress_path(runs_dir, run_name: str) -> Path:
    """The job's progress file: phase and step n of N from its first second (see :mod:`mpo_core.runs.progress_file`)."""
    return _jobs_dir(runs_dir) / f"{check_run_name(run_name)}.progress.json"


def _command(config_file: Path, progress_file: Path) -> list[str]:
    # --threads auto: the cores other processes leave free, re-measured as the run goes (a busy machine's other
    # core would otherwise make two OpenMP threads wait on each other)
    return [sys.executable, "-m", "mpo_core", "finetune", "--config", str(config_file), "--threads", "auto",
            "--progress", str(progress_file)]


def _claim(log_file: Path, name: str, runs_dir) -> BinaryIO:
    """The job's log, created exclusively: the atomic claim on the name (never truncates an existing log)."""
    try:
        return open(log_file, "xb")
    except FileExistsError:
        raise FileExistsError(f"a run named {name!r} already exists in {runs_dir}; choose another name.") from None


def _reap_when_done(process: subprocess.Popen) -> None:
    """Wait for ``process`` in a daemon thread, so that it is reaped as soon as it ends."""
    threading.Thread(target=process.wait, name=f"reap-job-{process.pid}", daemon=True).start()


def start_job(config: FineTuneConfig) -> Job:
    """Launch a fine-tuning run in the background.

    Refuses an unsafe run name (``ValueError``), a run name already in use
    (``FileExistsError``, also when another start claims it at the same moment)
    and missing GLUE files (``FileNotFoundError``): a message now rather than a
    failed job later.
    """
    name = check_run_name(config.run_name)  # again: a config's fields can change after it was validated
    if not config.hub_data:
        for split in ("train", "dev"):
            glue_file(config.task, split, config.data_dir)
    jobs = _jobs_dir(config.runs_dir)
    jobs.mkdir(parents=True, exist_ok=True)
    if (Path(config.runs_dir) / name).exists() or (jobs / f"{name}.json").exists():
        raise FileExistsError(f"a run named {name!r} already exists in {config.runs_dir}; choose another name.")
    config_file = jobs / f"{name}.config.json"
    with _claim(jobs / f"{name}.log", name, config.runs_dir) as log:
        try:
            atomic_write_json(config_file, config.to_dict())
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            process = subprocess.Popen(
                _command(config_file, progress_path(config.runs_dir, name)), cwd=str(ROOT), stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=env,
            )
        except BaseException:  # nothing launched: give the name back
            config_file.unlink(missing_ok=True)
            Path(log.name).unlink(missing_ok=True)
            raise
    _reap_when_done(process)
    job = Job(name, str(config.runs_dir), process.pid, time.time())
    atomic_write_json(jobs / f"{name}.json", asdict(job), indent=None)
    return job


def find_job(runs_dir, run_name: str) -> Job | None:
    file = _jobs_dir(runs_dir) / f"{check_run_name(run_name)}.json"
    return Job(**read_json(file)) if file.is_file() else None


def run_status(runs_dir, run_name: str) -> str:
    """``starting`` / ``running`` / ``finished`` / ``stopped`` / ``failed`` from the files and the process.

    The one status of a run: :func:`scan_runs` rows carry it, and a page reads it once per page run
    (a live view that finds it changed redraws the page, so no two places disagree).
    """
    path = Path(runs_dir) / check_run_name(run_name)
    if (path / RESULTS_FILE).is_file():
        return "stopped" if (path / "STOP").exists() else "finished"
    job = find_job(runs_dir, run_name)
    if job is not None and process_alive(job.pid):
        return "running" if (path / CONFIG_FILE).is_file() else "starting"
    return "failed"


def stop_job(runs_dir, run_name: str) -> None:
    """Ask a run to stop after its current step (it still evaluates and writes its results)."""
    path = Path(runs_dir) / check_run_name(run_name)
    if not path.is_dir():
        raise FileNotFoundError(f"no run folder {path} (yet): nothing to stop.")
    request_stop(path)


def log_tail(runs_dir, run_name: str, lines: int = 30) -> str:
    """The last lines of a job's console output (errors of a failed run)."""
    file = _jobs_dir(runs_dir) / f"{check_run_name(run_name)}.log"
    if not file.is_file():
        return ""
    text = file.read_bytes()[-20000:].decode(errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])


def run_config(runs_dir, run_name: str) -> dict:
    """A run's config: its run folder's, or the launch config of a job that has not created the folder yet."""
    check_run_name(run_name)
    for file in (Path(runs_dir) / run_name / CONFIG_FILE, _jobs_dir(runs_dir) / f"{run_name}.config.json"):
        if file.is_file():
            return read_json(file)
    raise FileNotFoundError(f"no run or job named {run_name!r} in {runs_dir}.")


def _run_names(root: Path) -> dict[str, Path]:
    """Run name -> its config file: run folders, plus launched jobs whose folder does not exist yet."""
    names = {p.name: p / CONFIG_FILE for p in root.iterdir()
             if p.is_dir() and p.name != JOBS_DIR and (p / CONFIG_FILE).is_file()}
    for file in _jobs_dir(root).glob("*.config.json"):
        names.setdefault(file.name.removesuffix(".config.json"), file)
    return names


@dataclass(frozen=True)
class RunListing:
    """The runs under a runs folder, and the ones left out because a file of theirs is unreadable."""

    rows: list[dict] = field(default_factory=list)  # name, task, strategy, status, score, ...; newest first
    problems: list[str] = field(default_factory=list)  # one line per run left out, naming its file


def _json_object(file: Path) -> dict:
    value = read_json(file)  # a torn file: ValueError naming it
    if not isinstance(value, dict):
        raise ValueError(f"{file} holds a JSON {type(value).__name__}, not an object; delete it or write it again.")
    return value


def _row(root: Path, name: str, config_file: Path) -> dict:
    config = _json_object(config_file)
    results_file = root / name / RESULTS_FILE
    results = _json_object(results_file) if results_file.is_file() else {}
    return {
        "run": name, "task": config.get("task"), "strategy": config.get("strategy"),
        "status": run_status(root, name), "score": results.get("score"), "metric": results.get("metric"),
        "modified": config_file.stat().st_mtime,
    }


def scan_runs(runs_dir) -> RunListing:
    """Every run under ``runs_dir``, newest first, and a line per run left out.

    A job just launched is listed (as ``starting``) before its run folder exists.
    A run whose config or results file is torn (or whose folder name is no valid
    run name) is left out and named in ``problems``, instead of breaking the list.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return RunListing()
    listing = RunListing()
    for name, config_file in _run_names(root).items():
        if not RUN_NAME_PATTERN.fullmatch(name):
            listing.problems.append(f"{root / name}: {name!r} is not a valid run name, so it is not listed.")
            continue
        try:
            listing.rows.append(_row(root, name, config_file))
        except (OSError, ValueError) as exc:
            listing.problems.append(f"run {name!r} is not listed: {exc}")
    listing.rows.sort(key=lambda r: -r["modified"])
    return listing


def list_runs(runs_dir) -> list[dict]:
    """The rows of :func:`scan_runs` (runs with unreadable files left out)."""
    return scan_runs(runs_dir).rows

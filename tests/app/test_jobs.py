"""Background jobs: real ``python -m mpo_core finetune`` processes on the packaged model and real GLUE."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app import jobs
from mpo_core.training.fine_tune_config import FineTuneConfig

GLUE = Path(__file__).resolve().parents[3] / "shared" / "glue"


def tiny_squeeze(runs_dir, name, squeeze_steps=2) -> FineTuneConfig:
    return FineTuneConfig(
        task="rte", data_dir=str(GLUE), strategy="mpop", num_hidden_layers=1, max_length=32,
        max_train_examples=64, max_eval_examples=16, batch_size=8, learning_rate=1e-3, logging_steps=1,
        runs_dir=str(runs_dir), run_name=name,
        strategy_options={"mpo_config": {"groups": ["query"]}, "lfa_steps": 2, "tune_steps": 1,
                          # a cut removes 0.2 % of the dense model (step_size is a model share now, no bond step)
                          "squeeze_steps": squeeze_steps, "step_size": 0.002, "delta": 1.0},
    )


def wait_for(runs_dir, name, statuses, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = jobs.run_status(runs_dir, name)
        if status in statuses:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{name} still {jobs.run_status(runs_dir, name)}; log:\n{jobs.log_tail(runs_dir, name)}")


@pytest.mark.slow  # a real background training job
def test_a_job_runs_in_the_background_and_is_listed(tmp_path):
    job = jobs.start_job(tiny_squeeze(tmp_path, "bg"))
    assert jobs.find_job(tmp_path, "bg") == job
    (row,) = jobs.list_runs(tmp_path)  # listed at once, before the process has made its run folder
    assert row["run"] == "bg" and row["status"] in ("starting", "running")
    assert jobs.run_config(tmp_path, "bg")["strategy_options"]["squeeze_steps"] == 2
    assert wait_for(tmp_path, "bg", {"finished", "failed"}) == "finished", jobs.log_tail(tmp_path, "bg")
    results = json.loads((tmp_path / "bg" / "results.json").read_text())
    assert results["squeeze"]["steps_accepted"] == 2
    (row,) = jobs.list_runs(tmp_path)
    assert row["run"] == "bg" and row["status"] == "finished" and row["strategy"] == "mpop"
    with pytest.raises(FileExistsError, match="already exists"):
        jobs.start_job(tiny_squeeze(tmp_path, "bg"))


@pytest.mark.slow  # a real background training job
def test_the_stop_button_ends_a_job_cleanly(tmp_path):
    jobs.start_job(tiny_squeeze(tmp_path, "long", squeeze_steps=400))
    wait_for(tmp_path, "long", {"running", "failed"})
    deadline = time.time() + 120
    while not (tmp_path / "long" / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.5)
    jobs.stop_job(tmp_path, "long")
    assert wait_for(tmp_path, "long", {"stopped", "finished", "failed"}) == "stopped", jobs.log_tail(tmp_path, "long")
    results = json.loads((tmp_path / "long" / "results.json").read_text())
    assert results["squeeze"]["steps_accepted"] < 400


def test_missing_glue_data_is_refused_before_launching(tmp_path):
    config = tiny_squeeze(tmp_path, "no-data")
    config.data_dir = str(tmp_path / "no-glue-here")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        jobs.start_job(config)
    assert jobs.list_runs(tmp_path) == [] and jobs.find_job(tmp_path, "no-data") is None


@pytest.mark.slow  # a real background training job
def test_a_job_that_fails_shows_its_error(tmp_path):
    config = tiny_squeeze(tmp_path, "broken")
    config.model = str(tmp_path / "no-model-here")
    jobs.start_job(config)
    assert wait_for(tmp_path, "broken", {"failed", "finished"}) == "failed"
    assert "could not load a model" in jobs.log_tail(tmp_path, "broken")
    (row,) = jobs.list_runs(tmp_path)  # no run folder was ever made: still listed, as failed
    assert row["run"] == "broken" and row["status"] == "failed" and row["task"] == "rte"
    with pytest.raises(FileNotFoundError, match="nothing to stop"):
        jobs.stop_job(tmp_path, "broken")


# --------------------------------------------------------------------------- names, claims, reaping, listings
HOSTILE_NAMES = ["../../x", "/abs/path", "..", ".hidden", "a/b", "", "x" * 200]


def _no_training(monkeypatch, seconds: float = 0.0) -> None:
    """Jobs launch a tiny stand-in process instead of a training run."""
    monkeypatch.setattr(jobs, "_command", lambda config_file, progress_file: [sys.executable, "-c", f"import time; time.sleep({seconds})"])


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_run_names_are_refused_everywhere(tmp_path, monkeypatch, name):
    _no_training(monkeypatch)
    runs = tmp_path / "runs"
    config = tiny_squeeze(runs, "fine")
    config.run_name = name  # changed after validation: start_job checks again
    with pytest.raises(ValueError, match="is not allowed"):
        jobs.start_job(config)
    for call in (jobs.find_job, jobs.run_status, jobs.stop_job, jobs.log_tail, jobs.run_config):
        with pytest.raises(ValueError, match="is not allowed"):
            call(runs, name)
    assert list(tmp_path.rglob("*")) == []  # nothing written, inside the runs folder or out of it


def test_two_simultaneous_starts_with_one_name_launch_once(tmp_path, monkeypatch):
    _no_training(monkeypatch, seconds=1)
    launched = []
    popen = subprocess.Popen
    monkeypatch.setattr(jobs.subprocess, "Popen", lambda *a, **k: launched.append(a) or popen(*a, **k))
    both_checked = threading.Barrier(2)
    claim = jobs._claim

    def claim_together(*args):  # both starts are past the existence checks before either claims the name
        both_checked.wait(timeout=10)
        return claim(*args)

    monkeypatch.setattr(jobs, "_claim", claim_together)
    outcomes = []

    def start():
        try:
            outcomes.append(jobs.start_job(tiny_squeeze(tmp_path, "twin")))
        except FileExistsError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(launched) == 1
    [job] = [o for o in outcomes if isinstance(o, jobs.Job)]
    [refused] = [o for o in outcomes if isinstance(o, FileExistsError)]
    assert "already exists" in str(refused) and jobs.find_job(tmp_path, "twin") == job


def test_an_existing_log_is_never_truncated(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    (tmp_path / ".jobs").mkdir()
    (tmp_path / ".jobs" / "kept.log").write_text("earlier output")
    with pytest.raises(FileExistsError, match="already exists"):
        jobs.start_job(tiny_squeeze(tmp_path, "kept"))
    assert (tmp_path / ".jobs" / "kept.log").read_text() == "earlier output"
    assert not (tmp_path / ".jobs" / "kept.config.json").exists()


def test_a_failed_launch_gives_the_name_back(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "_command", lambda config_file, progress_file: [str(tmp_path / "no-such-program")])
    with pytest.raises(FileNotFoundError):
        jobs.start_job(tiny_squeeze(tmp_path, "retry"))
    assert sorted(p.name for p in (tmp_path / ".jobs").iterdir()) == []
    _no_training(monkeypatch)
    assert jobs.start_job(tiny_squeeze(tmp_path, "retry")).run_name == "retry"


def _zombie_or_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # a zombie keeps its /proc entry until it is reaped


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc to see zombies")
def test_a_finished_job_is_reaped_without_anyone_polling_it(tmp_path, monkeypatch):
    _no_training(monkeypatch)
    job = jobs.start_job(tiny_squeeze(tmp_path, "short"))
    deadline = time.time() + 30
    while _zombie_or_alive(job.pid) and time.time() < deadline:
        time.sleep(0.1)  # nothing here calls run_status (which would reap it as it polls)
    assert not _zombie_or_alive(job.pid), Path(f"/proc/{job.pid}/stat").read_text()


def _write_run(runs: Path, name: str, config: str, results: str | None = None) -> None:
    (runs / name).mkdir(parents=True)
    (runs / name / "config.json").write_text(config)
    if results is not None:
        (runs / name / "results.json").write_text(results)


def test_a_torn_file_leaves_its_run_out_of_the_list_and_names_it(tmp_path):
    good = json.dumps({"task": "rte", "strategy": "full"})
    _write_run(tmp_path, "good", good, json.dumps({"score": 0.5, "metric": "accuracy"}))
    _write_run(tmp_path, "torn-config", good[:10])
    _write_run(tmp_path, "torn-results", good, '{"score": 0.')
    _write_run(tmp_path, "a-list", "[1, 2]")
    listing = jobs.scan_runs(tmp_path)
    assert [r["run"] for r in listing.rows] == ["good"] and listing.rows[0]["score"] == 0.5
    assert len(listing.problems) == 3
    for name, file in (("torn-config", "config.json"), ("torn-results", "results.json"), ("a-list", "config.json")):
        [line] = [p for p in listing.problems if f"run {name!r}" in p]
        assert str(tmp_path / name / file) in line
    assert jobs.list_runs(tmp_path) == listing.rows


def test_the_listing_and_run_status_give_every_run_one_status(tmp_path):
    """Each of the five statuses, from files only: the runs list says what run_status says (pages show both)."""
    config = json.dumps({"task": "rte", "strategy": "opf"})
    (tmp_path / ".jobs").mkdir()

    def job(name: str, pid: int) -> None:
        (tmp_path / ".jobs" / f"{name}.json").write_text(json.dumps(
            {"run_name": name, "runs_dir": str(tmp_path), "pid": pid, "started": time.time()}))

    (tmp_path / ".jobs" / "starting.config.json").write_text(config)  # launched; no run folder yet
    job("starting", os.getpid())
    _write_run(tmp_path, "running", config)
    job("running", os.getpid())
    _write_run(tmp_path, "finished", config, "{}")
    _write_run(tmp_path, "stopped", config, "{}")
    (tmp_path / "stopped" / "STOP").touch()
    _write_run(tmp_path, "failed", config)  # no live process, no results
    rows = {r["run"]: r["status"] for r in jobs.scan_runs(tmp_path).rows}
    assert rows == {name: name for name in jobs.STATUSES}
    assert rows == {name: jobs.run_status(tmp_path, name) for name in rows}

"""Several processes sharing a GLUE grid: runs are claimed with lock files, held runs are skipped then awaited."""
import json
import os
import subprocess
import sys

import pytest

from mpo_core.reproduction import glue_grid
from mpo_core.runs.run_folder import RESULTS_FILE


@pytest.fixture
def fake_fine_tune(monkeypatch, tmp_path):
    """fine_tune replaced by a stub that writes the run folder's results.json and logs the run names."""
    calls = []

    def fine_tune(config):
        folder = tmp_path / "results" / "small" / "runs" / "grid" / config.run_name
        assert glue_grid._lock_path(folder).read_text() == str(os.getpid())  # the run is claimed while it runs
        folder.mkdir(parents=True)
        record = {"run_name": config.run_name, "score": 0.5, "trainable_millions": 1.0, "total_millions": 2.0}
        (folder / RESULTS_FILE).write_text(json.dumps(record))
        calls.append(config.run_name)
        return record

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr("mpo_core.training.fine_tune.fine_tune", fine_tune)
    return calls


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_held_by_a_live_process_is_skipped_and_a_stale_lock_is_taken_over(fake_fine_tune, tmp_path):
    spec = glue_grid.RunSpec("full", "rte", "full")
    folder = glue_grid.runs_root("grid", "small") / spec.run_name
    lock = glue_grid._lock_path(folder)
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getppid()))  # a live process (our parent) holds it
    assert glue_grid.run_one(spec, "small", "grid", wait=False) is None
    assert fake_fine_tune == [] and lock.exists()

    lock.write_text(str(_dead_pid()))  # its process died: stale
    record = glue_grid.run_one(spec, "small", "grid", wait=False)
    assert record["run_name"] == spec.run_name and fake_fine_tune == [spec.run_name]
    assert not lock.exists()  # released after the run
    assert glue_grid.run_one(spec, "small", "grid") == record and fake_fine_tune == [spec.run_name]  # reused


def test_run_grid_runs_free_cells_first_then_waits_for_held_ones(fake_fine_tune, monkeypatch):
    specs = [glue_grid.RunSpec("full", task, "full") for task in ("rte", "mrpc")]
    held = glue_grid.runs_root("grid", "small") / specs[0].run_name
    glue_grid._lock_path(held).parent.mkdir(parents=True)
    glue_grid._lock_path(held).write_text(str(os.getppid()))

    def other_process_finishes(seconds):  # while we wait, the holder finishes the run and releases it
        held.mkdir(parents=True, exist_ok=True)
        (held / RESULTS_FILE).write_text(json.dumps({"run_name": specs[0].run_name, "score": 0.75}))
        glue_grid._lock_path(held).unlink()

    monkeypatch.setattr(glue_grid.time, "sleep", other_process_finishes)
    results = glue_grid.run_grid("grid", specs, "small")
    assert fake_fine_tune == [specs[1].run_name]  # only the free cell ran here
    assert list(results.table["run"]) == [s.run_name for s in specs]  # rows keep the specs' order
    assert list(results.table["score"]) == [0.75, 0.5]


def test_a_run_another_process_finished_and_kept_is_taken_as_kept_not_finished_again(fake_fine_tune, monkeypatch):
    # OPF's finish (a merge check with a latency measurement) ran twice per helper run, the second overwriting
    # the first: the collecting process saw results.json before the helper had finished and kept the record
    specs = [glue_grid.RunSpec("opf", task, "opf") for task in ("rte", "mrpc")]
    held = glue_grid.runs_root("grid", "small") / specs[0].run_name
    glue_grid._lock_path(held).parent.mkdir(parents=True)
    glue_grid._lock_path(held).write_text(str(os.getppid()))
    finished = []

    def finish(spec, record, folder):
        finished.append(spec.run_name)
        return {**record, "merge_check": {"by": "this process"}}

    def other_process_finishes(seconds):  # the holder trains, finishes and keeps the record, then lets go
        held.mkdir(parents=True, exist_ok=True)
        record = {"run_name": specs[0].run_name, "score": 0.75}
        (held / RESULTS_FILE).write_text(json.dumps(record))
        assert glue_grid.run_one(specs[0], "small", "grid", wait=False) is None  # held: not read half-finished
        glue_grid.store_record(specs[0], "small", "grid", {**record, "merge_check": {"by": "the holder"}})
        glue_grid._lock_path(held).unlink()

    monkeypatch.setattr(glue_grid.time, "sleep", other_process_finishes)
    results = glue_grid.run_grid("grid", specs, "small", keep_records=True, finish=finish)
    assert fake_fine_tune == finished == [specs[1].run_name]  # trained and finished here: the free cell only
    by = [r["merge_check"]["by"] for r in results.meta["records"]]
    assert by == ["the holder", "this process"]
    assert glue_grid.stored_record(specs[0], "small", "grid")["merge_check"] == {"by": "the holder"}

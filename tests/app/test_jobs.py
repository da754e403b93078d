"""Background jobs: real ``python -m mpo_core finetune`` processes on the packaged model and real GLUE."""
import json
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

"""Fault injection: a real tiny run killed with SIGKILL again and again, resumed each time.

Kill points are seeded (place, k-th pass) pairs, including places inside a
checkpoint write (``kill_points.py``). Afterwards the metrics stream holds
every step exactly once and the results equal an uninterrupted run's.
"""
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mpo_core.runs.run_folder import read_metrics, read_run_results

ROOT = Path(__file__).resolve().parents[3]
GLUE = ROOT.parent / "shared" / "glue"
DRIVER = Path(__file__).with_name("kill_points.py")
PLACES = ("step", "metrics", "optimizer_save", "state_save", "mark", "evaluate")
STEPS, SAVE_EVERY, EVAL_EVERY = 48, 3, 6


def command(tmp_path, name, resume=False):
    if resume:
        return ["finetune", "--resume", "--run-name", name, "--runs-dir", str(tmp_path)]
    return ["finetune", "--task", "rte", "--data-dir", str(GLUE), "--num-hidden-layers", "1", "--max-length", "32",
            "--max-train-examples", "64", "--max-eval-examples", "16", "--max-steps", str(STEPS),
            "--batch-size", "4", "--learning-rate", "1e-4", "--warmup-steps", "2", "--logging-steps", "1",
            "--eval-steps", str(EVAL_EVERY), "--save-steps", str(SAVE_EVERY), "--no-save-model",
            "--runs-dir", str(tmp_path), "--run-name", name]


def launch(args, place=None, k=1):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    prefix = [str(DRIVER), place, str(k), "--"] if place else ["-m", "mpo_core"]
    return subprocess.run([sys.executable, *prefix, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # a dozen real (tiny) training processes
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_result(tmp_path):
    reference = launch(command(tmp_path, "reference"))
    assert reference.returncode == 0, reference.stderr[-2000:]
    rng = random.Random(14)
    places = [*PLACES, *rng.sample(PLACES, 4)]  # 10 kill points, every place at least once
    plan = [(place, rng.randint(1, 2)) for place in rng.sample(places, len(places))]
    for attempt, (place, k) in enumerate(plan):
        out = launch(command(tmp_path, "killed", resume=attempt > 0), place, k)
        assert out.returncode == -signal.SIGKILL, f"kill point {attempt} ({place} #{k}) was not reached: " + (
            out.stderr[-2000:])
    final = launch(command(tmp_path, "killed", resume=True))
    assert final.returncode == 0, final.stderr[-2000:]

    run = tmp_path / "killed"
    records = read_metrics(run)
    assert [r["kind"] for r in records].count("start") == 1
    train_steps = [r["step"] for r in records if r["kind"] == "train" and "loss" in r]
    assert train_steps == list(range(1, STEPS + 1))  # every step exactly once
    eval_steps = [r["step"] for r in records if r["kind"] == "eval"]
    assert eval_steps[:-1] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))  # and the final dev evaluation
    assert all(line.endswith("}") for line in (run / "metrics.jsonl").read_text().splitlines())  # no torn line left
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line)

    expected, got = read_run_results(tmp_path / "reference"), read_run_results(run)
    assert got["global_step"] == expected["global_step"] == STEPS
    assert got["eval"]["loss"] == pytest.approx(expected["eval"]["loss"], rel=1e-4)
    reference_losses = [r["loss"] for r in read_metrics(tmp_path / "reference") if r["kind"] == "train" and "loss" in r]
    losses = [r["loss"] for r in records if r["kind"] == "train" and "loss" in r]
    assert losses == pytest.approx(reference_losses, rel=1e-4)


def test_a_finished_run_is_not_resumed_and_a_resume_with_other_options_is_refused(tmp_path):
    from mpo_core.cli import main

    run = tmp_path / "done"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "rte", "run_name": "done", "runs_dir": str(tmp_path),
                                                 "learning_rate": 1e-4}))
    assert main(["finetune", "--resume", "--run-name", "done", "--runs-dir", str(tmp_path),
                 "--learning-rate", "0.001"]) == 2
    (run / "results.json").write_text("{}")
    assert main(["finetune", "--resume", "--run-name", "done", "--runs-dir", str(tmp_path)]) == 2


def test_a_resume_names_the_same_folders_however_spelled(tmp_path, monkeypatch):
    from mpo_core.training.fine_tune import check_resume_config
    from mpo_core.training.fine_tune_config import FineTuneConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "glue").mkdir()
    stored = FineTuneConfig(task="rte", data_dir="glue", runs_dir=str(tmp_path), run_name="spelled")
    (tmp_path / "spelled").mkdir()
    (tmp_path / "spelled" / "config.json").write_text(json.dumps(stored.to_dict()))
    for spelling in ("glue/", "./glue", str(tmp_path / "glue") + "/"):
        check_resume_config(FineTuneConfig(**{**stored.to_dict(), "data_dir": spelling}), tmp_path / "spelled")
    with pytest.raises(ValueError, match="data_dir"):
        check_resume_config(FineTuneConfig(**{**stored.to_dict(), "data_dir": "other"}), tmp_path / "spelled")

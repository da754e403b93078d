"""Fault injection: a real tiny run killed with SIGKILL again and again, resumed each time.

Kill points are seeded (place, k-th pass) pairs, including places inside a
checkpoint write (``kill_points.py``). Afterwards the metrics stream holds
every step exactly once and the results equal an uninterrupted run's.
"""
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

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


def driver(args, place=None, k=1, action="kill"):
    """The command line of one run, with a kill point (or another ``action``) armed at ``place``."""
    prefix = [str(DRIVER), place, str(k), action, "--"] if place else ["-m", "mpo_core"]
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("MPO_PATH_CHOICE", None)  # the default, timed path choice: a resume must reproduce it too
    return [sys.executable, *prefix, *args], env


def launch(args, place=None, k=1, action="kill"):
    command_line, env = driver(args, place, k, action)
    return subprocess.run(command_line, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


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


# --- every strategy resumes to the uninterrupted result, bit for bit (tiny runs: seconds each) ---------------------

TINY_STEPS = 12  # 10 steps an epoch: the last steps are in the second epoch
MPOP = ["--lfa-steps", "4", "--tune-steps", "2", "--squeeze-steps", "3", "--step-size", "0.002",
        "--delta", "1.0", "--squeeze-metric", "loss", "--heldout-examples", "8"]
STRATEGY_FLAGS = {"full": [], "mpo_full_lfa": [], "mpop": MPOP}


def tiny(tmp_path, name, strategy="full", resume=False):
    if resume:
        return ["finetune", "--resume", "--run-name", name, "--runs-dir", str(tmp_path)]
    return ["finetune", "--task", "rte", "--data-dir", str(GLUE), "--num-hidden-layers", "1", "--max-length", "16",
            "--max-train-examples", "40", "--max-eval-examples", "8", "--max-steps", str(TINY_STEPS),
            "--batch-size", "4", "--learning-rate", "1e-4", "--warmup-steps", "2", "--logging-steps", "1",
            "--eval-steps", "6", "--save-steps", "3", "--strategy", strategy, *STRATEGY_FLAGS[strategy],
            "--runs-dir", str(tmp_path), "--run-name", name]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """One uninterrupted tiny run per strategy, made when first asked for."""
    folder, made = tmp_path_factory.mktemp("references"), {}

    def reference(strategy):
        if strategy not in made:
            out = launch(tiny(folder, strategy, strategy))
            assert out.returncode == 0, out.stderr[-2000:]
            made[strategy] = folder / strategy
        return made[strategy]

    return reference


def train_losses(run):
    return [(r["step"], r["loss"]) for r in read_metrics(run) if r["kind"] == "train" and "loss" in r]


def final_weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "final_model" / "model.safetensors"))


def assert_same_run(run, reference):
    """Every step once, with the uninterrupted run's losses, final scores and final weights, bit for bit."""
    assert train_losses(run) == train_losses(reference)
    got, expected = read_run_results(run), read_run_results(reference)
    assert got["global_step"] == expected["global_step"]
    assert got["eval"]["loss"] == expected["eval"]["loss"] and got["score"] == expected["score"]
    weights, reference_weights = final_weights(run), final_weights(reference)
    assert weights.keys() == reference_weights.keys()
    assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)


#: where each strategy's run is killed, one (place, k-th pass) per process, and the checkpoints it resumes from.
#: mpop (Trainer checkpoints every 3 steps and at each judged step: LFA to step 4, judged at 6, 8, 10):
#: mid-LFA (step 4: from checkpoint-3), while the checkpoint of the first accepted step is written (its accepted
#: file already newer: from checkpoint-4, the baseline's), then mid-tune after the second cut (step 8: from 6)
KILLS = {"mpo_full_lfa": ([("step", 9)], [6]),
         "mpop": ([("step", 4), ("mark", 2), ("step", 4)], [3, 4, 6])}


@pytest.mark.slow  # a few tiny training processes
@pytest.mark.parametrize("strategy", ["mpo_full_lfa", "mpop"])
def test_a_run_killed_mid_training_resumes_bit_for_bit(tmp_path, references, strategy):
    plan, resumed_from = KILLS[strategy]
    for attempt, (place, k) in enumerate(plan):
        killed = launch(tiny(tmp_path, "killed", strategy, resume=attempt > 0), place, k)
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = launch(tiny(tmp_path, "killed", resume=True))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = tmp_path / "killed"
    assert [r["checkpoint"] for r in read_metrics(run) if r["kind"] == "resume"] == [
        f"checkpoint-{step}" for step in resumed_from]
    assert_same_run(run, references(strategy))
    assert timeless(run, "squeeze", "eval") == timeless(references(strategy), "squeeze", "eval")  # cuts, p, p~
    assert read_run_results(run).get("squeeze") == read_run_results(references(strategy)).get("squeeze")


def timeless(run, *kinds):
    """The run's records of ``kinds``, without their wall-clock times and speeds."""
    return [{k: v for k, v in r.items() if k != "time" and not k.endswith(("_runtime", "_per_second"))}
            for r in read_metrics(run) if r["kind"] in kinds]


#: the final evaluation on dev, after the last step: evaluations at steps 6 and 12; mpop's at steps 4, 6, 8
#: and 10 (the budget of 3 cuts spent), each two calls (the Trainer evaluates its dict of one held-out set)
FINAL_EVALUATION = {"full": 3, "mpo_full_lfa": 3, "mpop": 9}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["full", "mpo_full_lfa", "mpop"])
def test_a_run_killed_after_its_last_step_only_finishes_on_resume(tmp_path, references, strategy):
    killed = launch(tiny(tmp_path, "killed", strategy), "evaluate", FINAL_EVALUATION[strategy])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed = launch(tiny(tmp_path, "killed", resume=True))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run, reference = tmp_path / "killed", references(strategy)
    assert read_run_results(run)["global_step"] == read_run_results(reference)["global_step"]
    if strategy != "mpop":  # mpop trains its squeeze budget (10 steps here), not max_steps
        assert read_run_results(run)["global_step"] == TINY_STEPS
        assert max(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir()) == TINY_STEPS
    assert_same_run(run, reference)


@pytest.mark.slow
@pytest.mark.parametrize("action", ["enospc", "torch_full"])
def test_a_full_disk_while_checkpointing_is_one_error_line_and_the_run_resumes(tmp_path, references, action):
    failed = launch(tiny(tmp_path, "full-disk"), "optimizer_save", 2, action)  # the checkpoint of step 6
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not write checkpoint-6") and "--resume" in last
    resumed = launch(tiny(tmp_path, "full-disk", resume=True))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(tmp_path / "full-disk", references("full"))


@pytest.mark.slow
def test_of_two_resumes_at_once_one_is_refused_naming_the_other(tmp_path):
    killed = launch(tiny(tmp_path, "twice"), "step", 5)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    go = tmp_path / "go"
    command_line, env = driver(tiny(tmp_path, "twice", resume=True), "step", 1, f"wait:{go}")
    first = subprocess.Popen(command_line, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.time() + 240
        while not any(r["kind"] == "resume" for r in read_metrics(tmp_path / "twice")):  # it holds the run now
            assert first.poll() is None and time.time() < deadline, first.stderr.read()[-2000:]
            time.sleep(0.2)
        second = launch(tiny(tmp_path, "twice", resume=True))
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"is in use by pid {first.pid} on " in second.stderr.strip().splitlines()[-1]
    finally:
        go.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    records = read_metrics(tmp_path / "twice")
    assert [r["kind"] for r in records].count("end") == 1
    assert [step for step, _ in train_losses(tmp_path / "twice")] == list(range(1, TINY_STEPS + 1))


def test_a_full_disk_while_writing_the_config_leaves_no_folder(tmp_path, monkeypatch, capsys):
    from mpo_core.cli import main
    from mpo_core.runs import run_folder

    real = run_folder.atomic_write_json

    def full_disk(path, data, *args, **kwargs):
        if Path(path).name == "config.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(run_folder, "atomic_write_json", full_disk)
    args = tiny(tmp_path, "no-space")
    assert main(args) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not (tmp_path / "no-space").exists()  # a rerun can start
    run_folder.RunFolder.check(tmp_path / "no-space", resume=False)

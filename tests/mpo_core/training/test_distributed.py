"""``torchrun``: two CPU processes (gloo) learn what one process learns from the same global batches.

Two processes of 4 examples a step are compared with one process of 8 examples a
step, same seed and steps: the Trainer's seeded sampler deals the pair, between
them, the 8 examples it deals the single process, and DDP averages their two
gradients. With dropout off (two processes would draw other masks than one)
the two runs agree to float rounding. ``mpop`` and ``opf`` change tensor shapes
while training, which DDP cannot follow: under torchrun they refuse with one
``error:`` line and a failing exit, before a run folder exists.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpo_core.model.pretrained import default_model_path
from mpo_core.mpop.strategy import make_mpop
from mpo_core.runs.run_folder import read_metrics, read_run_results
from mpo_core.runs.run_models import load_final_model, load_initial_model
from mpo_core.training.fine_tune import fine_tune
from mpo_core.training.fine_tune_config import FineTuneConfig

from ..tiny_models import tiny_model

ROOT = Path(__file__).resolve().parents[3]
GLUE = ROOT.parent / "shared" / "glue"
PROCESSES, GLOBAL_BATCH, STEPS = 2, 8, 4
TINY = dict(task="rte", data_dir=str(GLUE), num_hidden_layers=1, max_length=32, max_train_examples=64,
            max_eval_examples=32, max_steps=STEPS, logging_steps=1, eval_steps=1000, save_steps=1000, seed=0,
            device="cpu")

gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                          reason="needs torch.distributed with the gloo backend")


@pytest.fixture(scope="module")
def dropout_free_model(tmp_path_factory):
    """The packaged MiniLM with dropout off: its weights and tokenizer, linked; its config, edited."""
    source, folder = default_model_path(), tmp_path_factory.mktemp("minilm_without_dropout")
    for file in source.iterdir():
        if file.is_file() and file.name != "config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((source / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def flags(options: dict) -> list[str]:
    """``{"max_steps": 4}`` -> ``["--max-steps", "4"]``: the CLI flags of ``FineTuneConfig`` fields."""
    return [item for name, value in options.items() for item in ("--" + name.replace("_", "-"), str(value))]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m mpo_core finetune ...`` on the CPU (gloo), one thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={PROCESSES}",
               "-m", "mpo_core", "finetune", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    # a rank that waits for one that has died would hang: the timeout turns that into a failure
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def logits(model, ids):
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits  # (B, num_labels)


def relative_gap(one: torch.Tensor, two: torch.Tensor, start: torch.Tensor) -> float:
    """How far the two runs end apart, as a fraction of how far one run moved from the start."""
    return ((two - one).norm() / (one - start).norm()).item()


def record_outline(run) -> list[tuple]:
    return [(r["kind"], r.get("step")) for r in read_metrics(run)]


@gloo
@pytest.mark.slow  # a torchrun starts two Pythons that import transformers: 15-30 s on 2 busy cores
@pytest.mark.parametrize("strategy, learning_rate", [("full", 1e-4), ("mpo_full_lfa", 1e-3)])
def test_two_processes_learn_what_one_process_learns(tmp_path, dropout_free_model, single_blas_thread,
                                                     strategy, learning_rate):
    options = dict(TINY, model=str(dropout_free_model), strategy=strategy, learning_rate=learning_rate)
    one = fine_tune(FineTuneConfig(**options, batch_size=GLOBAL_BATCH, runs_dir=str(tmp_path / "one"),
                                   run_name="run"))
    done = torchrun(*flags(dict(options, batch_size=GLOBAL_BATCH // PROCESSES, runs_dir=tmp_path / "two",
                                run_name="run")))
    assert done.returncode == 0, done.stderr[-3000:]
    run, single = tmp_path / "two" / "run", tmp_path / "one" / "run"
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["run"]  # one run folder, not one per rank
    assert {"config.json", "metrics.jsonl", "results.json", "final_model"} <= {p.name for p in run.iterdir()}
    # one set of records: rank 0's, the same records one process writes, each step once
    assert record_outline(run) == record_outline(single)
    train = [r for r in read_metrics(run) if r["kind"] == "train" and "loss" in r]
    assert [r["step"] for r in train] == list(range(1, STEPS + 1))
    two = read_run_results(run)
    assert two["global_step"] == one["global_step"] == STEPS
    assert two["num_train_examples"] == one["num_train_examples"]
    # the same examples each step: the same losses (a loss scaled by the number of processes would show here)
    single_train = [r["loss"] for r in read_metrics(single) if r["kind"] == "train" and "loss" in r]
    assert [r["loss"] for r in train] == pytest.approx(single_train, rel=1e-5)
    # 32 dev examples, 16 a rank: with an odd count one rank's share is padded with a repeat, which the gathered
    # predictions drop but that rank's mean loss keeps (the Trainer's eval loss is then ~1e-3 off)
    assert two["score"] == one["score"] and two["num_eval_examples"] == one["num_eval_examples"]
    assert two["eval"]["loss"] == pytest.approx(one["eval"]["loss"], rel=1e-5)
    # the same trained model: the gap between the runs is a rounding error of what training changed
    ids = torch.randint(1000, 30000, (8, 24), generator=torch.Generator().manual_seed(0))  # (B, T)
    start = logits(load_initial_model(single), ids)
    gap = relative_gap(logits(load_final_model(single), ids), logits(load_final_model(run), ids), start)
    assert gap < 1e-3, f"two processes end {gap:.2e} of the training change away from one process"


REFUSED = {
    "mpop": dict(heldout_examples=16, lfa_steps=2, squeeze_steps=2, tune_steps=1),
    "opf": dict(fisher_batches=1, top_n=1),
}


@gloo
@pytest.mark.slow  # a torchrun
@pytest.mark.parametrize("strategy", sorted(REFUSED))
def test_strategies_that_change_shapes_refuse_torchrun_before_making_a_run_folder(tmp_path, dropout_free_model,
                                                                                   strategy):
    options = dict(TINY, model=str(dropout_free_model), strategy=strategy, batch_size=4, runs_dir=tmp_path / "runs",
                   **REFUSED[strategy])
    done = torchrun(*flags(options))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and all(line == errors[0] for line in errors), done.stderr[-3000:]
    assert strategy in errors[0].lower() and "torchrun" in errors[0]
    # the first rank to fail left through the CLI's clean refusal (exit 2), not a crash
    assert re.search(r"exitcode\s*:\s*2\b", done.stderr), done.stderr[-3000:]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_mpop_refuses_a_distributed_launch_before_its_surgery(monkeypatch):
    model = tiny_model("bert")
    before = [type(m) for m in model.modules()]
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun and accelerate launch set
    with pytest.raises(ValueError, match="no torchrun"):
        make_mpop().prepare(model, progress=False)
    assert [type(m) for m in model.modules()] == before  # refused first: nothing decomposed, no run folder yet

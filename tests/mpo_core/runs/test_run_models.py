"""The two models of a run folder: the one it started from (as fine_tune builds it) and the one it saved."""
from pathlib import Path

import pytest
import torch

from mpo_core.model.checkpoint import save_mpo_model
from mpo_core.runs.run_folder import CONFIG_FILE, FINAL_MODEL, RunFolder
from mpo_core.runs.run_models import load_final_model, load_initial_model
from mpo_core.training.fine_tune import load_model_and_tokenizer
from mpo_core.training.fine_tune_config import FineTuneConfig

GLUE = Path(__file__).resolve().parents[4] / "shared" / "glue"


def tiny_run(runs_dir, name: str, seed: int) -> tuple[Path, FineTuneConfig]:
    """A run folder as fine_tune leaves it before training: its config.json (one layer of MiniLM)."""
    config = FineTuneConfig(task="rte", data_dir=str(GLUE), num_hidden_layers=1, max_train_examples=16,
                            max_eval_examples=8, max_steps=1, seed=seed, runs_dir=str(runs_dir), run_name=name)
    run = RunFolder(Path(runs_dir) / name)
    run.write_json(CONFIG_FILE, config.to_dict())
    return run.path, config


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_the_initial_model_is_the_one_fine_tune_starts_from(tmp_path):
    path, config = tiny_run(tmp_path, "r", seed=3)
    torch.manual_seed(config.seed)  # as fine_tune does before load_model_and_tokenizer
    fresh, _ = load_model_and_tokenizer(config)
    torch.manual_seed(123)  # whatever the global RNG holds, the run's seed decides the head
    initial = load_initial_model(path)
    assert not initial.training and initial.config.num_hidden_layers == 1 and initial.config.num_labels == 2
    assert_same_weights(initial, fresh)
    other, _ = tiny_run(tmp_path, "other-seed", seed=4)
    assert not torch.equal(load_initial_model(other).classifier.weight, initial.classifier.weight)


def test_the_final_model_is_the_saved_one(tmp_path):
    path, _ = tiny_run(tmp_path, "r", seed=0)
    with pytest.raises(FileNotFoundError, match="has not finished"):
        load_final_model(path)
    saved = load_initial_model(path)
    save_mpo_model(saved, path / FINAL_MODEL)
    final = load_final_model(path)
    assert not final.training
    assert_same_weights(final, saved)


def test_a_folder_without_a_config_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_initial_model(tmp_path)

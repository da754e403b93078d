"""The gpu mode (the full design at the papers' scale), setting overrides, and grids shared by worker processes."""
import json

import pytest

from mpo_core.reproduction import frontier, glue_grid, lr_probe, results_store, table3
from mpo_core.reproduction.parallel import reproduce_all, thread_share

TINY = {"num_hidden_layers": 1, "max_length": 32, "max_train_examples": 64, "max_eval_examples": 32,
        "max_steps": 4, "eval_batch_size": 32}


def test_the_gpu_mode_is_the_full_design_at_the_papers_scale(monkeypatch):
    monkeypatch.delenv(glue_grid.OVERRIDES_ENV, raising=False)
    settings = glue_grid.mode_settings("gpu")
    assert settings["max_train_examples"] is None and settings["max_length"] == 128 and settings["epochs"] == 3
    assert table3.TASKS["gpu"] == table3.TASKS["full"] and frontier.SEEDS["gpu"] == (0, 1, 2)
    assert lr_probe.FAMILIES["gpu"] is lr_probe.FAMILIES["full"]
    with pytest.raises(KeyError):
        table3.TASKS["tiny"]
    assert frontier.training_steps("gpu", "mrpc") == 115 * 3  # all 3668 MRPC examples, batch 32, 3 epochs
    assert frontier.training_steps("full", "mrpc") == 47 * 2  # 1500 of them, 2 epochs
    assert table3.curve_eval_steps("gpu", "mrpc") == 345 // 5
    assert results_store.results_dir("gpu").name == "gpu"


def test_overrides_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv(glue_grid.OVERRIDES_ENV, json.dumps({"max_train_examples": 64}))
    assert glue_grid.mode_settings("gpu")["max_train_examples"] == 64
    assert frontier.training_steps("gpu", "mrpc") == 2 * 3
    monkeypatch.setenv(glue_grid.OVERRIDES_ENV, "{max_train_examples: 64}")
    with pytest.raises(ValueError, match="not JSON"):
        glue_grid.mode_settings("full")
    monkeypatch.setenv(glue_grid.OVERRIDES_ENV, json.dumps({"max_train": 64}))
    with pytest.raises(ValueError, match=r"\['max_train'\] are not FineTuneConfig fields"):
        glue_grid.mode_settings("full")


def test_workers_must_be_a_positive_integer_and_names_known():
    with pytest.raises(ValueError, match="workers"):
        reproduce_all(["lr_probe"], "small", workers=0)
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce_all(["lr_probe", "table9"], "small")
    assert thread_share(10**6) == 1


@pytest.mark.slow  # real training: the probe's code path in the gpu mode, with tiny overrides (two 4-step runs)
def test_gpu_mode_code_path_on_the_cpu_with_tiny_overrides(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv(glue_grid.OVERRIDES_ENV, json.dumps(TINY))
    monkeypatch.setattr(lr_probe, "TASKS", glue_grid.ByMode(small=("sst2",), full=("mrpc",)))
    monkeypatch.setattr(lr_probe, "FAMILIES", glue_grid.ByMode(small={}, full={"whole": ("full", (1e-4, 2e-4))}))
    monkeypatch.setattr(lr_probe, "HELDOUT", glue_grid.ByMode(small=16, full=16))
    results = lr_probe.run("gpu")
    assert (tmp_path / "gpu" / "lr_probe.csv").is_file() and len(results.table) == 2
    settings = results.meta["settings"]["mode_settings"]
    assert settings["max_length"] == 32 and settings["epochs"] == 3.0  # the gpu mode's, with the overrides
    assert (tmp_path / "gpu" / "records" / "lr_probe" / "full@lr0.0001-mrpc-seed0.json").is_file()


@pytest.mark.slow  # real training: the small probe's three 4-step runs shared by two processes
def test_two_workers_share_a_grid_and_run_each_cell_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = reproduce_all(["lr_probe"], "small", workers=2)["lr_probe"]
    assert len(results.table) == len(lr_probe.specs("small"))
    log = tmp_path / "small" / "runs" / "logs" / "lr_probe-1.log"
    assert log.is_file() and log.stat().st_size > 0  # the helper ran (and wrote its progress)
    runs = tmp_path / "small" / "runs" / "lr_probe"
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == sorted(results.table["run"])
    assert not list(runs.glob("*.lock"))  # every claim released

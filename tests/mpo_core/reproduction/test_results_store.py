"""The results store: modes, atomic save/load, load-or-run, the description line."""
import pandas as pd
import pytest

from mpo_core.reproduction import EXPERIMENTS, experiment, results_store


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("MPO_REPRO_MODE", raising=False)
    assert results_store.current_mode() == "small"
    monkeypatch.setenv("MPO_REPRO_MODE", "full")
    assert results_store.current_mode() == "full"
    monkeypatch.setenv("MPO_REPRO_MODE", "huge")
    with pytest.raises(ValueError, match="small, full or gpu"):
        results_store.current_mode()


def test_save_then_load_round_trips_with_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    table = pd.DataFrame({"row": ["a", "b"], "score": [0.5, 0.75]})
    saved = results_store.save_results("demo", "small", table, {"lr": 1e-3}, [{"run": 1}], 12.0)
    loaded = results_store.load_results("demo", "small")
    pd.testing.assert_frame_equal(loaded.table, table)
    meta = loaded.meta
    assert meta["settings"] == {"lr": 1e-3} and meta["records"] == [{"run": 1}] and meta["wall_seconds"] == 12.0
    assert meta["hardware"]["cpu_count"] and meta["versions"]["torch"] and "command" in meta
    assert saved.command == "python -m mpo_core reproduce demo --mode small" and "regenerate" in loaded.describe()
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temporary files
    assert results_store.load_results("demo", "full") is None


def test_load_or_run_runs_only_when_missing_or_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    calls = []

    def run(mode):
        calls.append(mode)
        return results_store.save_results("demo", mode, pd.DataFrame({"x": [len(calls)]}), {}, [], 0.0)

    assert results_store.load_or_run("demo", "small", run).table.x[0] == 1
    assert results_store.load_or_run("demo", "small", run).table.x[0] == 1  # stored: not run again
    assert results_store.load_or_run("demo", "small", run, force=True).table.x[0] == 2
    assert calls == ["small", "small"]
    assert "python -m mpo_core reproduce demo --mode full" in results_store.missing_message("demo")


def test_every_registered_experiment_has_a_run_function():
    assert set(EXPERIMENTS) == {"mpo_basics", "figure2", "table1", "table2", "table3", "table4", "table5", "opf",
                                "frontier", "lr_probe", "stsb_collapse", "frontier_errors", "zero_shot_frontier",
                                "learning_budget", "glue_verdicts", "verdict_probe"}
    for name in EXPERIMENTS:
        assert callable(experiment(name).run)
    with pytest.raises(ValueError, match="unknown experiment"):
        experiment("table9")


def test_partial_results_are_not_an_answer(tmp_path, monkeypatch):
    import pandas as pd

    from mpo_core.reproduction.results_store import load_or_run, save_results

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    save_results("demo", "small", pd.DataFrame({"x": [1]}), {"partial": True}, [], 0.0)
    ran = []
    load_or_run("demo", "small", lambda mode: ran.append(mode) or "ran")
    assert ran == ["small"]
    save_results("demo", "small", pd.DataFrame({"x": [1]}), {"partial": False}, [], 0.0)
    assert load_or_run("demo", "small", lambda mode: ran.append(mode)).table["x"].tolist() == [1]
    assert ran == ["small"]

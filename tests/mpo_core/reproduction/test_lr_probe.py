"""The learning-rate probe: rates judged on held-out training examples, one-class runs never chosen."""
import pandas as pd
import pytest

from mpo_core.reproduction import glue_grid, lr_probe
from mpo_core.reproduction.results_store import Results


def probe_results(scores: dict, constant=()) -> Results:
    rows = [{"task": "sst2", "family": lr_probe.FAMILY_OF[strategy], "strategy": strategy, "learning_rate": rate,
             "metric": "accuracy", "heldout_score": score, "heldout_examples": 256,
             "heldout_constant": (strategy, rate) in constant, "dev_score": 0.5, "wall_seconds": 1.0,
             "run": f"{lr_probe.label(strategy, rate)}-sst2-seed0"}
            for (strategy, rate), score in scores.items()]
    return Results("lr_probe", "full", pd.DataFrame(rows), {})


def test_the_best_heldout_score_wins_and_a_one_class_run_cannot():
    results = probe_results({("full", 5e-5): 0.80, ("full", 1e-4): 0.84, ("full", 2e-4): 0.86,
                             ("mpo_full_lfa", 1e-3): 0.78, ("mpo_full_lfa", 3e-3): 0.90},
                            constant={("full", 2e-4), ("mpo_full_lfa", 3e-3)})
    assert lr_probe.rate_of(results, "full", "sst2") == 1e-4  # 2e-4 scored more, predicting one class
    assert lr_probe.rate_of(results, "last_k", "sst2") == 1e-4  # the same family
    assert lr_probe.rate_of(results, "mpop", "sst2") == 1e-3
    lines = lr_probe.findings(results)
    assert lines[0].startswith("sst2 / whole: 0.0001 (held-out 0.840; probed 5e-05: 0.800, 0.0001: 0.840, 0.0002: 0.860 (one class))")
    assert "2 probe runs predicted one class" in lines[-1]
    with pytest.raises(ValueError, match="no rate"):
        lr_probe.rate_of(results, "mpo_full", "sst2")


def test_full_mode_probes_three_families_on_three_tasks_with_a_heldout_slice():
    specs = lr_probe.specs("full")
    assert len(specs) == 27 and {s.seed for s in specs} == {0}
    assert all(s.settings["heldout_examples"] == 256 for s in specs)
    assert {(s.strategy, s.settings["learning_rate"]) for s in specs if s.task == "stsb"} >= {("mpo_full", 2e-5)}
    config = glue_grid._config(specs[0], "full", "runs", None, {})
    assert config.learning_rate == specs[0].settings["learning_rate"] and config.heldout_examples == 256


@pytest.mark.slow  # real training: three 1-layer runs of 4 steps
def test_small_mode_end_to_end(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = lr_probe.run("small")
    table = results.table
    assert len(table) == 3 and table["heldout_score"].between(0, 1).all() and (table["heldout_examples"] == 16).all()
    chosen = lr_probe.chosen_rates(results)
    assert set(chosen["family"]) == {"whole", "lfa"}
    assert len(lr_probe.findings(results)) >= 2

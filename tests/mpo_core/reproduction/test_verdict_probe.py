import math

import pandas as pd

from mpo_core.reproduction import verdict_probe as vp
from mpo_core.reproduction.results_store import Results


def _table(scores: dict, one_class=()):
    return pd.DataFrame([{"family": "whole", "task": "sst2", "seed": seed, "learning_rate": rate,
                          "heldout_score": score, "one_class": rate in one_class}
                         for rate, values in scores.items() for seed, score in enumerate(values)])


def test_choose_takes_the_best_mean_and_says_whether_it_is_interior():
    assert vp.choose(_table({1e-4: [0.8, 0.82], 3e-4: [0.85, 0.84], 1e-3: [0.83, 0.80]})) == {
        ("whole", "sst2"): (3e-4, True)}
    assert vp.choose(_table({1e-4: [0.8, 0.82], 3e-4: [0.85, 0.84], 1e-3: [0.90, 0.91]}))[("whole", "sst2")] == (
        1e-3, False)
    # a one-class run cannot win, however its score compares
    assert vp.choose(_table({1e-4: [0.8, 0.8], 3e-4: [0.9, 0.9]}, one_class=(3e-4,)))[("whole", "sst2")][0] == 1e-4
    assert vp.choose(_table({1e-4: [0.5]}, one_class=(1e-4,)))[("whole", "sst2")] == (None, False)


def test_the_grid_widens_until_the_choice_is_interior(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    best = {"whole": 9e-4, "lfa": 1e-3}  # whole's optimum lies beyond its starting grid (3e-5 .. 3e-4)
    calls = []

    def fake_grid(name, specs, mode, keep_records=True, row=None, extra_settings=None):
        calls.append(len(specs))
        rows = []
        for spec in specs:
            family = "whole" if spec.strategy == "full" else "lfa"
            rate = spec.settings["learning_rate"]
            rows.append({"family": family, "task": spec.task, "seed": spec.seed, "learning_rate": rate,
                         "heldout_score": 0.9 - abs(math.log(rate / best[family])) / 10, "one_class": False})
        return Results(name, mode, pd.DataFrame(rows), {"settings": extra_settings or {}})

    monkeypatch.setattr(vp, "run_grid", fake_grid)
    monkeypatch.setattr(vp, "MAX_WIDENINGS", {"small": 3})
    results = vp.run("small")
    chosen = {(c["family"], c["task"]): (c["learning_rate"], c["interior"]) for c in results.meta["settings"]["chosen"]}
    assert chosen[("lfa", "sst2")] == (1e-3, True)
    rate, interior = chosen[("whole", "sst2")]
    assert interior and math.isclose(rate, 9e-4)  # widened twice: 3e-4 -> 9e-4 -> 2.7e-3
    assert calls[0] < calls[-1]


def test_the_probe_can_be_cut_to_named_families_and_tasks(monkeypatch):
    import pytest

    from mpo_core.reproduction import glue_verdicts as gv

    monkeypatch.setenv(vp.FAMILIES_ENV, "whole, truncated")
    assert list(vp.families("full")) == ["whole", "truncated"]
    assert list(vp.families("small")) == ["whole"]  # the small mode's own cut still applies
    monkeypatch.setenv(vp.FAMILIES_ENV, "whole,nothing")
    with pytest.raises(ValueError, match="nothing"):
        vp.families("full")
    monkeypatch.delenv(vp.FAMILIES_ENV)
    assert list(vp.families("full")) == list(vp.FAMILIES)
    monkeypatch.setenv(gv.TASKS_ENV, "stsb")
    assert gv.chosen_tasks("full") == ("stsb",)
    monkeypatch.setenv(gv.TASKS_ENV, "stsb,sst2")
    assert gv.chosen_tasks("full") == ("sst2", "stsb")  # the mode's order
    monkeypatch.setenv(gv.TASKS_ENV, "qnli")
    with pytest.raises(ValueError, match="qnli"):
        gv.chosen_tasks("full")

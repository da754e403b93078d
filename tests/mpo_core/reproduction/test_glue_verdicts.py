import numpy as np
import pandas as pd
import pytest

from mpo_core.reproduction import glue_verdicts as gv
from mpo_core.reproduction.results_store import Results


def test_every_row_of_a_task_shares_data_steps_and_schedule(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    specs = gv.specs("small")
    shared = {k: v for k, v in specs[0].settings.items() if k != "learning_rate"}
    for spec in specs:
        assert {k: v for k, v in spec.settings.items() if k != "learning_rate"} == shared
    assert shared["lr_scheduler_type"] == "warmup_stable_decay" and shared["keep_predictions"]
    labels = [s.label for s in specs]
    assert labels.index("mpop@0.75") < labels.index("mpop_dir@0.75")
    mpop = specs[labels.index("mpop@0.75")]
    options = mpop.options
    # mpop's steps are the comparators': LFA plus every cut's tuning steps is the budget
    assert options["lfa_steps"] + options["squeeze_steps"] * options["tune_steps"] == shared["max_steps"]
    assert options["error"] == "data" and options["heldout_examples"] == shared["heldout_examples"]
    assert options["fill_budget"]  # a squeeze that reaches its target early tunes on: the same steps
    assert specs[labels.index("mpop_dir@0.75")].after == mpop.run_name


def test_the_full_grid_needs_the_learning_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="learning_budget"):
        gv.budget("full", "sst2")


def test_a_cut_down_grid_keeps_what_its_rows_need(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv(gv.ROWS_ENV, "full,mpop_dir@0.75")
    labels = [s.label for s in gv.specs("small")]
    assert labels == ["full", "mpop@0.75", "mpop_dir@0.75"]  # mpop_dir reads mpop's bonds
    monkeypatch.setenv(gv.ROWS_ENV, "nothing")
    with pytest.raises(ValueError, match="no rows"):
        gv.specs("small")


def test_verdicts_pair_seeds_and_examples(monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 872)
    monkeypatch.setattr(gv, "_labels", lambda task, evaluation_set, data_dir=None: labels)
    rows, records = [], []
    for seed in range(3):
        full = np.where(rng.random(872) < 0.12, 1 - labels, labels)
        for row, predictions in (("full", full), ("mpop@0.5", np.where(rng.random(872) < 0.002, 1 - full, full)),
                                 ("mpop_dir@0.5", np.where(rng.random(872) < 0.3, 1 - labels, labels))):
            score = float((predictions == labels).mean())
            rows.append({"task": "sst2", "row": row, "seed": seed, "evaluation_score": score,
                         "run": f"{row}-sst2-seed{seed}"})
            records.append({"predictions": predictions.tolist(), "evaluation_set": {"dev_examples": 872}})
    results = Results(gv.NAME, "full", pd.DataFrame(rows), {"settings": {"sizes": [0.5]}, "records": records})
    table = gv.verdicts(results, resamples=300).set_index("claim")
    within = table.loc["MPOP stays within 1 point of full fine-tuning (MPOP Table 3)"]
    assert within["verdict"] == "holds" and -1 < within["paired_low"] < within["paired_high"] < 1
    beats = table.loc["dimension squeezing beats direct truncation to the same bonds"]
    assert beats["verdict"] == "holds" and beats["difference"] > 10 and beats["seeds"] == 3
    assert not np.isnan(beats["welch_low"])


def test_a_grid_cut_to_one_task_runs_only_its_cells(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    from mpo_core.reproduction import learning_budget as lb

    monkeypatch.setattr(gv, "TASKS", gv.ByMode(small=("sst2", "stsb"), full=("sst2", "stsb")))
    small = lb.DESIGN["small"]["sst2"]
    monkeypatch.setattr(lb, "DESIGN", lb.ByMode(small={"sst2": small, "stsb": small}, full=lb.DESIGN["full"]))
    both = gv.specs("small")
    monkeypatch.setenv(gv.TASKS_ENV, "stsb")
    only = gv.specs("small")
    assert {s.task for s in both} == {"sst2", "stsb"} and {s.task for s in only} == {"stsb"}
    assert [s.run_name for s in only] == [s.run_name for s in both if s.task == "stsb"]


def test_mrpc_enters_the_grid_only_while_its_budget_run_learns(monkeypatch):
    import pandas as pd

    from mpo_core.reproduction import learning_budget as lb
    from mpo_core.reproduction.results_store import Results

    stored = Results(lb.NAME, "full", pd.DataFrame(), {"settings": {"chosen_steps": {"mrpc": 800}}})
    monkeypatch.setattr(gv, "load_results", lambda name, mode: stored)
    for enters, tasks in ((True, ("sst2", "stsb", "mrpc")), (False, ("sst2", "stsb")),
                          (float("nan"), ("sst2", "stsb"))):
        monkeypatch.setattr(lb, "budget_table", lambda results, e=enters: pd.DataFrame(
            [{"task": "sst2", "enters_grid": True}, {"task": "mrpc", "enters_grid": e}]))
        assert gv.chosen_tasks("full") == tasks
    monkeypatch.setenv(gv.TASKS_ENV, "mrpc")  # MRPC alone, and it did not learn: a clear error, not an empty grid
    with pytest.raises(ValueError, match="MRPC does not enter"):
        gv.chosen_tasks("full")
    monkeypatch.delenv(gv.TASKS_ENV)
    monkeypatch.setattr(gv, "load_results", lambda name, mode: None)  # nothing stored: budget() says what to run
    assert gv.chosen_tasks("full") == ("sst2", "stsb", "mrpc")

"""The zero-shot frontier's table, figure and target checks, on a hand-made results table."""
import pandas as pd

from mpo_core.reproduction import zero_shot_frontier as zsf
from mpo_core.reproduction.results_store import Results


def _results():
    rows = []
    for row, healed, share, score in [("mpo_n5", False, 0.5, 0.716), ("svd_whitened", False, 0.5, 0.851),
                                      ("auto", False, 0.5, 0.853), ("auto", False, 0.2, 0.80),
                                      ("auto", True, 0.5, 0.862), ("mpo_calibrated", False, 0.5, 0.83)]:
        rows.append({"row": row + ("+heal" if healed else ""), "method": row, "size_kind": "encoder", "size": share,
                     "healed": healed, "spearman": score, "spearman_dense": 0.867,
                     "baseline": zsf.BASELINE.get((row, "encoder", share)) if not healed else None})
    rows.append({"row": "auto+heal", "method": "auto", "size_kind": "model", "size": 0.5, "healed": True,
                 "spearman": 0.83, "spearman_dense": 0.867, "baseline": None})
    return Results(zsf.NAME, "full", pd.DataFrame(rows), {})


def test_frontier_table_has_a_column_per_size_and_a_row_per_method():
    table = zsf.frontier_table(_results())
    assert table.loc["auto", "share 0.5"] == 0.853 and table.loc["auto+heal", "#To 0.5"] == 0.83
    assert pd.isna(table.loc["mpo_n5", "share 0.2"])


def test_target_checks_say_met_missed_or_not_measured():
    checks = zsf.target_checks(_results()).set_index("target")
    assert bool(checks.loc["auto at encoder 0.5 >= 0.85", "met"]) is True
    assert bool(checks.loc["auto at encoder 0.2 >= 0.81", "met"]) is False
    assert checks.loc["best healed row at encoder 0.2 >= 0.84", "met"] is None  # nothing healed at 0.2
    assert checks.loc["best healed row at encoder 0.5 >= 0.86", "row"] == "auto+heal"
    assert bool(checks.loc["mpo_calibrated at share 0.5 >= whitened SVD anchor 0.84", "met"]) is False


def test_the_figure_draws_encoder_rows_healed_dashed_and_the_baseline():
    fig = zsf.frontier_figure(_results())
    traces = {t.name: t for t in fig.data}
    assert traces["auto+heal"].line.dash == "dash" and traces["auto"].line.dash == "solid"
    assert list(traces["auto"].x) == [0.2, 0.5] and "issue's table" in traces
    assert 0.83 not in list(traces["auto+heal"].y)  # the whole-model point is not on the share axis

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


def test_the_points_stored_so_far_are_saved_as_a_partial_table(tmp_path, monkeypatch):
    import json

    from mpo_core.reproduction.glue_grid import records_root

    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    root = records_root(zsf.NAME, "small")
    root.mkdir(parents=True)
    record = {"row": "mpo_n5", "size_kind": "encoder", "size": 0.5, "healed": False, "config": {"method": "mpo"},
              "spearman": 0.5, "spearman_dense": 0.57, "cosine_to_original": 0.7, "compress_seconds": 2.0,
              "latency_ratio": 1.0, "weights_mib": 50.0, "weights_mib_dense": 60.0, "pairs": 100,
              "report": {"kept_share": 0.5, "model_share": 0.88, "model_params_after": 13_000_000,
                         "summed_squared_error": 1.0}}
    (root / "mpo_n5@encoder0.5.json").write_text(json.dumps(record))
    results = zsf.save_stored("small")
    assert len(results.table) == 1 and results.meta["settings"]["partial"]
    assert "svd_whitened@encoder0.5" in results.meta["settings"]["missing_points"]
    assert (tmp_path / "small" / "zero_shot_frontier.csv").is_file()
    assert zsf.save_stored("full") is None  # nothing stored in that mode


def test_paired_table_judges_on_the_same_pairs():
    import numpy as np

    from mpo_core.data.glue import default_glue_dir, load_glue_split

    gold = np.array(load_glue_split("stsb", "dev", default_glue_dir()).labels[:400])
    rng = np.random.default_rng(0)
    dense = gold + rng.normal(0, 1.0, 400)
    close = dense + rng.normal(0, 0.05, 400)  # nearly the dense model
    worse = gold + rng.normal(0, 3.0, 400)

    def record(row, cosines):
        return {"row": row, "size_kind": "encoder", "size": 0.5, "healed": False, "config": {"method": row},
                "spearman": 0.0, "spearman_dense": 0.0, "pairs": 400, "pair_cosines": list(cosines),
                "compress_seconds": 1.0, "latency_ratio": 1.0, "weights_mib": 1.0, "weights_mib_dense": 1.0,
                "report": {"kept_share": 0.5, "model_share": 0.8, "model_params_after": 1, "summed_squared_error": 0}}

    results = Results(zsf.NAME, "full", pd.DataFrame(), {
        "settings": {"dense_pair_cosines": list(dense)},
        "records": [record("auto", close), record("svd_whitened", worse), record("mpo_calibrated", worse)]})
    table = zsf.paired_table(results, resamples=300).set_index(["method", "reference"])
    assert table.loc[("auto", "dense"), "verdict"] == "holds"  # within 0.01 of dense
    assert table.loc[("auto", "svd_whitened"), "verdict"] == "holds" and table.loc[("auto", "svd_whitened"),
                                                                                   "low"] > 0
    assert table.loc[("mpo_calibrated", "svd_whitened"), "difference"] == 0.0  # the same predictions
    assert zsf.paired_table(Results(zsf.NAME, "full", pd.DataFrame(), {"settings": {}, "records": []})).empty

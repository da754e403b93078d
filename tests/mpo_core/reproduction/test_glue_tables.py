"""Tables 3-5 and OPF as tables: the specs of each grid, and the side-by-side/findings on a synthetic grid."""
import json

import numpy as np
import pandas as pd
import pytest

from mpo_core.reproduction import glue_grid, opf_comparison, table3, table4, table5
from mpo_core.reproduction.paper_numbers import TABLE3, TABLE5
from mpo_core.reproduction.results_store import Results


RATES = {(s, t): (1e-4 if s in ("full", "mpo_full", "last_k") else 1e-3, "lr_probe")
         for s in (*table3.ROWS, "last_k", "mpo_lfa") for t in table3.TASKS["full"]}


@pytest.mark.slow  # ~15 s of small GLUE runs
def test_table3_controlled_runs_three_seeds_with_the_probed_rates_and_mpop_from_the_frontier(monkeypatch):
    from mpo_core.reproduction import frontier

    sizes = {"mpo_full_bond_params": 24.28e6, "dense_params": 22.71e6,
             "ratios": {label: {str(t): {"compression_ratio": 0.5} for t in frontier.TARGETS["full"]}
                        for label in frontier.TRUNCATIONS}}
    monkeypatch.setattr(frontier, "all_sizes", lambda mode: {t: sizes for t in ("sst2", "mrpc")})
    monkeypatch.setattr(frontier, "task_sizes", lambda task, mode, targets: {**sizes, "ratios": {}})
    specs, borrowed = table3.specs("full", RATES)
    assert {s.task for s in specs} == {"sst2", "mrpc", "stsb"} and {s.seed for s in specs} == {0, 1, 2}
    assert len(specs) == 3 * 3 * len(table3.ROWS)
    for seed in (0, 1, 2):
        rows = [table3.row_name(s.label) for s in specs if s.task == "mrpc" and s.seed == seed]
        assert rows == ["full", "mpo_full", "mpo_full_lfa", "mpop", "mpop_dir"]
    (mpop,) = [s for s in specs if s.task == "sst2" and s.seed == 1 and s.strategy == "mpop"]
    assert mpop.run_name == "mpop@0.75-sst2-seed1"
    assert borrowed == {f"mpop@0.75-{t}-seed{s}": "frontier" for t in ("sst2", "mrpc") for s in (0, 1, 2)}
    (stsb,) = [s for s in specs if s.task == "stsb" and s.seed == 0 and s.strategy == "mpop"]
    assert stsb.options == mpop.options and stsb.run_name not in borrowed  # the same squeeze, Table 3's own run
    (direct,) = [s for s in specs if s.task == "stsb" and s.seed == 0 and s.strategy == "mpop_dir"]
    assert direct.options["bond_dims_from"].endswith("records/table3/mpop@0.75-stsb-seed0.json")
    (direct,) = [s for s in specs if s.task == "sst2" and s.seed == 1 and s.strategy == "mpop_dir"]
    assert direct.after == mpop.run_name and direct.options["bond_dims_from"].endswith(
        "records/frontier/mpop@0.75-sst2-seed1.json")
    curve = {(s.label, s.task) for s in specs if "eval_steps" in s.settings}
    assert curve == {(r, t) for r in table3.CURVE_ROWS for t in ("sst2", "mrpc")}
    assert all(s.settings["learning_rate"] == RATES[(s.strategy, s.task)][0] for s in specs if s.settings)
    assert mpop.settings == {"learning_rate": 1e-3}  # the frontier's runs train at the probed rates too


def test_table3_full_mode_needs_the_probe(monkeypatch):
    monkeypatch.setattr("mpo_core.reproduction.results_store.load_results", lambda name, mode: None)
    with pytest.raises(ValueError, match="reproduce lr_probe --mode full"):
        table3.learning_rates("full")


def seeded(scores: dict, tasks=("sst2", "mrpc"), constant=(), name="table3") -> Results:
    rows, rng = [], np.random.default_rng(0)
    for (row, task), score in ((k, v) for k, v in scores.items() if k[1] in tasks):
        for seed in (0, 1, 2):
            name = f"{row}-{task}-seed{seed}"
            rows.append({"row": row, "task": task, "seed": seed, "strategy": row, "metric": "accuracy",
                         "score": score + rng.normal(0, 0.002), "learning_rate": 1e-4,
                         "predicted_classes": 1 if name in constant else 2, "pr_millions": 1.7 if "lfa" in row
                         or row.startswith("mpop") else 22.7, "to_millions": 17.0 if row.startswith("mpop") else 22.7,
                         "wall_seconds": 1.0, "run": name})
    return Results(name, "full", pd.DataFrame(rows), {})


def test_table3_side_by_side_and_verdicts_from_seeds():
    scores = {("full", "sst2"): 0.81, ("mpo_full", "sst2"): 0.81, ("mpo_full_lfa", "sst2"): 0.78,
              ("mpop", "sst2"): 0.77, ("mpop_dir", "sst2"): 0.74,
              ("full", "mrpc"): 0.72, ("mpo_full", "mrpc"): 0.72, ("mpo_full_lfa", "mrpc"): 0.719,
              ("mpop", "mrpc"): 0.715, ("mpop_dir", "mrpc"): 0.70}
    results = seeded(scores, constant={"mpop_dir-mrpc-seed2"})
    frame = table3.side_by_side(results)
    assert frame.loc["mpop (paper: MPOP)", ("sst2", "paper")] == TABLE3["MPOP"]["sst2"]
    assert frame.loc["full (paper: ALBERT_rep)", ("sst2", "ours")].startswith("81.")  # mean ± std, percent
    assert frame.loc["mpop_dir (paper: MPOP_dir)", ("mrpc", "ours")].endswith("(2/3)")  # one run learned nothing
    lines = table3.findings(results)
    assert lines[0].startswith("MPOP stays within 1 point of full fine-tuning (paper: +0.8 on average): "
                               "sst2 does not hold") and "mrpc holds" in lines[0]
    assert "dimension squeezing beats direct truncation" in lines[1] and "sst2 holds" in lines[1]
    assert "#Pr of mpop 1.70M" in lines[-2] and lines[-1].startswith("1 of 30 runs predicted one class")


def test_table3_curve_findings_give_each_rows_gap_to_full_and_its_late_rise():
    results = seeded({("full", "sst2"): 0.8})

    def record(row, seed, scores):
        return {"task": "sst2", "score": scores[-1], "global_step": 6,
                "curve": [{"step": s, "split": "dev", "score": v} for s, v in zip((2, 4), scores)],
                "config": {"run_name": f"{row}-sst2-seed{seed}", "seed": seed, "eval_steps": 2}}

    results.meta["records"] = [record("full", 0, (0.5, 0.7, 0.8)), record("full", 1, (0.5, 0.7, 0.8)),
                               record("mpo_full_lfa", 0, (0.6, 0.7, 0.75)), record("mpo_full_lfa", 1, (0.6, 0.7, 0.79))]
    (line,) = table3.curve_findings(results)
    assert line == ("sst2 curves (mean of 2 seeds), at steps 2, 4, 6: mpo_full_lfa − full +10.0, +0.0, -3.0 points; "
                    "from step 4 to the end: full +10.0, mpo_full_lfa +7.0 points.")
    results.meta["records"] = results.meta["records"][2:]  # no full curve: nothing to compare with
    assert table3.curve_findings(results) == []


def test_table3_curves_and_squeeze_summary_from_the_run_records():
    results = seeded({("full", "sst2"): 0.8})
    curve = [{"step": 2, "split": "dev", "score": 0.6}, {"step": 4, "split": "dev", "score": 0.7}]
    squeeze = {"dense_params": 100, "mpo_params": 107, "stop_reason": "target size reached", "baseline": 0.8,
               "final": 0.79, "history": [{"within_change": False, "within_drop": True, "total_params": 90},
                                          {"within_change": False, "within_drop": True, "total_params": 75}]}
    results.meta["records"] = [
        {"task": "sst2", "score": 0.72, "global_step": 6, "curve": curve,
         "config": {"run_name": "mpo_full_lfa-sst2-seed0", "seed": 0, "eval_steps": 2}},
        {"task": "sst2", "score": 0.7, "global_step": 6, "curve": [{"step": 6, "split": "dev", "score": 0.7}],
         "config": {"run_name": "mpop_dir-sst2-seed0", "seed": 0, "eval_steps": 10_000}},  # not a curve run
        {"task": "sst2", "strategy": "mpop", "total_params": 75, "squeeze": squeeze, "config": {"seed": 0}}]
    points = table3.curves(results)
    assert list(points["step"]) == [2, 4, 6] and list(points["score"]) == pytest.approx([60, 70, 72])
    assert set(points["row"]) == {"mpo_full_lfa"} and len(table3.curve_figure(results).data) == 1
    summary = table3.squeeze_summary(results).iloc[0]
    assert summary["to_vs_dense"] == 0.75 and summary["drop_rule_vs_dense"] == 0.75
    assert summary["change_rule_vs_dense"] == 1.07  # the paper's rule: stopped at the first cut


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_table5_controlled_rows_borrow_last_1_and_mpop_from_the_frontier(monkeypatch):
    from mpo_core.reproduction import frontier

    sizes = {"mpo_full_bond_params": 24.28e6, "dense_params": 22.71e6,
             "ratios": {label: {str(t): {"compression_ratio": 0.5} for t in frontier.TARGETS["full"]}
                        for label in frontier.TRUNCATIONS}}
    monkeypatch.setattr(frontier, "all_sizes", lambda mode: {t: sizes for t in ("sst2", "mrpc")})
    specs, borrowed = table5.specs("full", RATES)
    assert len(specs) == 3 * 2 * 4 and {s.task for s in specs} == {"sst2", "mrpc"}
    rows = [table3.row_name(s.label) for s in specs if s.task == "mrpc" and s.seed == 2]
    assert rows == ["last_3", "last_2", "last_1", "mpop"]
    assert [s.options["k"] for s in specs if s.task == "sst2" and s.seed == 0 and s.strategy == "last_k"] == [3, 2, 1]
    assert set(borrowed) == {f"{r}-{t}-seed{s}" for r in ("last_1", "mpop@0.75") for t in ("sst2", "mrpc")
                             for s in (0, 1, 2)} and set(borrowed.values()) == {"frontier"}
    (last_2,) = [s for s in specs if s.task == "sst2" and s.seed == 0 and s.label == "last_2"]
    assert last_2.settings == {"learning_rate": 1e-4}


def test_table5_side_by_side_and_verdicts():
    scores = {(r, t): v for t in ("sst2", "mrpc") for r, v in
              (("last_3", 0.80), ("last_2", 0.79), ("last_1", 0.72), ("mpop", 0.77))}
    results = seeded(scores, name="table5")
    results.table["pr_millions"] = results.table["row"].map({"last_3": 5.47, "last_2": 3.70, "last_1": 1.92,
                                                             "mpop": 1.69})
    frame = table5.side_by_side(results)
    assert frame.loc["mpop (paper: MPOP_B)", ("sst2", "paper")] == TABLE5["MPOP_B"]["sst2"]
    assert frame.loc["last_1 (paper: BERT_12)", ("#Pr", "ours")] == 1.92
    lines = table5.findings(results)
    assert lines[0].startswith("mpop (#Pr 1.69M) beats last_3 (#Pr 5.47M) (paper: +4.0 points (MPOP_B vs BERT_10-12")
    assert "sst2 does not hold" in lines[0]
    assert lines[2].startswith("mpop (#Pr 1.69M) beats last_1 (#Pr 1.92M) (paper: +7.6 points (MPOP_B vs BERT_12") and "sst2 holds" in lines[2]


def grid(rows, tasks, name="table3"):
    records = []
    for i, row in enumerate(rows):
        for j, task in enumerate(tasks):
            records.append({"row": row, "model": "m", "task": task, "strategy": row.split("/")[-1], "metric": "accuracy",
                            "score": 0.5 + 0.01 * i + 0.001 * j, "pr_millions": 1.0 + i, "to_millions": 20.0 + i,
                            "run": f"{row}-{task}"})
    return Results(name, "full", pd.DataFrame(records), {})


def test_table4_views():
    results = grid(("full", "mpop", "distilbert/full", "distilbert/mpop"), ("rte",), "table4")
    frame = table4.side_by_side(results)
    assert list(frame["paper row"]) == ["BERT", "MPOP_B", "DistilBERT", "MPOP_D"]
    assert len(table4.findings(results)) == 3 and "constant prediction" in table4.findings(results)[-1]


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_opf_controlled_rows_share_table3_full_and_save_the_merged_models(monkeypatch):
    from mpo_core.reproduction import frontier

    sizes = {"mpo_full_bond_params": 24.28e6, "dense_params": 22.71e6,
             "ratios": {label: {str(t): {"compression_ratio": 0.5} for t in frontier.TARGETS["full"]}
                        for label in frontier.TRUNCATIONS}}
    monkeypatch.setattr(frontier, "all_sizes", lambda mode: {t: sizes for t in ("sst2", "mrpc")})
    monkeypatch.setattr(frontier, "task_sizes", lambda task, mode, targets: {**sizes, "ratios": {}})
    specs, borrowed = opf_comparison.specs("full", RATES)
    assert len(specs) == 3 * 2 * 3 and set(borrowed.values()) == {"table3"}
    assert set(borrowed) == {f"full-{t}-seed{s}" for t in ("sst2", "mrpc") for s in (0, 1, 2)}
    opf = [s for s in specs if s.strategy == "opf"]
    assert all(s.settings["save_model"] and s.settings["learning_rate"] == 1e-4 for s in opf)
    assert {s.options["selection"] for s in opf} == {"static", "dynamic"}


def test_opf_merge_table_and_findings():
    results = seeded({(r, t): v for t in ("sst2", "mrpc") for r, v in
                      (("full", 0.80), ("opf_static", 0.805), ("opf_dynamic", 0.75))}, name="opf")
    table = results.table
    table["strategy"] = table["row"].map({"full": "full", "opf_static": "opf", "opf_dynamic": "opf"})
    for column, value in (("original_params", 10), ("merged_params", 10), ("same_shapes", True),
                          ("mpo_layers_left", 0), ("latency_ratio", 1.01)):
        table[column] = [value if s == "opf" else None for s in table["strategy"]]
    assert len(opf_comparison.merge_table(results)) == 12
    lines = opf_comparison.findings(results)
    assert lines[0].startswith("opf_static is not below plain fine-tuning (paper: OPF improves small PLMs): sst2 ")
    assert "sst2 does not hold" in lines[1]
    assert "equal to the original in 12 of 12 runs, no MPO left in 12" in lines[2]
    assert opf_comparison.side_by_side(results).loc["opf_dynamic", "mrpc"].endswith(" ± 0.0")  # percent, 3 seeds


def test_constant_rows_are_the_runs_that_score_like_one_class_for_all(tmp_path):
    (tmp_path / "RTE").mkdir()  # a 4-example dev set: 3 entailment, 1 not: one class for all scores 0.75 or 0.25
    lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\ta{i}\tb{i}\t{label}" for i, label in
                                                      enumerate(["entailment"] * 3 + ["not_entailment"])]
    (tmp_path / "RTE" / "dev.tsv").write_text("\n".join(lines) + "\n")
    results = grid(("full", "mpop", "mpo_full"), ("rte", "cola"), "table5")
    results.table["score"] = [0.75, 0.0, 0.5, 0.1, 0.25, 0.0]  # rows x tasks in grid() order: (full rte, full cola), ...
    results.table.loc[results.table["task"] == "cola", "metric"] = "matthews"
    assert glue_grid.constant_levels("rte", None, data_dir=tmp_path) == {0.75, 0.25}
    assert glue_grid.constant_rows(results, tmp_path) == {"rte": ["full", "mpo_full"], "cola": ["full", "mpo_full"]}
    assert glue_grid.constant_sentence(results, tmp_path).startswith("4 of 6 runs scored exactly")
    assert glue_grid.constant_levels("stsb", None, data_dir=tmp_path) == set()  # a correlation: no constant level
    assert glue_grid.constant_levels("rte", None, data_dir=tmp_path / "missing") == set()


@pytest.mark.slow  # real training: four 1-layer runs of 4 steps and the frontier's small mpop run
def test_table3_small_mode_end_to_end(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = table3.run("small")
    table = results.table
    assert list(table["row"]) == list(table3.ROWS) and (table["seed"] == 0).all()
    assert table["score"].between(-1, 1).all()
    assert (tmp_path / "small" / "records" / "frontier" / "mpop@0.75-sst2-seed0.json").is_file()  # shared run
    assert (tmp_path / "small" / "records" / "table3" / "mpop_dir-sst2-seed0.json").is_file()
    mpop, direct = (table[table["row"] == r].iloc[0] for r in ("mpop", "mpop_dir"))
    assert direct["to_millions"] == pytest.approx(mpop["to_millions"])  # the same bond dims, truncated directly
    assert set(table3.curves(results)["row"]) == set(table3.CURVE_ROWS)  # dev every 2 of the 4 steps
    assert len(table3.findings(results)) == len(table3.CLAIMS) + 2
    assert "fixed" in json.dumps(results.meta["settings"]["learning_rates_used"])  # no probe run in this mode


@pytest.mark.slow  # real training: two 3-layer runs of 4 steps, and the frontier's small last_1 and mpop runs
def test_table5_small_mode_end_to_end(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = table5.run("small")
    table = results.table
    assert list(table["row"]) == ["last_3", "last_2", "last_1", "mpop"] and (table["seed"] == 0).all()
    assert table.set_index("row")["pr_millions"].is_monotonic_decreasing  # last_3 trains most, mpop least
    assert (tmp_path / "small" / "records" / "frontier" / "last_1-sst2-seed0.json").is_file()  # borrowed
    assert len(table5.findings(results)) == 4


@pytest.mark.slow  # real training: two 2-layer OPF runs of 4 steps, Table 3's small full run, two merge checks
def test_opf_small_mode_end_to_end(tmp_path, monkeypatch, single_blas_thread):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    results = opf_comparison.run("small")
    assert list(results.table["row"]) == ["full", "opf_static", "opf_dynamic"]
    merged = opf_comparison.merge_table(results)
    assert (merged["merged_params"] == merged["original_params"]).all() and (merged["mpo_layers_left"] == 0).all()
    kept = json.loads((tmp_path / "small" / "records" / "opf" / "opf_static-sst2-seed0.json").read_text())
    assert kept["merge_check"]["same_shapes"] is True  # the check travels with the record
    assert len(opf_comparison.findings(results)) == 4

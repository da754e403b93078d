"""Tables 3-5 and OPF as tables: the specs of each grid, and the side-by-side/findings on a synthetic grid."""
import pandas as pd

from mpo_core.reproduction import glue_grid, opf_comparison, table3, table4, table5
from mpo_core.reproduction.paper_numbers import TABLE3, TABLE5
from mpo_core.reproduction.results_store import Results


def test_table3_runs_every_row_per_task_and_mpop_dir_after_mpop():
    specs = table3.specs("full")
    assert {s.task for s in specs} == {"rte", "mrpc", "wnli", "sst2", "cola", "stsb"}
    for task in table3.TASKS["full"]:
        rows = [s.label for s in specs if s.task == task]
        assert rows == list(table3.ROWS) and rows.index("mpop") < rows.index("mpop_dir")
        (direct,) = [s for s in specs if s.task == task and s.label == "mpop_dir"]
        assert direct.options["bond_dims_from"].endswith(f"table3/mpop-{task}")


def test_table5_and_table4_share_table3_run_names():
    t3 = {s.run_name for s in table3.specs("full")}
    assert {s.run_name for s in table5.specs("full") if s.label == "mpop"} <= t3
    assert [s.options["k"] for s in table5.specs("full") if s.task == "rte" and s.strategy == "last_k"] == [3, 2, 1]


def grid(rows, tasks, name="table3"):
    records = []
    for i, row in enumerate(rows):
        for j, task in enumerate(tasks):
            records.append({"row": row, "model": "m", "task": task, "strategy": row.split("/")[-1], "metric": "accuracy",
                            "score": 0.5 + 0.01 * i + 0.001 * j, "pr_millions": 1.0 + i, "to_millions": 20.0 + i,
                            "run": f"{row}-{task}"})
    return Results(name, "full", pd.DataFrame(records), {})


def test_side_by_side_puts_the_paper_beside_ours():
    results = grid(table3.ROWS, ("rte", "mrpc"))
    frame = table3.side_by_side(results)
    assert frame.loc["mpop (paper: MPOP)", ("rte", "paper")] == TABLE3["MPOP"]["rte"]
    assert frame.loc["full (paper: ALBERT_rep)", ("rte", "ours")] == 50.0  # percent, as the paper prints
    assert frame.loc["mpop (paper: MPOP)", ("pr", "ours")] == 2.0
    lines = table3.findings(results)
    assert any("mpop_dir" in line for line in lines) and any("#Pr of mpop" in line for line in lines)
    assert len(glue_grid.score_figure(results).data) == len(table3.ROWS)


def test_table5_and_table4_views():
    results = grid(("last_3", "last_2", "last_1", "mpop"), ("sst2", "rte"), "table5")
    assert table5.side_by_side(results).loc["mpop (paper: MPOP_B)", ("sst2", "paper")] == TABLE5["MPOP_B"]["sst2"]
    assert "best last-layers row" in table5.findings(results)[1]
    results = grid(("full", "mpop", "distilbert/full", "distilbert/mpop"), ("rte",), "table4")
    frame = table4.side_by_side(results)
    assert list(frame["paper row"]) == ["BERT", "MPOP_B", "DistilBERT", "MPOP_D"]
    assert len(table4.findings(results)) == 3 and "constant prediction" in table4.findings(results)[-1]


def test_opf_merge_table_and_findings():
    results = grid(("full", "opf_static", "opf_dynamic"), ("rte",), "opf")
    table = results.table
    table["strategy"] = ["full", "opf", "opf"]
    for column, value in (("original_params", 10), ("merged_params", 10), ("same_shapes", True),
                          ("mpo_layers_left", 0), ("latency_ratio", 1.01)):
        table[column] = [None, value, value]
    assert len(opf_comparison.merge_table(results)) == 2
    assert "2 of 2 runs" in opf_comparison.findings(results)[-1]


def test_table3_squeeze_summary_from_the_run_records():
    history = [{"squeeze_step": 1, "params_saved": 100, "accepted": True},
               {"squeeze_step": 2, "params_saved": 50, "accepted": False}]  # a rejected cut saves nothing
    records = [{"strategy": "full", "task": "rte", "total_params": 1000},
               {"strategy": "mpop", "task": "rte", "total_params": 900,
                "squeeze": {"steps_accepted": 1, "stop_reason": "metric dropped", "baseline": 0.6, "final": 0.59,
                            "history": history}}]
    results = grid(table3.ROWS, ("rte",))
    results.meta["records"] = records
    summary = table3.squeeze_summary(results)
    assert list(summary["task"]) == ["rte"] and summary.at[0, "to_vs_start"] == 0.9  # 900 of 1000 before the cut
    assert any("1-1 cuts accepted per task; stop reasons: metric dropped (1)" in line and "0.900-0.900" in line
               for line in table3.findings(results))


def test_constant_rows_are_the_runs_that_score_like_one_class_for_all(tmp_path):
    (tmp_path / "RTE").mkdir()  # a 4-example dev set: 3 entailment, 1 not: one class for all scores 0.75 or 0.25
    lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\ta{i}\tb{i}\t{label}" for i, label in
                                                      enumerate(["entailment"] * 3 + ["not_entailment"])]
    (tmp_path / "RTE" / "dev.tsv").write_text("\n".join(lines) + "\n")
    results = grid(("full", "mpop", "mpo_full"), ("rte", "cola"))
    results.table["score"] = [0.75, 0.0, 0.5, 0.1, 0.25, 0.0]  # rows x tasks in grid() order: (full rte, full cola), ...
    results.table.loc[results.table["task"] == "cola", "metric"] = "matthews"
    assert glue_grid.constant_levels("rte", None, data_dir=tmp_path) == {0.75, 0.25}
    assert glue_grid.constant_rows(results, tmp_path) == {"rte": ["full", "mpo_full"], "cola": ["full", "mpo_full"]}
    assert glue_grid.constant_sentence(results, tmp_path).startswith("4 of 6 runs scored exactly")
    assert glue_grid.constant_levels("stsb", None, data_dir=tmp_path) == set()  # a correlation: no constant level
    assert glue_grid.constant_levels("rte", None, data_dir=tmp_path / "missing") == set()

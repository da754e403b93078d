"""Table 2 (experiment ``table2``): inference cost of the factored forms, small mode and the planning rules."""
import json
from pathlib import Path

import pytest

from mpo_core import plan_shape
from mpo_core.reproduction import results_store, table2

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "04_table2_inference_cost.ipynb"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, single_blas_thread):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("results")
        patch.setenv("MPO_RESULTS_DIR", str(folder))
        table2.run("small")
        yield folder


@pytest.fixture()
def results(results_dir, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(results_dir))
    return results_store.load_results("table2", "small")


def test_run_writes_every_curve_with_its_settings(results, results_dir):
    assert (results_dir / "small" / "table2.csv").is_file() and (results_dir / "small" / "table2.json").is_file()
    table, settings = results.table, results.meta["settings"]
    assert list(table.columns) == list(table2.COLUMNS)
    curves = set(zip(table["method"], table["n"]))
    assert curves == {("svd", 2)} | {(m, n) for n in settings["n_values"] for m in ("mpo", "cpd", "tucker")}
    assert table["skipped_reason"].isna().all()  # small mode times every point
    assert len(results.meta["records"]) == len(table)
    assert all(len(r["ms"]) == settings["repeats"] for r in results.meta["records"])
    assert settings["threads"] == 1 and "OMP_NUM_THREADS" in settings["notes"]


def test_each_forward_matches_its_rebuilt_matrix(results):
    table = results.table
    assert (table["forward_check"] < 1e-4).all()
    assert table["relative_error"].between(0, 1.0 + 1e-6).all()
    assert (table["compression_ratio"] <= 1).all() and (table["ms"] > 0).all() and (table["dense_ms"] > 0).all()


def test_paper_formulas_are_evaluated_per_row(results):
    for _, row in results.table.iterrows():
        assert row["paper_cost"] == table2.paper_cost(row["method"], row["n"], row["m"], row["d"])
        assert row["paper_complexity"] == table2.PAPER_COMPLEXITY[row["method"]]
    assert table2.paper_cost("tucker", 3, 4, 2) == 3 * 4 * 2 + 2**3
    assert table2.paper_cost("mpo", 5, 4, 2) == 5 * 4 * 8 and table2.paper_cost("svd", 2, 4, 2) == 2 * 4 * 8
    assert table2.paper_cost("cpd", 5, 4, 2) == 5 * 4 * 4


def test_views_for_the_notebook(results):
    frame = table2.side_by_side(results)
    assert len(frame) == len(results.table) and "paper_complexity" in frame and "time_vs_dense" in frame
    slopes = table2.scaling(results)
    assert set(slopes["method"]) == {"svd", "mpo", "cpd", "tucker"}
    assert slopes.loc[slopes["method"] == "svd", "flops_slope"].sub(1).abs().max() < 1e-9  # r (in + out)
    assert slopes.loc[slopes["method"] == "cpd", "flops_slope"].sub(1).abs().max() < 1e-9  # R sum_k ...
    assert slopes.loc[slopes["method"] == "mpo", "paper_slope"].sub(3).abs().max() < 1e-9
    cross = table2.mpo_vs_tucker(results)
    assert set(cross["n"]) == set(results.meta["settings"]["n_values"])
    fig = table2.figure(results)
    assert len(fig.data) == results.table.groupby(["matrix", "method", "n"]).ngroups and fig.layout.xaxis.type == "log"
    assert table2.figure(results, x="num_params").layout.xaxis.title.text == "num_params"
    text = table2.summary(results)
    assert "Table 2" in text and "Tucker/MPO" in text and len(text.splitlines()) == len(slopes) + 3


@pytest.mark.parametrize("method", table2.METHODS)
def test_plan_point_ranks_follow_d(method):
    shape = plan_shape(96, 48, n=2 if method == "svd" else 3)
    point = table2.plan_point(method, shape, 4, batch=10)
    assert point["skipped_reason"] is None and max(point["ranks"]) == 4
    assert point["flops"] > 0 and point["peak"] > 0 and point["num_params"] > 0
    assert table2.plan_point(method, shape, 10**6, batch=10)["skipped_reason"] or method == "cpd"


def test_skip_rules_state_their_reason():
    options = table2.SETTINGS["full"]
    point = dict(skipped_reason=None, num_params=10, flops=100)
    assert table2._skip_reason(point, dense_params=100, dense_fl=1000, options=options) is None
    assert "parameters" in table2._skip_reason({**point, "num_params": 101}, 100, 1000, options)
    assert "flops" in table2._skip_reason({**point, "flops": 10**6}, 100, 1000, options)


def test_chunked_forward_equals_one_call():
    import torch

    x = torch.randn(10, 3)
    forward = lambda t: t * 2  # noqa: E731
    assert torch.equal(table2.chunked(forward, 3)(x), x * 2)


def test_notebook_defines_no_code_and_is_committed_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    source = "\n".join("".join(c["source"]) for c in code)
    assert "def " not in source and "class " not in source and "lambda" not in source
    # the stored full results first, then this mode's run as a pipeline check (issue 27)
    assert 'stored_full("table2"' in source and 'pipeline_check("table2"' in source

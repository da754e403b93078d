"""The Compress page's calibrated back end: requests, a real run, the budget table and the stored frontier."""
from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoTokenizer

import mpo_core
from app import calibrated as cal, compress as mc
from mpo_core.model.calibrated_compression import METHODS
from mpo_core.model.surgery import mpo_modules

from .frontier_results import frontier_table, write_frontier

GLUE = Path(__file__).resolve().parents[2].parent / "shared" / "glue"  # as the browser test


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "nope"}, "method"),
    ({"size": 0.0}, "share"),
    ({"sentences": 0}, "calibration sentences"),
    ({"sentences": 2.5}, "calibration sentences"),
    ({"n": 1}, "n must be"),
])
def test_request_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cal.CalibratedRequest(**kwargs)


def test_request_is_hashable_and_makes_the_config():
    request = cal.CalibratedRequest(method="auto", size=0.3, groups="query", sentences=64)
    assert request.groups == ("query",) and request.calibrated
    assert hash(request) == hash(cal.CalibratedRequest(method="auto", size=0.3, groups=("query",), sentences=64))
    config = request.config()
    assert (config.method, config.size, config.groups) == ("auto", 0.3, ("query",))
    assert not cal.CalibratedRequest(method="svd").calibrated
    assert list(cal.METHOD_LABELS) == list(METHODS)


def test_calibration_sources(tmp_path):
    sources = cal.calibration_sources(GLUE)
    assert sources[0] == "stsb" and "sst2" in sources
    assert cal.calibration_sources(tmp_path) == []


@pytest.fixture(scope="module")
def minilm():
    return mc.load_base_model(num_hidden_layers=2)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_auto_runs_every_phase_and_reports_where_the_budget_went(minilm, tokenizer, tmp_path):
    phases = []
    request = cal.CalibratedRequest(method="auto", size=0.4, groups=("query", "key"), sentences=16)
    result = cal.compress_calibrated(minilm, tokenizer, request, data_dir=GLUE, cache_dir=tmp_path,
                                     phase=lambda name, done, text: phases.append((name, done)))
    assert [p for p, _ in phases] == list(cal.PHASES)
    assert [d for _, d in phases] == sorted(d for _, d in phases)
    assert not mpo_modules(minilm) and mpo_modules(result.model)  # the base model is untouched
    report = result.report
    assert report["kept_share"] <= 0.4 + 1e-9 and len(report["matrices"]) == 4
    assert set(result.seconds) == {"calibration", "sensitivity", "compression"}
    budget = cal.budget_table(report)
    assert list(budget["kind"]) == ["group"] * 2 + ["layer"] * 2
    assert list(budget["where"][-2:]) == ["layer 0", "layer 1"]
    assert (budget["params"] <= budget["dense params"]).all()
    assert budget["params"][budget["kind"] == "group"].sum() == report["matrix_params_after"]
    matrices = cal.matrix_table(report)
    assert len(matrices) == 4 and set(matrices["structure"]) <= {"dense", "SVD", "MPO n=3", "MPO n=5"}
    assert matrices["relative output error"].notna().all()
    rows = dict((label, value) for label, value, _ in cal.result_rows(report))
    assert float(rows["Kept share"]) == pytest.approx(report["kept_share"], abs=1e-3)


def test_plain_svd_needs_no_calibration(minilm, tokenizer, tmp_path):
    phases = []
    result = cal.compress_calibrated(minilm, tokenizer, cal.CalibratedRequest(method="svd", size=0.5),
                                     data_dir=tmp_path, phase=lambda name, *_: phases.append(name))
    assert phases == ["compression", "zero-shot"] and not any(tmp_path.iterdir())
    assert set(cal.matrix_table(result.report)["structure"]) == {"SVD"}


def test_budget_table_structures_and_order():
    report = {"by_group": {
        "group:query": {"params": 10, "dense_params": 40, "structures": {"2": 1, "5": 2}, "kept_share": 0.25},
        "layer:0": {"params": 10, "dense_params": 40, "structures": {"0": 1}, "kept_share": 0.25},
        "group:key": {"params": 5, "dense_params": 10, "structures": {"3": 1}, "kept_share": 0.5},
        "layer:None": {"params": 5, "dense_params": 10, "structures": {"3": 1}, "kept_share": 0.5},
    }}
    table = cal.budget_table(report)
    assert list(table["where"]) == ["query", "key", "layer 0", "outside the layers"]
    assert table["structures"][0] == "MPO n=5: 2, SVD: 1" and table["structures"][2] == "dense: 1"


def test_no_frontier_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    assert cal.load_frontier() is None
    assert "python -m mpo_core reproduce zero_shot_frontier --mode full" in cal.frontier_caption(None)


def test_full_results_are_preferred_to_small_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path))
    write_frontier("small")
    small = cal.load_frontier()
    assert small.mode == "small" and "small mode: CI-sized, not the experiment" in cal.frontier_caption(small)
    write_frontier("full")
    full = cal.load_frontier()
    assert full.mode == "full" and "small mode" not in cal.frontier_caption(full)
    assert cal.frontier_caption(full).startswith("zero_shot_frontier [full]")
    pd.testing.assert_frame_equal(full.table[["row", "spearman"]], frontier_table()[["row", "spearman"]])


def test_frontier_figure_traces():
    fig = cal.frontier_figure(frontier_table(), user=(0.42, 0.8), chosen_share=0.4)
    traces = {t.name: t for t in fig.data}
    assert list(traces) == ["mpo_n5", "auto", "auto+heal", "dense (0.867)", "issue's baseline", "your model"]
    assert list(traces["auto"].x) == [0.30, 0.50]  # encoder rows only, by kept share (the model row is left out)
    assert traces["auto+heal"].line.dash == "dash" and traces["auto"].line.dash == "solid"
    assert traces["auto+heal"].line.color == traces["auto"].line.color
    assert list(traces["dense (0.867)"].y) == [0.867, 0.867]
    assert list(traces["issue's baseline"].y) == [0.716, 0.684] and traces["issue's baseline"].opacity < 1
    assert (traces["your model"].x, traces["your model"].y) == ((0.42,), (0.8,))
    assert [s.x0 for s in fig.layout.shapes] == [0.4]
    with_dense = [t.name for t in cal.frontier_figure(frontier_table(), user=(0.42, 0.8), user_dense=0.86).data]
    assert with_dense[-2:] == ["dense, your sample (0.860)", "your model"]
    bare = cal.frontier_figure(None)
    assert not bare.data


def test_the_frontier_is_read_under_the_experiment_s_own_name():
    from mpo_core.reproduction.zero_shot_frontier import NAME

    assert cal.FRONTIER == NAME

"""AppTest of the Parameter variation page: empty state, switching and comparing runs, a run without its model."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from . import pages
from .test_variation import copy_run, make_runs


def open_page(runs_dir, monkeypatch) -> AppTest:
    return pages.open_page("variation", monkeypatch, MPO_RUNS_DIR=runs_dir)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.getbasetemp() / "variation_runs")


metric = pages.metric


def table(at):
    (frame,) = [d.value for d in at.dataframe]
    return frame.set_index("group")


def traces(at) -> list[dict]:
    chart = at.get("plotly_chart")[-1]  # the runs' histogram (the stored run's chart comes first)
    return json.loads(chart.proto.spec)["data"]


def test_no_runs_yet_shows_the_stored_run_and_how_to_make_one(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    (info,) = at.info
    assert "No finished runs of your own" in info.value and "python -m mpo_core finetune" in info.value
    # a fresh install is not empty: the stored Table 1 run, its figure and the paper comparison
    assert [h.value for h in at.subheader] == ["The stored run: full fine-tuning of MiniLM on SST-2"]
    assert len(at.get("plotly_chart")) == 1 and any("word embedding changes least" in m.value for m in at.markdown)
    assert any(m.label.startswith("Word embedding") for m in at.metric)


def test_the_run_selectbox_switches_runs(runs, monkeypatch):
    at = open_page(runs, monkeypatch)
    at.selectbox(key="variation_run").set_value("full").run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "strategy") == "full" and metric(at, "task") == "sst2"
    assert metric(at, "dev accuracy") != "–"
    full = table(at)
    assert list(full.columns[1:3]) == ["ours (0,1e-4]", "paper (0,1e-4]"]
    assert full.loc["Word embedding", "paper (0,1e-4]"] == pytest.approx(66.0)  # percent
    assert full.loc["Word embedding", "ours Δw = 0"] < 50
    assert len(traces(at)) == 3

    at.selectbox(key="variation_run").set_value("lfa").run()
    assert not at.exception
    assert metric(at, "strategy") == "mpo_full_lfa"
    lfa = table(at)
    assert lfa.loc["Word embedding", "ours Δw = 0"] == pytest.approx(100.0)  # frozen under this run
    assert lfa.loc["Self-attention", "ours (1e-3,inf)"] != full.loc["Self-attention", "ours (1e-3,inf)"]
    assert (lfa["paper (1e-3,inf)"] == full["paper (1e-3,inf)"]).all()


def test_comparing_two_runs_overlays_them(runs, monkeypatch):
    at = open_page(runs, monkeypatch)
    at.selectbox(key="variation_run").set_value("full").run()
    assert at.selectbox(key="variation_compare").options == ["(none)", "lfa"]
    at.selectbox(key="variation_compare").set_value("lfa").run()
    assert not at.exception
    both = table(at)
    assert list(both.columns[1:4]) == ["full (0,1e-4]", "lfa (0,1e-4]", "paper (0,1e-4]"]
    assert both.loc["Word embedding", "full Δw = 0"] < both.loc["Word embedding", "lfa Δw = 0"]
    assert sorted({t["name"] for t in traces(at)}) == ["full", "lfa"] and len(traces(at)) == 6
    at.selectbox(key="variation_run").set_value("lfa").run()  # the compared run becomes the selected one
    assert not at.exception, [e.value for e in at.exception]
    assert "lfa" not in at.selectbox(key="variation_compare").options


def test_a_run_without_its_model_is_a_message(runs, tmp_path, monkeypatch):
    copy_run(runs, "full", tmp_path, keep_model=False)
    at = open_page(tmp_path, monkeypatch)
    (warning,) = at.warning
    assert "no saved final model" in warning.value and "save_model=False" in warning.value
    assert metric(at, "strategy") == "full"  # its results are still shown
    assert not at.dataframe


@pytest.mark.parametrize("typed", ["/etc", "{runs}/..", "~"])
def test_a_runs_folder_outside_the_root_is_refused(tmp_path, monkeypatch, typed):
    at = open_page(tmp_path / "runs", monkeypatch)
    at.text_input(key="runs_dir").set_value(typed.format(runs=tmp_path / "runs")).run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "is outside" in error.value and "MPO_RUNS_DIR" in error.value
    assert not at.info and not at.selectbox  # nothing listed from there

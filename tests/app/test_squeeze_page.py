"""AppTest of the Squeeze training page: empty state, a finished run's live view, starting and comparing runs."""
import pytest
from streamlit.testing.v1 import AppTest

from mpo_core.training.fine_tune import fine_tune

from . import pages
from .test_jobs import tiny_squeeze, wait_for


def open_page(runs_dir, monkeypatch) -> AppTest:
    return pages.open_page("squeeze", monkeypatch, MPO_RUNS_DIR=runs_dir)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    fine_tune(tiny_squeeze(runs, "first"))
    fine_tune(tiny_squeeze(runs, "second", squeeze_steps=1))
    return runs


metric = pages.metric


def test_no_runs_yet_is_a_message(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    assert any("No squeeze runs" in i.value for i in at.info)


def test_a_finished_run_shows_its_squeeze(two_runs, monkeypatch):
    at = open_page(two_runs, monkeypatch)
    assert at.selectbox(key="squeeze_select").value in ("first", "second")
    at.selectbox(key="squeeze_select").set_value("first").run()
    assert not at.exception
    assert metric(at, "status") == "finished" and metric(at, "accepted steps") == "2"
    assert metric(at, "p (before squeezing)") != "–" and metric(at, "p̃ (last accepted)") != "–"
    at.selectbox(key="squeeze_select").set_value("second").run()
    assert metric(at, "accepted steps") == "1" and metric(at, "#To (total)").endswith("M")
    assert len(at.get("plotly_chart")) >= 4 + 4  # live view + side-by-side comparison


@pytest.mark.slow  # a real background training job
def test_starting_a_run_from_the_form(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["run name"].set_value("from-the-page")
    for n in at.number_input:
        if n.label == "encoder layers to load":
            n.set_value(1)
        if n.label == "training examples":
            n.set_value(32)
        if n.label == "dev examples (reported only; p is judged on held-out training examples)":
            n.set_value(16)
        if n.label == "squeeze steps (budget)":
            n.set_value(1)
        if n.label == "lightweight fine-tuning steps first":
            n.set_value(1)
    at.button[0].click().run()  # the form's Start button
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert wait_for(tmp_path, "from-the-page", {"finished", "failed"}, timeout=300) == "finished"


def test_missing_glue_data_is_a_message(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    at.text_input(key="glue_dir").set_value(str(tmp_path / "nowhere")).run()
    at.button[0].click().run()
    assert any("does not exist" in e.value for e in at.error)

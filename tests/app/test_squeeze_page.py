"""AppTest of the Squeeze training page: empty state, a finished run's live view, starting and comparing runs."""
import pytest
from streamlit.testing.v1 import AppTest

from mpo_core.runs.run_folder import read_run_results
from mpo_core.training.fine_tune import fine_tune

from app import squeeze

from . import pages
from .test_jobs import GLUE, tiny_squeeze, wait_for


def open_page(runs_dir, monkeypatch, **env) -> AppTest:
    return pages.open_page("squeeze", monkeypatch, MPO_RUNS_DIR=runs_dir, **env)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    fine_tune(tiny_squeeze(runs, "first"))
    fine_tune(tiny_squeeze(runs, "second", squeeze_steps=1))
    return runs


metric = pages.metric


def test_no_runs_yet_shows_a_finished_example(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    assert any("No squeeze runs of your own" in i.value for i in at.info)
    assert [h.value for h in at.subheader] == ["A finished example"]
    assert len(at.get("plotly_chart")) == 1  # p~ as #To falls
    assert float(metric(at, "#To after").rstrip("M")) < float(metric(at, "#To before cuts").rstrip("M"))
    held_before, held_after = float(metric(at, "held-out p")), float(metric(at, "held-out p̃, last cut"))
    assert held_after > 0.7 and held_before - held_after < 0.05  # the example learned, and squeezing kept it


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_finished_run_shows_its_squeeze(two_runs, monkeypatch):
    at = open_page(two_runs, monkeypatch)
    assert at.selectbox(key="squeeze_select").value in ("first", "second")
    at.selectbox(key="squeeze_select").set_value("first").run()
    assert not at.exception
    assert metric(at, "status") == "finished" and metric(at, "accepted cuts") == "2"
    assert metric(at, "p (held-out)") != "–" and metric(at, "p̃ (held-out)") != "–"
    # the dev score on the card, labelled, and a note saying what each score measures
    results = read_run_results(two_runs / "first")
    assert metric(at, "dev accuracy") == f"{results['score']:.3f}"
    assert any("held out from training" in c.value and "GLUE dev examples" in c.value for c in at.caption)
    # a finished run: the bar says so, and nothing polls it (the live fragment exists only for live runs)
    [bar] = at.get("progress")
    assert bar.proto.value == 100 and bar.proto.text.startswith("finished")
    at.selectbox(key="squeeze_select").set_value("second").run()
    assert metric(at, "accepted cuts") == "1" and metric(at, "#To (total)").endswith("M")
    assert len(at.get("plotly_chart")) >= 4 + 4  # live view + side-by-side comparison
    table = at.dataframe[0]  # the runs table; one status per run: the table's is the card's
    assert table.value.set_index("run").loc["second", "status"] == metric(at, "status")
    assert "dev score" in table.value.columns and "score" not in table.value.columns


def test_missing_glue_data_is_a_message(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch, GLUE_DIR=tmp_path / "glue")
    at.text_input(key="glue_dir").set_value(str(tmp_path / "glue" / "nowhere")).run()  # inside the root, absent
    at.button[0].click().run()
    assert any("does not exist" in e.value for e in at.error)


@pytest.mark.parametrize("field, typed", [
    ("runs_dir", "/etc"), ("runs_dir", "{root}/runs/../elsewhere"), ("runs_dir", "{root}/runs/link-out"),
    ("glue_dir", "/etc"), ("glue_dir", "{root}/runs"),
])
def test_a_folder_outside_its_root_is_refused(tmp_path, monkeypatch, field, typed):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "link-out").symlink_to(tmp_path)  # inside by name, outside once resolved
    at = open_page(tmp_path / "runs", monkeypatch, GLUE_DIR=tmp_path / "glue")
    at.text_input(key=field).set_value(typed.format(root=tmp_path)).run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "is outside" in error.value and ("--runs-dir" in error.value or "--glue-dir" in error.value)
    assert not at.button  # no form, no run list: nothing can be started there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("name", ["../../x", "{root}/abs/path", "a/b", ".."])
def test_a_hostile_run_name_is_refused_and_nothing_is_written(tmp_path, monkeypatch, name):
    runs = tmp_path / "deep" / "runs"
    runs.mkdir(parents=True)
    at = open_page(runs, monkeypatch, GLUE_DIR=GLUE)
    [run_name] = [t for t in at.text_input if t.label == "run name"]
    run_name.set_value(name.format(root=tmp_path))
    at.button[0].click().run()  # the form's Start button
    assert not at.exception, [e.value for e in at.exception]
    assert any("is not allowed" in e.value for e in at.error), [e.value for e in at.error]
    assert [p for p in tmp_path.rglob("*")] == [tmp_path / "deep", runs]  # nothing written anywhere


def test_a_run_with_a_torn_file_is_named_not_fatal(tmp_path, monkeypatch):
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "config.json").write_text('{"task": "rte", "strat')
    at = open_page(tmp_path, monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    [warning] = at.warning
    assert str(tmp_path / "torn" / "config.json") in warning.value and "not listed" in warning.value
    assert any("No squeeze runs" in i.value for i in at.info)

"""AppTest of the Over-parameterize (OPF) page: scores and preview, a finished run's merge check, the form."""
import json
import os
import shutil
import time

import pytest
from streamlit.testing.v1 import AppTest

from app import jobs
from mpo_core.opf.strategy import OPF_GROUPS
from mpo_core.training.fine_tune import fine_tune

from . import pages
from .test_jobs import wait_for
from .test_opf import tiny_opf


def open_page(runs_dir, monkeypatch, **env) -> AppTest:
    return pages.open_page("opf", monkeypatch, MPO_RUNS_DIR=runs_dir, **env)


metric = pages.metric


def millions(at, label) -> float:
    return float(metric(at, label).removesuffix("M"))


def table(at, column):
    """The first table showing ``column`` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def count(at, label) -> int:
    return int(metric(at, label).replace(",", ""))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    results = fine_tune(tiny_opf(runs, "done"))
    return runs, results


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_opens_with_scores_and_a_preview_that_follows_top_n(finished, monkeypatch):
    at = open_page(finished[0], monkeypatch)
    assert not at.error, [e.value for e in at.error]
    assert at.number_input(key="top_n").value == 2 and at.number_input(key="stages").value == 2
    assert metric(at, "matrices to grow") == "12"  # default top-N = 2, six groups
    at.number_input(key="top_n").set_value(1).run()
    assert at.get("plotly_chart") and metric(at, "matrices to grow") == "6"
    peak = millions(at, "#To while training (peak)")
    assert peak > millions(at, "#To original")
    preview = table(at, "rank in group")
    assert len(preview) == 6 and set(preview["rank in group"]) == {1}

    at.number_input(key="top_n").set_value(2).run()
    assert not at.exception and metric(at, "matrices to grow") == "12"
    assert millions(at, "#To while training (peak)") > peak
    assert set(table(at, "rank in group")["rank in group"]) == {1, 2}

    at.radio(key="selection").set_value("dynamic").run()
    assert not at.exception and metric(at, "matrices to grow") == "12"
    stages = table(at, "rank in group")
    assert list(stages["stage"]) == [1] * 6 + [2] * 6 and list(stages["estimate"]) == [False] * 6 + [True] * 6
    assert any("estimate" in i.value for i in at.info)
    at.number_input(key="stages").set_value(3).run()  # dynamic needs top_n >= stages
    assert not at.exception and any("needs top_n >= 3" in e.value for e in at.error)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_finished_run_shows_its_selection_and_the_merge_check(finished, monkeypatch):
    runs, results = finished
    at = open_page(runs, monkeypatch)
    assert at.selectbox(key="opf_select").value == "done" and metric(at, "status") == "finished"
    assert metric(at, "matrices grown") != "0" and len(table(at, "growth")) == 6
    record = results["opf"]
    assert count(at, "#To before training") == count(at, "#To after merge") == record["total_params_before"]
    assert count(at, "#To peak while training") == record["max_total_params"]
    assert metric(at, "after merge = original") == "yes"
    assert not [m for m in at.metric if m.label == "latency ratio merged / original"]

    at.button(key="measure_latency").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ratio = float(metric(at, "latency ratio merged / original"))
    assert 0 < ratio < 10 and count(at, "params measured (merged)") == record["total_params_before"]
    original, merged = (float(metric(at, f"{key} forward, median (ms)")) for key in ("original", "merged"))
    assert ratio == pytest.approx(merged / original, abs=5e-4)  # the ratio of the two numbers beside it
    saved = json.loads((runs / "done" / "latency.json").read_text())
    assert (original, merged) == (round(saved["median_ms"]["original"], 2), round(saved["median_ms"]["merged"], 2))
    verdict = (at.success or at.warning)[-1].value  # the verdict on 1.00 +- 0.05 names the same ratio
    assert f"ratio {ratio:.3f}" in verdict


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_the_runs_own_scores_can_be_the_source(finished, monkeypatch):
    runs, results = finished
    at = open_page(runs, monkeypatch)
    at.radio(key="fisher_source").set_value("run").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="fisher_run").value == "done"
    at.number_input(key="growth").set_value(2.0).run()  # the run's options: its choice and peak #To
    assert metric(at, "#To original") == f"{results['opf']['total_params_before'] / 1e6:.3f}M"
    assert millions(at, "#To while training (peak)") == pytest.approx(results["opf"]["max_total_params"] / 1e6,
                                                                      abs=1e-3)
    assert metric(at, "matrices to grow") == "6"
    chosen = {m.removeprefix("bert.encoder.") for m in results["opf"]["chosen"][0]}
    assert set(table(at, "rank in group")["matrix"]) == chosen


def test_missing_glue_data_is_a_message(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch, GLUE_DIR=tmp_path / "glue")
    at.text_input(key="glue_dir").set_value(str(tmp_path / "glue" / "nowhere")).run()  # inside the root, absent
    assert not at.exception
    assert any("does not exist" in e.value for e in at.error) and any("GLUE folder" in i.value for i in at.info)
    assert any("No OPF runs" in i.value for i in at.info)
    [start] = [b for b in at.button if b.label == "Start"]
    start.click().run()
    assert not at.exception and sum("does not exist" in e.value for e in at.error) == 2


@pytest.mark.parametrize("field, typed", [("runs_dir", "/etc"), ("runs_dir", "{root}/runs/.."),
                                          ("glue_dir", "/"), ("glue_dir", "{root}/glue/../runs")])
def test_a_folder_outside_its_root_is_refused(tmp_path, monkeypatch, field, typed):
    (tmp_path / "runs").mkdir()
    at = open_page(tmp_path / "runs", monkeypatch, GLUE_DIR=tmp_path / "glue")
    at.text_input(key=field).set_value(typed.format(root=tmp_path)).run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    assert "is outside" in error.value
    assert not at.button and sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("name", ["../../x", "{root}/abs/path"])
def test_a_hostile_run_name_is_refused_and_nothing_is_written(tmp_path, monkeypatch, name):
    runs = tmp_path / "deep" / "runs"
    runs.mkdir(parents=True)
    at = open_page(runs, monkeypatch, GLUE_DIR=tmp_path / "deep" / "glue")  # no data: no Fisher scores either
    at.text_input(key="run_name").set_value(name.format(root=tmp_path))
    [start] = [b for b in at.button if b.label == "Start"]
    start.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("is not allowed" in e.value for e in at.error), [e.value for e in at.error]
    assert [p for p in tmp_path.rglob("*")] == [tmp_path / "deep", runs]


@pytest.mark.slow  # a real background training job
def test_a_run_started_from_the_form_can_be_stopped_and_still_merges(tmp_path, monkeypatch):
    at = open_page(tmp_path, monkeypatch)
    values = {"run_task": "rte", "run_layers": 1, "run_top_n": 1, "run_train": 32, "run_eval": 16, "run_steps": 5000,
              "run_fisher_batches": 1, "run_growth": 2.0, "run_name": "from-the-page"}
    for key, value in values.items():
        (at.selectbox if key == "run_task" else at.text_input if key == "run_name" else at.number_input)(
            key=key).set_value(value)
    [start] = [b for b in at.button if b.label == "Start"]
    start.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("from-the-page" in s.value for s in at.success)
    assert at.selectbox(key="opf_select").value == "from-the-page"  # listed while its job starts
    config = json.loads((tmp_path / ".jobs" / "from-the-page.config.json").read_text())
    assert config["strategy"] == "opf" and config["num_hidden_layers"] == 1 and config["max_steps"] == 5000
    assert config["strategy_options"] == {"growth": 2.0, "selection": "static", "top_n": 1, "stages": 2,
                                          "fisher_batches": 1, "groups": list(OPF_GROUPS)}  # every option is stored
    wait_for(tmp_path, "from-the-page", {"running"}, timeout=300)
    at.run()
    at.button(key="stop_from-the-page").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert wait_for(tmp_path, "from-the-page", {"stopped", "failed"}, timeout=300) == "stopped"
    at.run()
    assert metric(at, "status") == "stopped" and metric(at, "stages done") == "1 / 1"
    assert metric(at, "after merge = original") == "yes"  # a stopped run merges back all the same
    results = json.loads((tmp_path / "from-the-page" / "results.json").read_text())
    assert results["opf"]["total_params_after_merge"] == results["opf"]["total_params_before"]


@pytest.mark.parametrize("selection", ["static", "dynamic"])
def test_the_defaults_are_valid_in_both_modes_and_the_form_follows_the_preview(finished, monkeypatch, selection):
    at = open_page(finished[0], monkeypatch)
    at.radio(key="selection").set_value(selection).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert metric(at, "matrices to grow") == "12"
    assert at.number_input(key="run_layers").value == at.number_input(key="fisher_layers").value == 6
    assert at.selectbox(key="run_selection").value == selection
    assert at.number_input(key="run_top_n").value == 2 and at.number_input(key="run_stages").value == 2


def test_the_latency_ratio_is_the_quotient_of_the_medians_shown(finished, tmp_path, monkeypatch):
    """Stored timings whose paired ratio (0.996) and medians (132.84, 137.54 ms) disagree, as in issue 27."""
    runs = tmp_path / "runs"
    shutil.copytree(finished[0], runs)
    latency = {"batch_size": 8, "length": 64, "warmup": 3, "repeats": 3, "threads": 1, "device": "cpu",
               "measured_at": 0.0, "seconds": {"original": [0.13284, 0.1, 0.2], "merged": [0.13754, 0.2, 0.1]},
               "median_ms": {"original": 132.84, "merged": 137.54}, "ratio": 0.996,
               "params": {"original": 10, "merged": 10}, "mpo_layers_left": 0, "same_shapes": True}
    (runs / "done" / "latency.json").write_text(json.dumps(latency))
    at = open_page(runs, monkeypatch)
    assert metric(at, "original forward, median (ms)") == "132.84"
    assert metric(at, "merged forward, median (ms)") == "137.54"
    assert metric(at, "latency ratio merged / original") == f"{137.54 / 132.84:.3f}" == "1.035"
    assert any("0.996" in c.value and "paired" in c.value for c in at.caption)  # the other statistic, named
    assert any("ratio 1.035" in v.value for v in [*at.success, *at.warning])  # the verdict judges the shown one


def _statuses(at, run: str) -> set[str]:
    """The status of ``run`` in every place the page shows one: the runs table, the live card, the merge check."""
    shown = {str(table(at, "status").set_index("run").loc[run, "status"]), metric(at, "status")}
    shown |= {i.value.split(f"{run} is ", 1)[1].split(":")[0] for i in at.info if f"{run} is " in i.value}
    return shown


def _launched(runs_dir, name="live"):
    """A job launched with an OPF config whose process (this test's own: alive) has not made its run folder yet."""
    config = tiny_opf(runs_dir, name)
    (runs_dir / ".jobs").mkdir()
    (runs_dir / ".jobs" / f"{name}.config.json").write_text(json.dumps(config.to_dict()))
    alive = {"run_name": name, "runs_dir": str(runs_dir), "pid": os.getpid(), "started": time.time()}
    (runs_dir / ".jobs" / f"{name}.json").write_text(json.dumps(alive))
    return config


def test_every_place_shows_the_same_status_as_a_run_starts_runs_and_ends(tmp_path, monkeypatch):
    """A job launched but without its run folder is starting, with its folder running, with results finished."""
    config = _launched(tmp_path)
    at = open_page(tmp_path, monkeypatch)
    assert at.selectbox(key="opf_select").value == "live"
    assert _statuses(at, "live") == {"starting"} and len(at.info) >= 1
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "config.json").write_text(json.dumps(config.to_dict()))
    at.run()
    assert not at.exception and _statuses(at, "live") == {"running"}
    (tmp_path / "live" / "results.json").write_text("{}")
    at.run()
    assert not at.exception and _statuses(at, "live") == {"finished"}


@pytest.mark.parametrize("moment", [1, 2, 3, 4])
def test_a_status_that_changes_while_the_page_draws_is_shown_the_same_everywhere(tmp_path, monkeypatch, moment):
    """The run makes its folder (starting -> running) just before the page's ``moment``-th look at its status.

    The live view's 2-s timer reads the status later than the runs table did: the page must then redraw
    everything from one reading, not show "running" in one place and "starting" in two others (issue 27).
    """
    config = _launched(tmp_path)
    real, looks = jobs.run_status, []

    def racing(runs_dir, name):
        looks.append(name)
        if len(looks) == moment:
            (tmp_path / "live").mkdir()
            (tmp_path / "live" / "config.json").write_text(json.dumps(config.to_dict()))
        return real(runs_dir, name)

    monkeypatch.setattr(jobs, "run_status", racing)
    at = open_page(tmp_path, monkeypatch)
    shown = _statuses(at, "live")
    assert len(shown) == 1 and shown <= {"starting", "running"}, shown
    at.run()
    assert _statuses(at, "live") == {"running"}

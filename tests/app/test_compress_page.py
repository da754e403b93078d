"""AppTest of the "Compress a model" page, driven through the app's entry file (app/main.py)."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from . import pages


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture
def page(tmp_path, monkeypatch) -> AppTest:
    # no stored frontier, a fresh calibration cache: what the page shows does not depend on results/ or cache/
    monkeypatch.setenv("MPO_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MPO_CACHE_DIR", str(tmp_path / "cache"))
    return _ok(pages.open_page("compress"))


def _millions(at: AppTest, label: str) -> float:
    (value,) = [m.value for m in at.metric if m.label == label]
    return float(value.removesuffix("M"))


_metric = pages.metric


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_opens_with_the_paper_groups_planned(page):
    at = page
    assert at.title[0].value == "Compress a model"
    assert at.button_group(key="compress_groups").value == [
        "word_embedding", "query", "key", "value", "attention_output", "ffn_in", "ffn_out"]
    assert _millions(at, "#To before") == 22.71  # MiniLM-L6 (BertModel): 22,713,216 parameters
    assert _millions(at, "#To after") < _millions(at, "#To before")
    assert len(at.dataframe[0].value) == 1 + 6 * 6  # word embedding + six matrices in six layers
    assert len(at.get("plotly_chart")) == 1  # no stored frontier: a note says how to make it
    assert any("reproduce zero_shot_frontier --mode full" in i.value for i in at.info)
    assert at.selectbox(key="compress_method").value == "mpo"
    assert not at.get("download_button")


def test_the_ratio_slider_changes_table_and_totals(page):
    at = page
    after, table = _millions(at, "#To after"), at.dataframe[0].value
    at.slider(key="compress_ratio").set_value(0.1).run()
    _ok(at)
    assert _millions(at, "#To after") < after
    smaller = at.dataframe[0].value
    assert (smaller["ρ (Eq. 5)"] <= 0.1 + 1e-9).all() and (table["ρ (Eq. 5)"] > 0.1).any()
    assert (smaller["MPO params"] <= table["MPO params"]).all()
    assert float(_metric(at, "ρ, chosen matrices (Eq. 5)")) <= 0.1


def test_groups_and_layers_choose_the_matrices(page):
    at = page
    at.button_group(key="compress_groups").set_value(["query", "ffn_in"]).run()
    assert len(_ok(at).dataframe[0].value) == 2 * 6
    at.multiselect(key="compress_layers").set_value([0, 5]).run()
    rows = _ok(at).dataframe[0].value
    assert list(rows.index) == [f"encoder.layer.{i}.{m}" for i in (0, 5)
                                for m in ("attention.self.query", "intermediate.dense")]
    at.button_group(key="compress_groups").set_value([]).run()
    assert not at.exception and any("at least one matrix group" in i.value for i in at.info)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_default_shows_what_compression_does_to_the_model(page):
    at = page  # measured ahead (app/snapshots/compress.json) for the default settings, shown without a build
    original, compressed = float(_metric(at, "STS-B Spearman, original")), float(_metric(at, "STS-B Spearman, compressed"))
    assert original > 0.75 and compressed < original  # the packaged sentence encoder, then cut to rho = 0.3
    agreement = _metric(at, "Embedding agreement (cos)")
    assert 0 <= float(agreement) < 0.5
    assert any("Press the button to build" in c.value for c in at.caption)
    # explained on the page, not only in a tooltip: what a low agreement means beside the zero-shot scores
    [note] = [m.value for m in at.markdown if m.value.startswith("**Embedding agreement**")]
    assert f"point elsewhere than the original's (mean cosine {agreement}" in note and "0 = unrelated" in note
    assert f"Spearman {_metric(at, 'STS-B Spearman, compressed')} against the original's" in note
    assert any(c.value.startswith("Building and measuring takes about") for c in at.caption)  # the wait, stated
    at.slider(key="compress_ratio").set_value(0.5).run()  # other settings: nothing stored to show
    assert not [m for m in _ok(at).metric if m.label.startswith("STS-B")]


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_build_measures_the_model_and_offers_the_download(page):
    at = page
    at.button_group(key="compress_groups").set_value(["query", "key"]).run()
    at.multiselect(key="compress_layers").set_value([1]).run()
    planned = _millions(_ok(at), "#To after")
    assert not at.get("download_button")
    at.button(key="compress_build").click().run()
    _ok(at)
    assert _metric(at, "Built model matches the plan") == "yes"
    assert _millions(at, "#To of the built model") == planned
    agreement = float(_metric(at, "Embedding agreement (cos)"))
    assert 0.5 < agreement < 1.0  # two matrices of one layer at rho = 0.3: changed, but still close
    assert abs(float(_metric(at, "STS-B Spearman, compressed")) - float(_metric(at, "STS-B Spearman, original"))) < 0.1
    (button,) = at.get("download_button")
    assert "minilm-mpo-rho0.30-n5.zip" in button.proto.label
    at.radio(key="compress_format").set_value("merged").run()
    (button,) = _ok(at).get("download_button")
    assert "minilm-merged-rho0.30-n5.zip" in button.proto.label
    at.slider(key="compress_ratio").set_value(0.5).run()  # a stale model is not offered
    assert not at.get("download_button") and any("settings changed" in i.value for i in _ok(at).info)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_second_visit_reads_the_built_model_and_its_numbers_from_the_disk_cache(page, tmp_path):
    at = page
    at.button_group(key="compress_groups").set_value(["query", "ffn_out"]).run()
    at.multiselect(key="compress_layers").set_value([2]).run()
    at.button(key="compress_build").click().run()
    numbers = {m.label: m.value for m in _ok(at).metric}
    assert any(c.value.startswith("Built and measured in") for c in at.caption)
    [entry] = (tmp_path / "cache" / "compress").iterdir()
    assert (entry / "built.json").is_file() and [p.name for p in entry.glob("effect-*.json")]

    again = _ok(pages.open_page("compress"))  # a new session, the same cache folder
    again.button_group(key="compress_groups").set_value(["query", "ffn_out"]).run()
    again.multiselect(key="compress_layers").set_value([2]).run()  # live without pressing the button
    assert {m.label: m.value for m in _ok(again).metric} == numbers
    [read] = [c.value for c in again.caption if c.value.startswith("Read from the disk cache")]
    assert len(again.get("download_button")) == 1
    again.button(key="compress_build").click().run()  # read again: still the earlier build's time, not the read's
    assert read in [c.value for c in _ok(again).caption] and {m.label: m.value for m in again.metric} == numbers


def test_without_sts_b_data_the_model_is_still_built(page, tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))  # an empty GLUE folder
    at = page
    at.button_group(key="compress_groups").set_value(["query"]).run()
    at.multiselect(key="compress_layers").set_value([0]).run()
    at.button(key="compress_build").click().run()
    assert not at.exception
    assert any("not measured" in w.value for w in at.warning)
    assert len(at.get("download_button")) == 1


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_n_changes_the_bond_dims(page):
    at = page
    at.button_group(key="compress_groups").set_value(["value"]).run()
    full = at.dataframe[0].value["full d_k (Eq. 2)"]
    at.select_slider(key="compress_n").set_value(3).run()
    fewer = _ok(at).dataframe[0].value["full d_k (Eq. 2)"]
    assert all(len(d.split(",")) == 4 for d in full) and all(len(d.split(",")) == 2 for d in fewer)
    heat = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert heat["layout"]["yaxis"]["title"]["text"] == "parameters (millions)"


def test_every_method_is_offered_and_explained(page):
    at = page
    method = at.selectbox(key="compress_method")
    assert method.options == ["Plain MPO", "Plain SVD", "Whitened SVD (SVD-LLM)", "MPO, Kronecker-whitened",
                              "Calibrated MPO", "Auto"]
    method.set_value("auto").run()
    _ok(at)
    assert any("one budget" in c.value for c in at.sidebar.caption)
    assert at.slider(key="compress_share").value == 0.5
    assert at.number_input(key="compress_sentences").value == 512
    assert at.selectbox(key="compress_calibration").value == "stsb"
    groups = at.button_group(key="compress_auto_groups")
    assert [o for o in groups.options if "embedding" in o.lower()]  # offered: its sensitivity is measured too
    assert not [o for o in groups.value if "embedding" in o.lower()]  # not chosen by default (the frontier's 36)
    assert not at.dataframe and not at.get("plotly_chart")  # nothing runs before the click
    at.selectbox(key="compress_method").set_value("svd").run()  # no calibration for a plain method
    assert not [w for w in _ok(at).sidebar.selectbox if w.key == "compress_calibration"]


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_calibrated_method_runs_and_lands_on_the_frontier(page, monkeypatch, tmp_path):
    from .frontier_results import write_frontier

    write_frontier("small")  # under the fixture's MPO_RESULTS_DIR
    at = page
    at.selectbox(key="compress_method").set_value("svd_whitened").run()
    assert at.button_group(key="compress_cal_groups").value == ["query", "key", "value", "attention_output",
                                                               "ffn_in", "ffn_out"]  # the frontier's matrices
    at.button_group(key="compress_cal_groups").set_value(["query", "key", "value", "attention_output"]).run()
    at.slider(key="compress_share").set_value(0.3).run()
    at.number_input(key="compress_sentences").set_value(32).run()
    (chart,) = _ok(at).get("plotly_chart")  # the stored frontier, beside the share chosen
    assert any("small mode: CI-sized, not the experiment" in c.value for c in at.caption)
    at.button(key="compress_run").click().run()
    _ok(at)
    assert float(_metric(at, "Kept share")) <= 0.3
    original, compressed = float(_metric(at, "STS-B, dense")), float(_metric(at, "STS-B, compressed"))
    assert original > 0.75 and 0 < compressed < original
    budget = at.dataframe[0].value
    assert list(budget["where"]) == ["query", "key", "value", "attention_output", *[f"layer {i}" for i in range(6)]]
    assert set(budget["structures"]) == {"SVD: 6", "SVD: 4"}
    assert len(at.dataframe[1].value) == 24
    names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert names[-1] == "your model" and "issue's baseline" in names
    assert any((tmp_path / "cache" / "calibration").iterdir())  # the calibration is cached for the next run
    at.slider(key="compress_share").set_value(0.5).run()
    assert any("settings changed" in i.value for i in _ok(at).info)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_calibration_from_a_text_file_inside_the_glue_folder(page, tmp_path, monkeypatch):
    glue = tmp_path / "glue"
    glue.mkdir()
    (glue / "corpus.txt").write_text("\n".join(f"sentence number {i} about matrices and tensors." for i in range(40)))
    monkeypatch.setenv("GLUE_DIR", str(glue))  # no GLUE task here, and no STS-B dev file
    at = page
    at.selectbox(key="compress_method").set_value("mpo_kronecker").run()
    assert not at.exception and at.selectbox(key="compress_calibration").value == "text file"  # the only source
    assert any("type the path of a UTF-8 text file" in e.value for e in at.error)
    at.text_input(key="compress_calibration_file").set_value("/etc/passwd").run()
    assert any("outside" in e.value for e in at.error)
    at.text_input(key="compress_calibration_file").set_value(str(glue / "corpus.txt")).run()
    at.button_group(key="compress_cal_groups").set_value(["query"]).run()
    at.number_input(key="compress_sentences").set_value(16).run()
    at.button(key="compress_run").click().run()
    assert not at.exception and not at.error
    assert float(_metric(at, "Kept share")) <= 0.5
    assert any("not measured" in w.value for w in at.warning)  # no STS-B dev file: compressed all the same
    assert set(at.dataframe[1].value["structure"]) == {"MPO n=5"}

"""AppTest of the Entropy atlas page, driven through the app's entry file (app/main.py)."""
import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from . import pages

QUERY_0 = "encoder.layer.0.attention.self.query.weight"
FFN_OUT_4 = "encoder.layer.4.output.dense.weight"


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


@pytest.fixture(scope="module")
def cache_dir(atlas_cache_dir):
    """The session's atlas cache folder (tests/app/conftest.py): the atlas is decomposed once per n, then read
    from disk by every module that opens the page."""
    return atlas_cache_dir


@pytest.fixture
def page(monkeypatch, cache_dir) -> AppTest:
    return _ok(pages.open_page("atlas", monkeypatch, MPO_CACHE_DIR=cache_dir))


_metric = pages.metric


def _figure(at: AppTest, index: int) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def _z(figure: dict) -> np.ndarray:
    """The heatmap's values; plotly writes numpy arrays as base64 typed arrays."""
    z = figure["data"][0]["z"]
    if isinstance(z, dict):
        shape = tuple(int(d) for d in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=float)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_opens_with_every_matrix_and_the_first_query_selected(page):
    at = page
    assert at.title[0].value == "Entropy atlas"
    assert _metric(at, "Weight matrices") == "40"
    assert at.selectbox(key="atlas_weight").value == QUERY_0
    assert _metric(at, "full dₖ (Eq. 2)") == "6,96,96,6"
    heatmap, profile = _figure(at, 0), _figure(at, 1)
    assert _z(heatmap).shape == (6, 6)  # matrix type x layer
    assert (_z(heatmap)[4:] > _z(heatmap)[:4].max()).all()  # FFN rows (wider bonds) carry more entropy
    assert QUERY_0 in profile["layout"]["title"]["text"]
    assert len(at.dataframe) >= 1  # embeddings and pooler beside the heatmap


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_ratio_slider_changes_the_chosen_bonds(page):
    at = page
    ratio, chosen = _metric(at, "All matrices: ρ at d′ (Eq. 5)"), _metric(at, "chosen d′ₖ")
    assert 0 < float(ratio) <= 0.2
    at.slider(key="atlas_ratio").set_value(0.6).run()
    _ok(at)
    assert 0.2 < float(_metric(at, "All matrices: ρ at d′ (Eq. 5)")) <= 0.6
    wider = [int(d) for d in _metric(at, "chosen d′ₖ").split(",")]
    assert wider != [int(d) for d in chosen.split(",")] and sum(wider) > sum(int(d) for d in chosen.split(","))


def test_the_quantity_selector_changes_the_heatmap(page):
    at = page
    before = _figure(at, 0)
    at.radio(key="atlas_quantity").set_value("central_share").run()
    after = _figure(_ok(at), 0)
    assert not np.allclose(_z(after), _z(before))
    assert after["layout"]["title"]["text"].startswith("central tensor's share")
    assert ((_z(after) > 0) & (_z(after) <= 1)).all() and (_z(before) > 1).all()


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_choosing_a_matrix_and_n(page):
    at = page
    at.selectbox(key="atlas_weight").set_value(FFN_OUT_4).run()
    _ok(at)
    assert _metric(at, "full dₖ (Eq. 2)") == "8,128,192,12"
    assert FFN_OUT_4 in _figure(at, 1)["layout"]["title"]["text"]
    outlined = _figure(at, 0)["data"][2]  # the selected cell is outlined on the heatmap
    assert (outlined["x"], outlined["y"]) == (["layer 4"], ["FFN out W<sub>2</sub>"])
    at.select_slider(key="atlas_n").set_value(3).run()
    _ok(at)
    assert len(_metric(at, "full dₖ (Eq. 2)").split(",")) == 2  # n = 3: two bonds
    assert at.selectbox(key="atlas_weight").value == FFN_OUT_4


def test_open_in_decompose_switches_page_with_the_weight(page):
    at = page
    at.selectbox(key="atlas_weight").set_value(FFN_OUT_4).run()
    at.button(key="open_in_decompose").click().run()
    _ok(at)
    assert at.title[0].value == "Decompose a matrix into a Matrix Product Operator (MPO)"
    assert at.radio(key="source").value == "model"
    assert at.selectbox(key="weight").value == FFN_OUT_4
    assert "open_weight" not in at.session_state
    assert FFN_OUT_4 in " ".join(c.value for c in at.caption)


def _widgets(at: AppTest) -> list:
    return [w for kind in ("slider", "select_slider", "radio", "selectbox", "number_input", "text_input", "button")
            for w in at.get(kind)]


def test_the_first_paint_shows_the_sidebar_controls_disabled_before_the_engine(monkeypatch):
    """The engine held back (its import fails here): the snapshot and every control, disabled, with a note."""
    from app import shared_imports

    def engine_not_loaded(timeout=None):
        raise RuntimeError("the engine is not loaded in this test")

    at = AppTest.from_file(pages.MAIN, default_timeout=60)
    at.session_state["source"] = "model"  # skip Decompose's own first paint: this test is about the atlas
    at.run()
    monkeypatch.setattr(shared_imports, "wait", engine_not_loaded)
    at.switch_page("views/atlas.py").run()
    assert [e.value for e in at.exception] == ["the engine is not loaded in this test"]
    controls = {w.label: w for w in _widgets(at)}
    assert {"Number of local tensors n", "Target compression ratio ρ (Eq. 5)", "Heatmap colour"} <= set(controls)
    assert all(w.disabled for w in controls.values())
    assert controls["Target compression ratio ρ (Eq. 5)"].value == 0.2 and controls["Number of local tensors n"].value == 5
    assert any("go live" in c.value for c in at.sidebar.caption)
    assert _metric(at, "Weight matrices") == "40"  # the snapshot's numbers


def test_live_controls_replace_the_disabled_ones(page):
    at = page
    assert not [w for w in _widgets(at) if w.key and w.key.startswith("_preview")]
    assert not any(getattr(w, "disabled", False) for w in _widgets(at))
    assert at.select_slider(key="atlas_n").value == 5 and at.slider(key="atlas_ratio").value == 0.2
    assert any("Click a cell" in c.value for c in at.caption)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_new_process_reads_the_atlas_from_the_disk_cache(page, cache_dir, monkeypatch):
    """The in-memory store dropped (a restarted server): the decompositions and the table come from disk."""
    import streamlit as st

    from app import atlas

    st.cache_resource.clear()
    st.cache_data.clear()
    at = _ok(pages.open_page("atlas", monkeypatch, MPO_CACHE_DIR=cache_dir))
    [time_metric] = [m for m in at.metric if m.label == atlas.TIME_LABEL]
    assert "read from the disk cache" in time_metric.help
    assert _metric(at, "chosen d′ₖ") == _metric(page, "chosen d′ₖ")


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_bound_over_100_percent_is_explained(page, cache_dir):
    from app import atlas

    table = atlas.atlas_table(atlas.build_atlas(5, cache_dir=cache_dir), 0.01)
    over = table.index[table["relative error bound (Eq. 4)"] > 1][0]
    at = page
    at.slider(key="atlas_ratio").set_value(0.01)
    at.selectbox(key="atlas_weight").set_value(over).run()
    assert float(_metric(_ok(at), "Error bound, relative (Eq. 4)").rstrip(" %")) > 100
    assert any("over-counts" in c.value for c in at.caption)
    at.slider(key="atlas_ratio").set_value(0.9).run()
    assert not any("over-counts" in c.value for c in _ok(at).caption)

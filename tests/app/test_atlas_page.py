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


@pytest.fixture
def page() -> AppTest:
    return _ok(pages.open_page("atlas"))


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

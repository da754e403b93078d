"""The Decompose page honours another page's request to open a weight (``st.session_state["open_weight"]``)."""

from streamlit.testing.v1 import AppTest

from app import decompose

from .pages import MAIN
KEY_2 = "encoder.layer.2.attention.self.key.weight"


def _open() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_requested_weight_is_selected_and_the_request_consumed():
    at = _open()
    assert at.selectbox(key="weight").value == decompose.DEFAULT_WEIGHT
    at.session_state["open_weight"] = KEY_2
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="weight").value == KEY_2
    assert "open_weight" not in at.session_state
    assert [at.slider(key=k).max for k in ("bond_0", "bond_1", "bond_2", "bond_3")] == [6, 96, 96, 6]
    at.selectbox(key="weight").set_value(decompose.DEFAULT_WEIGHT).run()  # the user's own choice wins afterwards
    assert at.selectbox(key="weight").value == decompose.DEFAULT_WEIGHT


def test_a_request_switches_the_source_back_to_the_model():
    at = _open()
    at.radio(key="source").set_value("random").run()
    assert not at.exception and at.number_input(key="random_rows")
    at.session_state["open_weight"] = KEY_2
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.radio(key="source").value == "model"
    assert at.selectbox(key="weight").value == KEY_2

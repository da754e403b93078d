"""The Decompose page honours another page's request to open a weight (``st.session_state["open_weight"]``),
at the Entropy atlas's n and ρ, so one matrix shows one set of bonds and one bound on both pages."""
import pytest
from streamlit.elements.lib import policies
from streamlit.testing.v1 import AppTest

from app import decompose

from . import pages
from .pages import MAIN

KEY_2 = "encoder.layer.2.attention.self.key.weight"
FFN_OUT_4 = "encoder.layer.4.output.dense.weight"


def _open() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _percent(text: str) -> float:
    return float(text.replace("%", "").strip())


def _bonds(at: AppTest) -> list[int]:
    return [s.value for s in at.slider if s.key and s.key.startswith("bond_")]


@pytest.fixture(scope="module")
def cache_dir(atlas_cache_dir):
    """The session's atlas cache folder (tests/app/conftest.py): the atlas is decomposed once per n, then read
    from disk by every module that opens the page."""
    return atlas_cache_dir


@pytest.fixture(autouse=True)
def _own_cache_folder(monkeypatch, cache_dir):
    monkeypatch.setenv("MPO_CACHE_DIR", str(cache_dir))


@pytest.fixture
def atlas_page() -> AppTest:
    return _ok(pages.open_page("atlas"))


@pytest.fixture
def widget_warnings(monkeypatch) -> list[str]:
    """Streamlit's "created with a default value but also had its value set via the Session State API" warnings."""
    seen = []
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)  # Streamlit warns once per process
    monkeypatch.setattr(policies._LOGGER, "warning", lambda msg, *args, **kwargs: seen.append(msg % args))
    return seen


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


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("n, ratio", [(5, 0.2), (3, 0.35)])  # the atlas's defaults, and others
def test_the_atlas_n_and_rho_open_in_decompose_with_the_same_bonds_and_bound(atlas_page, widget_warnings, n, ratio):
    at = atlas_page
    at.select_slider(key="atlas_n").set_value(n)
    at.slider(key="atlas_ratio").set_value(ratio)
    at.selectbox(key="atlas_weight").set_value(FFN_OUT_4).run()
    chosen = [int(d) for d in pages.metric(_ok(at), "chosen d′ₖ").split(",")]
    bound = _percent(pages.metric(at, "Error bound, relative (Eq. 4)"))
    at.button(key="open_in_decompose").click().run()
    _ok(at)
    assert at.selectbox(key="weight").value == FFN_OUT_4
    assert at.number_input(key="n").value == n
    assert at.number_input(key="preset_ratio").value == pytest.approx(ratio)
    assert at.button(key="preset_bonds").label == f"ρ={ratio:g} best"
    assert _bonds(at) == chosen  # one set of bonds ...
    assert _percent(pages.metric(at, "Bound, relative")) == pytest.approx(bound, abs=0.051)  # ... one bound
    assert float(pages.metric(at, "Ratio ρ (Eq. 5)")) <= ratio
    assert not [k for k in ("open_weight", "open_n", "open_ratio") if k in at.session_state]
    assert not widget_warnings, widget_warnings


def test_coming_back_from_the_atlas_reopens_at_its_cut(atlas_page):
    """Bonds moved by hand on Decompose give way to the atlas's cut when the atlas sends the matrix again."""
    at = atlas_page
    at.button(key="open_in_decompose").click().run()
    preset = _bonds(_ok(at))
    at.button(key="reset_bonds").click().run()
    assert _bonds(at) != preset
    at.switch_page("views/atlas.py").run()
    at.button(key="open_in_decompose").click().run()
    assert _bonds(_ok(at)) == preset


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_decompose_chooses_its_bonds_from_the_spectra_the_atlas_left_on_disk(atlas_page, monkeypatch):
    from app import decomposition_cache

    reads, real = [], decomposition_cache.load
    monkeypatch.setattr(decomposition_cache, "load", lambda where, key: reads.append(real(where, key)) or reads[-1])
    at = atlas_page
    at.slider(key="atlas_ratio").set_value(0.27)  # a ratio no earlier test cached the bonds of
    at.selectbox(key="atlas_weight").set_value(FFN_OUT_4).run()
    chosen = [int(d) for d in pages.metric(_ok(at), "chosen d′ₖ").split(",")]
    reads.clear()
    at.button(key="open_in_decompose").click().run()
    assert _bonds(_ok(at)) == chosen
    assert len(reads) == 1 and reads[0] is not None  # the atlas's decomposition of this weight, read back

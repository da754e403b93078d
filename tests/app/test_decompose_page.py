"""AppTest of the Decompose page, driven through the app's entry file (app/main.py)."""
import io
import time

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app import decompose

from .pages import MAIN
from .test_decompose import _png_header
FFN_WEIGHT = "encoder.layer.0.intermediate.dense.weight"  # 1536 x 384, decomposes in ~0.1 s
TIMEOUT = 60
RATIO, TRUE_ERROR = "Ratio ρ (Eq. 5)", "True error ‖M − M′‖"


@pytest.fixture(autouse=True)
def _own_cache_folder(monkeypatch, tmp_path):
    """The page keeps the packaged weights' spectra in the dashboard's cache folder: a fresh one per test."""
    monkeypatch.setenv("MPO_CACHE_DIR", str(tmp_path / "cache"))


def _preset(rows: int, cols: int, n: int, matrix=None) -> list[int]:
    shape = decompose.plan(rows, cols, n)
    if matrix is None:
        matrix = decompose.load_matrix(decompose.MatrixSource())
    mpo = decompose.decompose_matrix(matrix, shape.out_factors, shape.in_factors)
    return list(decompose.preset_bond_dims(mpo))


def _open() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> float:
    """A metric's displayed value as a number (percentages as fractions)."""
    (value,) = [m.value for m in at.metric if m.label == label]
    if value == "≈ 0":  # float32 rounding of the contraction
        return 0.0
    number = float(value.replace(",", "").replace("%", "").strip())
    return number / 100 if value.endswith("%") else number


def _bond_keys(at: AppTest) -> list[str]:
    return [s.key for s in at.slider if s.key and s.key.startswith("bond_")]


@pytest.fixture
def embedding_page() -> AppTest:
    """The page as it opens: the packaged word embedding, n = 5, optimal bonds for ρ = 0.3."""
    return _open()


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_opens_explained_on_the_word_embedding_at_optimal_bonds_for_a_third(embedding_page):
    at = embedding_page
    [explanation] = [e for e in at.expander if e.label == "What you are looking at"]
    text = " ".join(m.value for m in explanation.markdown)
    for words in ("Matrix Product Operator", "central tensor", "auxiliary tensors", "bond dimensions", "Eq. 4"):
        assert words in text
    assert at.radio(key="source").value == "model"
    assert at.selectbox(key="weight").value == decompose.DEFAULT_WEIGHT
    assert at.number_input(key="n").value == 5
    assert at.text_input(key="out_factors").value == "6,7,13,8,7"
    assert at.text_input(key="in_factors").value == "3,4,4,4,2"
    assert _bond_keys(at) == ["bond_0", "bond_1", "bond_2", "bond_3"]
    assert [at.slider(key=k).max for k in _bond_keys(at)] == [18, 504, 448, 14]
    dims = [at.slider(key=k).value for k in _bond_keys(at)]
    assert dims == _preset(30522, 384, 5) == [18, 225, 280, 14]
    assert 0.29 < _metric(at, RATIO) <= 0.3
    assert 0 < _metric(at, TRUE_ERROR) <= _metric(at, "Error bound (Eq. 4)")
    assert not at.error
    assert len(at.tabs) == 3


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_full_bonds_are_exact_and_float_noise_shows_as_zero(embedding_page):
    at = embedding_page
    at.button(key="reset_bonds").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [at.slider(key=k).value for k in _bond_keys(at)] == [18, 504, 448, 14]
    assert _metric(at, "Error bound (Eq. 4)") == 0
    assert [m.value for m in at.metric if m.label == "True error, relative"] == ["≈ 0"]
    assert _metric(at, RATIO) > 1  # full bonds: the MPO is larger than the matrix
    at.button(key="preset_bonds").click().run()  # and back to the optimal cut
    assert [at.slider(key=k).value for k in _bond_keys(at)] == [18, 225, 280, 14]


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_cutting_the_central_bond_compresses_and_costs_error(embedding_page):
    at = embedding_page
    at.button(key="reset_bonds").click().run()
    ratio, bound = _metric(at, RATIO), _metric(at, "Error bound (Eq. 4)")
    at.slider(key="bond_2").set_value(8).run()  # the central tensor T_3's right bond
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, RATIO) < ratio / 10
    new_bound = _metric(at, "Error bound (Eq. 4)")
    true_abs = _metric(at, TRUE_ERROR)
    assert new_bound > bound == 0
    assert 0.5 < _metric(at, "Bound, relative") <= 1
    assert 0 < true_abs <= new_bound * 1.001  # Eq. (4); one cut bond: equal up to padding
    assert _metric(at, "True error, relative") > 0.5
    assert [at.slider(key=k).value for k in _bond_keys(at)] == [18, 504, 8, 14]
    # through the central tensor T_3 (a_3 = 13 * 4), d'_2 <= a_3 * d'_3 = 416: shown as effective dims
    assert [m.value for m in at.metric if m.label == "Effective d′ₖ"] == ["18,416,8,14"]


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_switching_matrix_and_n_rebuilds_the_sliders():
    at = _open()
    at.selectbox(key="weight").set_value(FFN_WEIGHT).run()
    assert not at.exception, [e.value for e in at.exception]
    planned = decompose.plan(1536, 384, 5)
    assert at.text_input(key="out_factors").value == decompose.format_factors(planned.out_factors)
    assert [at.slider(key=k).max for k in _bond_keys(at)] == list(planned.full_bond_dims)
    ffn = decompose.load_matrix(decompose.MatrixSource(name=FFN_WEIGHT))
    assert [at.slider(key=k).value for k in _bond_keys(at)] == _preset(1536, 384, 5, ffn)

    at.number_input(key="n").set_value(4).run()
    assert not at.exception, [e.value for e in at.exception]
    planned = decompose.plan(1536, 384, 4)
    assert _bond_keys(at) == ["bond_0", "bond_1", "bond_2"]
    assert [at.slider(key=k).value for k in _bond_keys(at)] == _preset(1536, 384, 4, ffn)
    assert at.text_input(key="in_factors").value == decompose.format_factors(planned.in_factors)
    assert 0 < _metric(at, TRUE_ERROR) <= _metric(at, "Error bound (Eq. 4)") * 1.001


def test_random_matrix_source():
    at = _open()
    at.radio(key="source").set_value("random").run()
    at.number_input(key="random_rows").set_value(64)
    at.number_input(key="random_cols").set_value(48)
    at.slider(key="random_decay").set_value(1.0)
    at.number_input(key="n").set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(_bond_keys(at)) == 2
    assert "random 64x48" in " ".join(c.value for c in at.caption)
    at.slider(key="bond_0").set_value(1).run()
    assert 0 < _metric(at, TRUE_ERROR) <= _metric(at, "Error bound (Eq. 4)") * 1.001


@pytest.mark.parametrize(
    "out_factors, message",
    [("6,7,a,8,7", "not a positive integer"), ("6,7,13", "n = 5"), ("2,2,2,2,2", "multiply to")],
)
def test_invalid_factors_show_an_error_not_a_traceback(embedding_page, out_factors, message):
    at = embedding_page
    at.text_input(key="out_factors").set_value(out_factors).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1 and message in at.error[0].value
    assert not _bond_keys(at) and not at.metric
    at.button(key="replan").click().run()  # "Re-plan factors" restores the planned factors
    assert at.text_input(key="out_factors").value == "6,7,13,8,7"
    assert not at.error and len(_bond_keys(at)) == 4


def test_uploaded_image_is_decomposed_and_reconstructed():
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((96, 64)).save(buffer, format="PNG")
    at = _open()
    at.radio(key="source").set_value("image").run()
    assert not at.exception and at.info  # asks for an upload
    at.file_uploader(key="image").set_value(("gradient.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(_bond_keys(at)) == len(decompose.plan(64, 96, 5).full_bond_dims)
    assert len(at.image) == 3  # original, reconstruction, error
    assert _metric(at, RATIO) <= 0.3
    at.button(key="reset_bonds").click().run()
    assert _metric(at, "True error, relative") < 1e-5


def test_the_sample_picture_is_one_click_away():
    at = _open()
    at.radio(key="source").set_value("sample").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error and len(at.image) == 3
    assert any("scikit-learn" in c.value for c in at.caption)
    assert any("427x640" in c.value or "427×640" in c.value for c in at.caption)  # rows x cols of the photo
    assert 0 < _metric(at, TRUE_ERROR) and _metric(at, RATIO) <= 0.3


def test_oversize_factors_are_a_message_within_a_second(embedding_page):
    """Output factors 20,20,20,20,20 would zero-pad the embedding to 1.2e9 entries (once: 45 s, 5.3 GB, a traceback)."""
    at = embedding_page
    at.text_input(key="out_factors").set_value("20,20,20,20,20")
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    # mpo_core's shape bound (factors multiply to at most 2x + 16) says no before the memory estimate
    assert "multiply to 3200000, more than the 61060 allowed" in error.value
    assert not _bond_keys(at) and not at.metric
    assert elapsed < 1.0, f"{elapsed:.2f} s"


@pytest.mark.parametrize("field", ["out_factors", "in_factors"])
def test_a_400_digit_factor_is_a_message(embedding_page, field):
    """Once an OverflowError (the memory estimate overflowed a float): now one message, at once."""
    at = embedding_page
    at.text_input(key=field).set_value("9" * 400 + ",1,1,1,1").run()
    assert not at.exception, [e.value for e in at.exception]
    [error] = at.error
    # the field keeps its first 100 characters (max_chars, as the browser does)
    assert "999999…999 (100 digits) is too large" in error.value and "at most 1,000,000" in error.value
    assert not _bond_keys(at) and not at.metric
    at.button(key="replan").click().run()
    assert not at.error and _bond_keys(at)


@pytest.mark.parametrize("error, shown", [(MemoryError(), "Not enough memory for this request"),
                                          (RuntimeError("[enforce fail] tried to allocate 5 GB"), "tried to allocate")])
def test_memory_and_runtime_errors_are_messages(monkeypatch, error, shown):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(decompose, "decompose_matrix", fail)
    at = _open()
    at.radio(key="source").set_value("random").run()
    at.number_input(key="random_seed").set_value(9_000 + len(shown)).run()  # a matrix no cache holds yet
    assert not at.exception, [e.value for e in at.exception]
    assert any(shown in e.value for e in at.error), [e.value for e in at.error]


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.radio(key="source").set_value("image").run()
    return at.file_uploader(key="image").set_value((name, data, "image/png")).run()


def test_an_absurd_image_is_refused_and_a_large_one_shrunk_with_a_note():
    header = _png_header(13000, 13000)
    at = _upload(_open(), "huge.png", header)
    assert not at.exception, [e.value for e in at.exception]
    assert any("13000x13000 pixels" in e.value and "at most 50 megapixels" in e.value for e in at.error)
    buffer = io.BytesIO()
    Image.new("L", (2000, 300), color=90).save(buffer, format="PNG")
    at = _upload(_open(), "wide.png", buffer.getvalue())
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("2000×300 pixels" in c.value and "shrunk to 1024×154" in c.value for c in at.caption)


def _widgets(at: AppTest) -> list:
    return [w for kind in ("slider", "radio", "selectbox", "number_input", "text_input", "button") for w in at.get(kind)]


def test_the_first_paint_shows_the_controls_the_text_mentions_disabled(monkeypatch):
    """The engine held back (its import fails here): the sidebar already shows the source (with the sample picture),
    the bond sliders and the target ρ, disabled, with a note on when they go live."""
    from app import shared_imports

    def engine_not_loaded(timeout=None):
        raise RuntimeError("the engine is not loaded in this test")

    monkeypatch.setattr(shared_imports, "wait", engine_not_loaded)
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert [e.value for e in at.exception] == ["the engine is not loaded in this test"]
    controls = _widgets(at)
    assert controls and all(w.disabled for w in controls)
    by_label = {w.label: w for w in controls}
    assert "Sample picture (offline)" in by_label["Source"].options
    sliders = [w for w in at.slider]
    assert [s.value for s in sliders] == [18, 225, 280, 14] and [s.max for s in sliders] == [18, 504, 448, 14]
    assert by_label["Target ρ of the optimal bonds"].value == 0.3 and by_label["ρ=0.3 best"]
    assert any("go live" in c.value for c in at.sidebar.caption)
    assert _metric(at, RATIO) == pytest.approx(0.2999)  # the snapshot's numbers


def test_live_controls_replace_the_disabled_ones_and_read_as_plain_text(embedding_page):
    at = embedding_page
    assert not [w for w in _widgets(at) if w.key and w.key.startswith("_preview")]
    assert not any(w.disabled for w in _widgets(at))
    labels = [at.slider(key=k).label for k in _bond_keys(at)]
    assert labels[0] == "d′₁ between T₁ and T₂ (full 18)"  # also the slider's name for screen readers
    assert not any(c in label for label in labels for c in "$\\{}")


def test_a_bound_over_100_percent_gets_a_note(embedding_page):
    at = embedding_page
    assert not any("over-counts" in c.value for c in at.caption)
    for key in _bond_keys(at):
        at.slider(key=key).set_value(1)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, "Bound, relative") > 1
    assert any("over-counts" in c.value for c in at.caption)

"""Unit tests of app/decompose.py (plain Python, no streamlit)."""
import io
import math
import struct
import time
import zlib
from functools import partial

import numpy as np
import pytest
import torch
from PIL import Image

import mpo_core
from app import decompose, memory_budget

FFN_WEIGHT = "encoder.layer.0.intermediate.dense.weight"  # 1536 x 384


@pytest.fixture(scope="module")
def matrix():
    return decompose.random_matrix(72, 60, seed=3, decay=1.0)  # 72 = 2*2*2*3*3, 60 = 2*2*3*5


@pytest.fixture(scope="module")
def mpo(matrix):
    shape = decompose.plan(*matrix.shape, n=4)
    return decompose.decompose_matrix(matrix, shape.out_factors, shape.in_factors)


def _png(width, height, mode="RGB"):
    buffer = io.BytesIO()
    Image.new(mode, (width, height), color=(200, 100, 50)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decompose_does_not_import_streamlit():
    assert "streamlit" not in vars(decompose)
    source = open(decompose.__file__).read()
    assert "import streamlit" not in source


# --------------------------------------------------------------------------- matrices
def test_model_weights_lists_every_matrix_with_the_embedding_default():
    shapes = decompose.model_weights()
    assert shapes[decompose.DEFAULT_WEIGHT] == (30522, 384)
    assert shapes[FFN_WEIGHT] == (1536, 384)
    assert all(len(s) == 2 for s in shapes.values())


def test_load_matrix_reads_a_packaged_weight():
    w = decompose.load_matrix(decompose.MatrixSource(kind="model", name=FFN_WEIGHT))
    assert w.shape == (1536, 384) and w.dtype == torch.float32


def test_load_matrix_unknown_weight_raises_key_error():
    with pytest.raises(KeyError, match="list_weight_matrices"):
        decompose.load_matrix(decompose.MatrixSource(kind="model", name="no.such.weight"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "tensor"}, "kind"),
        ({"kind": "random", "rows": 0}, "rows"),
        ({"kind": "random", "cols": decompose.MAX_RANDOM_SIDE + 1}, "cols"),
        ({"kind": "random", "decay": -1.0}, "decay"),
        ({"kind": "image"}, "upload"),
    ],
)
def test_matrix_source_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        decompose.MatrixSource(**kwargs)


def test_matrix_source_is_hashable_and_labelled():
    a = decompose.MatrixSource(kind="random", rows=8, cols=4, seed=1)
    assert hash(a) == hash(decompose.MatrixSource(kind="random", rows=8, cols=4, seed=1))
    assert "8x4" in a.label and "seed 1" in a.label
    assert decompose.MatrixSource().label == decompose.DEFAULT_WEIGHT


def test_random_matrix_is_seeded():
    a = decompose.random_matrix(40, 30, seed=7)
    assert a.shape == (40, 30) and a.dtype == torch.float32
    assert torch.equal(a, decompose.random_matrix(40, 30, seed=7))
    assert not torch.equal(a, decompose.random_matrix(40, 30, seed=8))


def test_random_matrix_decay_sets_its_singular_values():
    s = torch.linalg.svdvals(decompose.random_matrix(50, 20, seed=0, decay=1.5).double())
    expected = torch.arange(1, 21, dtype=torch.float64) ** -1.5
    assert torch.allclose(s, expected, atol=1e-6)


def test_image_matrix_is_grayscale_in_unit_range_and_capped():
    m = decompose.image_matrix(_png(2000, 300))
    assert m.dtype == torch.float32 and m.shape[1] == decompose.MAX_IMAGE_SIDE
    assert m.shape[0] == pytest.approx(300 * decompose.MAX_IMAGE_SIDE / 2000, abs=1)
    gray = (200 * 299 + 100 * 587 + 50 * 114) / 1000 / 255  # ITU-R 601 luma of the fill colour
    assert float(m.mean()) == pytest.approx(gray, abs=2 / 255)


def test_image_matrix_keeps_small_images():
    assert decompose.image_matrix(_png(33, 17)).shape == (17, 33)


def test_image_matrix_rejects_non_images():
    with pytest.raises(ValueError, match="PNG or JPEG"):
        decompose.image_matrix(b"not an image at all")


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels but holds none: only decoding would cost memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_an_absurd_image_is_refused_before_decoding():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"13000x13000 pixels \(169 megapixels\).*at most 50 megapixels"):
        decompose.image_matrix(_png_header(13000, 13000))
    assert time.perf_counter() - start < 1
    assert decompose.image_size(_png_header(13000, 13000)) == (13000, 13000)
    with pytest.raises(ValueError, match=r"far too large \(Image size \(182000000 pixels\).* at most 50 megapixels"):
        decompose.image_matrix(_png_header(13000, 14000))  # beyond Pillow's own bomb limit


def test_a_large_jpeg_counts_at_its_reduced_decoding_size():
    buffer = io.BytesIO()
    Image.new("L", (4096, 4096), color=128).save(buffer, format="JPEG")
    data = buffer.getvalue()
    buffer = io.BytesIO()
    Image.new("L", (4096, 4096), color=128).save(buffer, format="PNG")
    png = buffer.getvalue()
    assert decompose.image_matrix(data, max_pixels=5_000_000).shape == (1024, 1024)  # decoded at 1/4 scale
    with pytest.raises(ValueError, match="4096x4096 pixels"):
        decompose.image_matrix(png, max_pixels=5_000_000)  # a PNG decodes in full


def test_a_random_matrix_over_the_memory_budget_is_refused(monkeypatch):
    decompose.MatrixSource(kind="random", rows=decompose.MAX_RANDOM_SIDE, cols=decompose.MAX_RANDOM_SIDE, decay=1.0)
    monkeypatch.setattr(memory_budget, "MEMORY_CAP_BYTES", 64 << 20)
    monkeypatch.setattr(decompose, "check_random_matrix", partial(memory_budget.check_random_matrix, cap=64 << 20))
    with pytest.raises(ValueError, match=r"random 4096x4096 matrix .* would need about 736 MiB .* cap of 64 MiB"):
        decompose.MatrixSource(kind="random", rows=4096, cols=4096, decay=1.0)


# --------------------------------------------------------------------------- shape
@pytest.mark.parametrize("text", ["6,7,13,8,7", " 6, 7 ,13,8 ,7 ", "6 7 13 8 7", "6x7x13x8x7", "6*7*13*8*7"])
def test_parse_factors_accepts_common_separators(text):
    assert decompose.parse_factors(text) == (6, 7, 13, 8, 7)


@pytest.mark.parametrize("text", ["", " , ", "6,a", "6,0", "6,-1", "2.5,3", "6,²"])
def test_parse_factors_rejects_non_positive_ints(text):
    with pytest.raises(ValueError, match="e.g. 6,7,13,8,7"):
        decompose.parse_factors(text)


@pytest.mark.parametrize("factor", ["9" * 400, "1" + "0" * 5000, str(decompose.MAX_FACTOR + 1)])
def test_a_huge_factor_is_refused_before_any_estimate(factor):
    """A 400-digit factor once overflowed the memory estimate (OverflowError); 5000 digits hit int()'s limit."""
    for text in (f"{factor},1,1,1,1", f"1,1,1,1,{factor}"):
        with pytest.raises(ValueError, match=f"too large; each factor is at most {decompose.MAX_FACTOR:,}"):
            decompose.plan(256, 192, 5, text)
        with pytest.raises(ValueError, match="too large"):
            decompose.plan(256, 192, 5, None, text)


def test_the_largest_factor_is_refused_by_the_engine_or_the_memory_check():
    """A factor within the page's bound: mpo_core's shape check (product <= 2x + 16) or the memory cap says no."""
    with pytest.raises(ValueError, match="over the dashboard's cap|multiply to"):
        decompose.plan(256, 192, 5, f"{decompose.MAX_FACTOR},1,1,1,1")
    assert decompose.parse_factors("0006,7") == (6, 7)  # leading zeros are still the number


def test_format_factors_round_trips():
    assert decompose.parse_factors(decompose.format_factors((6, 7, 13))) == (6, 7, 13)


def test_plan_without_text_is_mpo_core_plan():
    assert decompose.plan(30522, 384, 5) == mpo_core.plan_shape(30522, 384, n=5)
    assert decompose.plan(30522, 384, 5).out_factors == (6, 7, 13, 8, 7)


def test_plan_uses_typed_factors():
    shape = decompose.plan(1536, 384, 3, "16,12,8", "8,8,6")
    assert shape.out_factors == (16, 12, 8) and shape.in_factors == (8, 8, 6)


def test_plan_rejects_a_wrong_number_of_factors():
    with pytest.raises(ValueError, match="n = 5"):
        decompose.plan(1536, 384, 5, "16,12,8", "8,8,6")


def test_plan_passes_on_mpo_core_messages():
    with pytest.raises(ValueError, match="multiply to"):
        decompose.plan(1536, 384, 5, "2,2,2,2,2", "3,4,4,4,2")


def test_oversize_factors_are_refused_before_any_allocation():
    start = time.perf_counter()
    # mpo_core's shape check (factors multiply to at most 2x + 16) now says no before the memory estimate
    with pytest.raises(ValueError, match=r"multiply to 3200000, more than the 61060 allowed"):
        decompose.plan(30522, 384, 5, "20,20,20,20,20", "3,4,4,4,2")
    with pytest.raises(ValueError, match="cap of 1 GiB|multiply to 3200000"):
        decompose.decompose_matrix(torch.zeros(8, 8), (20,) * 5, (20,) * 5)  # the last gates, before the SVDs
    assert time.perf_counter() - start < 1


def test_describe_shape_mentions_padding_and_centre():
    text = decompose.describe_shape(decompose.plan(30522, 384, 5))
    assert "zero-padded to 30576x384" in text and "T_3" in text
    assert "padded" not in decompose.describe_shape(decompose.plan(1536, 384, 5))


def test_decompose_matrix_is_exact(matrix, mpo):
    assert mpo.n == 4
    assert mpo_core.frobenius_error(matrix, mpo.to_matrix()) < 1e-5 * mpo.norm


# --------------------------------------------------------------------------- live numbers
def test_live_summary_at_full_bonds(mpo):
    s = decompose.live_summary(mpo, mpo.full_bond_dims)
    assert s.error_bound == 0 and s.relative_error_bound == 0
    assert s.compression_ratio == pytest.approx(mpo.num_params / (72 * 60))
    assert s.split == s.full_split and s.split.total == mpo.num_params
    assert s.entropies == s.full_entropies


def test_live_summary_agrees_with_mpo_core(mpo):
    dims = tuple(max(1, d // 3) for d in mpo.full_bond_dims)
    s = decompose.live_summary(mpo, dims)
    assert s.bond_dims == dims
    assert s.effective_bond_dims == mpo_core.clip_bond_dims(mpo.shape, dims)
    assert s.compression_ratio == mpo_core.compression_ratio(mpo.shape, dims)
    assert s.error_bound == pytest.approx(mpo_core.truncation_error_bound(mpo, dims))
    assert s.relative_error_bound == pytest.approx(s.error_bound / mpo.norm)
    assert s.error_bound == pytest.approx(math.sqrt(sum(e * e for e in s.local_errors)))
    assert s.effective_bond_dims != dims  # this cut clips a bond: the kept entropy is that of the clipped bond
    assert s.entropies == mpo_core.entanglement_entropy(mpo, s.effective_bond_dims)
    assert all(e <= math.log(d) + 1e-9 for e, d in zip(s.entropies, s.effective_bond_dims))  # under its ln d' marker
    assert s.split == mpo_core.parameter_split(mpo.shape, dims, mpo.center)
    assert 0 < s.error_bound and s.compression_ratio < s.full_split.compression_ratio


def test_live_summary_rejects_out_of_range_dims(mpo):
    with pytest.raises(ValueError, match="outside"):
        decompose.live_summary(mpo, (0,) * (mpo.n - 1))


def test_true_error_at_full_bonds_is_rounding(matrix, mpo):
    exact = decompose.true_error(matrix, mpo, mpo.full_bond_dims)
    assert exact.relative < 1e-5 and exact.bond_dims == mpo.full_bond_dims
    assert exact.entropies == mpo_core.entanglement_entropy(mpo)
    assert exact.reconstruction is None


@pytest.mark.parametrize("bond", [0, 1, 2])
def test_true_error_one_cut_bond_equals_the_bound(matrix, mpo, bond):
    """With one truncated bond and no padding, Eq. (4) is an equality."""
    dims = list(mpo.full_bond_dims)
    dims[bond] = max(1, dims[bond] // 4)
    exact = decompose.true_error(matrix, mpo, dims)
    bound = decompose.live_summary(mpo, dims).error_bound
    assert exact.absolute == pytest.approx(bound, rel=1e-4)


def test_true_error_is_below_the_bound(matrix, mpo):
    dims = (2, 3, 2)
    exact = decompose.true_error(matrix, mpo, dims, keep_reconstruction=True)
    summary = decompose.live_summary(mpo, dims)
    assert 0 < exact.absolute <= summary.error_bound * (1 + 1e-6)
    assert exact.relative == pytest.approx(exact.absolute / mpo.norm)
    assert exact.bond_dims == summary.effective_bond_dims
    assert exact.reconstruction.shape == (72, 60)
    err = np.linalg.norm(matrix.numpy() - exact.reconstruction)
    assert err == pytest.approx(exact.absolute, rel=1e-4)


def test_bond_table_has_one_row_per_bond(matrix, mpo):
    dims = (2, 3, 2)
    summary = decompose.live_summary(mpo, dims)
    table = decompose.bond_table(mpo, summary, decompose.true_error(matrix, mpo, dims))
    assert len(table) == mpo.n - 1
    assert list(table["chosen d'_k"]) == list(dims)
    assert "S_k after truncation (exact)" in table.columns


def test_entropies_are_positive_and_at_most_ln_d(mpo):
    s = decompose.live_summary(mpo, (2, 3, 2))
    assert all(0 < e <= math.log(d) + 1e-9 for e, d in zip(s.full_entropies, mpo.full_bond_dims))
    assert all(0 < e <= math.log(d) + 1e-9 for e, d in zip(s.entropies, (2, 3, 2)))


# --------------------------------------------------------------------------- figures
def test_entropy_figure_is_labelled_and_grouped(mpo):
    summary = decompose.live_summary(mpo, (2, 3, 2))
    fig = decompose.entropy_figure(summary)
    assert "Eq. (6)" in fig.layout.yaxis.title.text and "nats" in fig.layout.yaxis.title.text
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2 and all(len(b.y) == mpo.n - 1 for b in bars)
    max_marks = [t for t in fig.data if t.type == "scatter"][0]
    assert max_marks.y == pytest.approx([math.log(d) for d in summary.effective_bond_dims])
    assert len([t for t in decompose.entropy_figure(summary, (0.1, 0.2, 0.3)).data if t.type == "bar"]) == 3


def test_spectra_figure_has_a_line_and_a_cut_per_bond(mpo):
    dims = (2, 3, 2)
    fig = decompose.spectra_figure(mpo, dims)
    assert fig.layout.yaxis.type == "log" and "λ" in fig.layout.yaxis.title.text
    lines = [t for t in fig.data if t.showlegend is not False]
    cuts = [t for t in fig.data if t.showlegend is False]
    assert len(lines) == len(cuts) == mpo.n - 1
    assert [tuple(c.x) for c in cuts] == [(d, d) for d in dims]
    assert [len(t.y) for t in lines] == [len(s) for s in mpo.singular_values]


@pytest.mark.parametrize("low, high, labels", [
    (1, 504, ["1", "2", "5", "10", "20", "50", "100", "200", "500"]),  # the word embedding's widest bond
    (1.7, 60, ["2", "5", "10", "20", "50"]),  # its Schmidt values: one labelled decade was all plotly drew
    (3, 9, ["2", "3", "4", "5", "6", "7", "8", "9", "10"]),  # within a decade: every digit
    (1e-12, 1, ["10<sup>−12</sup>", "10<sup>−10</sup>", "10<sup>−8</sup>", "10<sup>−6</sup>", "10<sup>−4</sup>",
                "10<sup>−2</sup>", "10<sup>0</sup>"]),  # many decades: every other one, as powers
    (2e4, 3e5, ["2·10<sup>4</sup>", "5·10<sup>4</sup>", "10<sup>5</sup>", "2·10<sup>5</sup>"]),  # beyond 10⁵: powers
])
def test_log_ticks_label_several_values_across_the_range(low, high, labels):
    ticks = decompose.log_ticks(low, high)
    assert ticks["ticktext"] == labels
    assert ticks["tickvals"] == sorted(ticks["tickvals"]) and len(ticks["tickvals"]) == len(labels)


def test_log_ticks_without_a_positive_range_leave_plotly_its_defaults():
    assert decompose.log_ticks(0, 1) == {} and decompose.log_ticks(2, 1) == {} and decompose.log_ticks(1, math.inf) == {}


def test_spectra_axes_have_readable_ticks_over_the_data(mpo):
    fig = decompose.spectra_figure(mpo, (2, 3, 2))
    values = np.concatenate([s.numpy() for s in mpo.singular_values])
    low, high = values[values > 0].min(), values.max()
    shown = [v for v in fig.layout.yaxis.tickvals if low / 1.5 <= v <= high * 1.5]
    assert len(shown) >= 3 and len(fig.layout.yaxis.ticktext) == len(fig.layout.yaxis.tickvals)
    assert len(fig.layout.xaxis.tickvals) >= 3 and fig.layout.xaxis.type == "log"


def test_a_bound_over_100_percent_has_a_note(mpo):
    assert decompose.bound_note(1.0) is None and decompose.bound_note(0.5) is None
    assert "over-counts" in decompose.bound_note(1.2)
    deep = decompose.live_summary(mpo, (1, 1, 1))
    assert deep.relative_error_bound > 1 and decompose.bound_note(deep.relative_error_bound)


def test_parameter_figure_shows_central_auxiliary_and_dense(mpo):
    summary = decompose.live_summary(mpo, (2, 3, 2))
    fig = decompose.parameter_figure(summary)
    chosen = [t for t in fig.data if "chosen" in t.name][0]
    assert list(chosen.y) == [summary.split.central, summary.split.auxiliary, summary.split.total]
    assert [t for t in fig.data if t.name == "dense matrix"][0].y == (72 * 60,)
    assert "Eq. (5)" in fig.layout.title.text


def test_chain_figure_draws_every_tensor_with_the_centre_highlighted(mpo):
    dims = (2, 3, 2)
    fig = decompose.chain_figure(mpo, dims)
    texts = [a.text for a in fig.layout.annotations]
    for k in range(mpo.n):
        assert any(f"T<sub>{k + 1}</sub>" in t for t in texts)
        assert f"i<sub>{k + 1}</sub>={mpo.shape.out_factors[k]}" in texts
        assert f"j<sub>{k + 1}</sub>={mpo.shape.in_factors[k]}" in texts
    for k, (d, full) in enumerate(zip(dims, mpo.full_bond_dims)):
        assert any(t.startswith(f"d'<sub>{k + 1}</sub>={d} [{full}]") for t in texts)
    boxes = [s for s in fig.layout.shapes if s.type == "rect"]
    colors = [b.fillcolor for b in boxes]
    assert colors.count(decompose.CENTRAL_COLOR) == 1 and colors.index(decompose.CENTRAL_COLOR) == mpo.center
    assert "Eq. (1)" in fig.layout.title.text


def test_chain_figure_shows_clipped_bonds():
    """d'_2 <= d'_1 * a_2: cutting bond 1 to 1 leaves bond 2 at most a_2 = 4 wide."""
    mpo = decompose.decompose_matrix(decompose.random_matrix(16, 16, seed=0), (2, 2, 2, 2), (2, 2, 2, 2))
    assert mpo.full_bond_dims == (4, 16, 4)
    texts = [a.text for a in decompose.chain_figure(mpo, (1, 16, 4)).layout.annotations]
    assert "d'<sub>2</sub>=16 [16] → 4" in texts

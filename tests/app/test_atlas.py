"""The Entropy atlas back end on the real packaged MiniLM (no streamlit)."""
import math

import pytest
import torch

import mpo_core
from app import atlas

QUERY_0 = "encoder.layer.0.attention.self.query.weight"
FFN_IN_3 = "encoder.layer.3.intermediate.dense.weight"
WORD = "embeddings.word_embeddings.weight"


@pytest.fixture(scope="module")
def book() -> atlas.Atlas:
    """Every weight of MiniLM at n = 5 (about 1.5 s on one core)."""
    return atlas.build_atlas(5)


@pytest.fixture(scope="module")
def table(book):
    return atlas.atlas_table(book, 0.2)


@pytest.mark.parametrize(
    "name, group",
    [
        (QUERY_0, "query"),
        ("encoder.layer.5.attention.self.key.weight", "key"),
        ("encoder.layer.2.attention.self.value.weight", "value"),
        ("encoder.layer.1.attention.output.dense.weight", "attention_output"),
        (FFN_IN_3, "ffn_in"),
        ("encoder.layer.4.output.dense.weight", "ffn_out"),
        (WORD, "word_embedding"),
        ("embeddings.position_embeddings.weight", "position_embedding"),
        ("embeddings.token_type_embeddings.weight", "token_type_embedding"),
        ("pooler.dense.weight", "pooler"),
        ("encoder.layer.0.bottleneck.attention.dense.weight", "other"),
    ],
)
def test_weight_group_reads_the_role_from_the_name(name, group):
    assert atlas.weight_group(name) == group


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_every_weight_is_in_the_atlas_once(book):
    assert book.names == list(mpo_core.list_weight_matrices())
    assert len(book.entries) == 40 and book.n == 5 and book.seconds > 0
    assert book.entry(QUERY_0).layer == 0 and book.entry(WORD).layer is None
    with pytest.raises(KeyError, match="no matrix named"):
        book.entry("nope.weight")


def test_spectra_only_keeps_shapes_and_spectra_not_memory():
    matrix = mpo_core.load_weight_matrix(QUERY_0)
    full = mpo_core.decompose(matrix, n=5)
    light = atlas.spectra_only(full)
    assert light.bond_dims == full.bond_dims == full.full_bond_dims
    assert all(t.stride() == (0, 0, 0, 0) for t in light.tensors)  # placeholders hold no memory
    assert mpo_core.entanglement_entropy(light) == mpo_core.entanglement_entropy(full)
    for ratio in (0.05, 0.3):
        assert mpo_core.bond_dims_for_ratio(light, ratio) == mpo_core.bond_dims_for_ratio(full, ratio)
    assert atlas.spectra_norm(full) == pytest.approx(float(matrix.double().norm()), rel=1e-6)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
@pytest.mark.parametrize("name", [QUERY_0, FFN_IN_3, WORD])
def test_chosen_bond_dims_are_those_of_the_real_truncation(book, table, name):
    """d'_k in the table = the bonds the MPO gets when truncated to the ratio (what apply_mpo builds)."""
    truncated = mpo_core.compress_matrix(mpo_core.load_weight_matrix(name), n=5, compression_ratio=0.2)
    row = table.loc[name]
    assert row["chosen d'_k"] == ",".join(map(str, truncated.bond_dims))
    assert row["ρ at d' (Eq. 5)"] == pytest.approx(truncated.num_params / math.prod(mpo_core.list_weight_matrices()[name]))
    assert row["central params at d'"] == truncated.central_tensor.numel()
    assert row["auxiliary params at d'"] == sum(t.numel() for t in truncated.auxiliary_tensors)


def test_table_values_are_in_their_ranges(table):
    assert len(table) == 40
    assert (table["ρ at d' (Eq. 5)"] <= 0.2 + 1e-12).all()
    assert ((table["S at C (nats)"] > 0) & (table["S at C (nats)"] <= table["max S_k (nats)"] + 1e-12)).all()
    assert (table["max S_k (nats)"] <= table["ln max d_k (nats)"] + 1e-9).all()  # S_k <= ln d_k, Eq. (6)
    for column in ("central share at d'", "central share, full d", "Σd'/Σd"):
        assert ((table[column] > 0) & (table[column] <= 1)).all(), column
    assert (table["relative error bound (Eq. 4)"] > 0).all()
    # Section 4.1: the central tensor holds most parameters at full bonds.
    assert (table.loc[atlas.layered(table).index, "central share, full d"] > 0.8).all()


def test_a_larger_ratio_keeps_more_and_errs_less(book, table):
    loose = atlas.atlas_table(book, 0.6)
    assert (loose["Σd'/Σd"] >= table["Σd'/Σd"]).all() and (loose["Σd'/Σd"] > table["Σd'/Σd"]).any()
    assert (loose["relative error bound (Eq. 4)"] <= table["relative error bound (Eq. 4)"] + 1e-12).all()
    assert loose["S at C (nats)"].equals(table["S at C (nats)"])  # full-bond entropies do not depend on the ratio
    with pytest.raises(ValueError, match="> 0"):
        atlas.atlas_table(book, 0)


def test_heatmap_grid_is_type_by_layer(table):
    values, names = atlas.heatmap_grid(table, "central_entropy")
    assert list(values.index) == list(atlas.ENCODER_GROUPS) and list(values.columns) == list(range(6))
    assert names.at["ffn_in", 3] == FFN_IN_3
    assert values.at["ffn_in", 3] == table.at[FFN_IN_3, "S at C (nats)"]
    # the FFN matrices (1536 wide) have larger bonds, hence more entropy, than the 384x384 attention ones
    assert values.loc["ffn_in"].min() > values.loc["query"].max()


def test_heatmap_figure_follows_the_quantity(table):
    figures = {q: atlas.heatmap_figure(table, q) for q in atlas.QUANTITIES}
    z = {q: fig.data[0].z for q, fig in figures.items()}
    assert z["central_entropy"].shape == (6, 6)
    assert len({tuple(v.ravel().round(6)) for v in z.values()}) == len(atlas.QUANTITIES)
    assert figures["central_share"].layout.title.text.startswith("central tensor's share")
    clickable = figures["bond_ratio"].data[1]
    assert len(clickable.customdata) == 36 and FFN_IN_3 in clickable.customdata
    assert len(atlas.heatmap_figure(table, "max_entropy", highlight=FFN_IN_3).data) == 3  # outline of the selection
    with pytest.raises(ValueError, match="quantity must be one of"):
        atlas.heatmap_figure(table, "nope")


def test_selected_weight_reads_plotly_points(table):
    assert atlas.selected_weight([{"customdata": FFN_IN_3, "x": "layer 3"}], table) == FFN_IN_3
    assert atlas.selected_weight([{"x": "layer 0", "y": atlas.GROUP_LABELS["query"]}], table) == QUERY_0
    assert atlas.selected_weight([], table) is None
    assert atlas.selected_weight(None, table) is None
    assert atlas.selected_weight([{"x": "layer 9", "y": "nothing"}], table) is None


def test_ordered_names_go_layer_by_layer(table):
    names = atlas.ordered_names(table)
    assert sorted(names) == sorted(table.index)
    assert names[:6] == [f"encoder.layer.0.{m}.weight" for m in (
        "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
        "intermediate.dense", "output.dense")]
    assert names[-4:] == list(atlas.outside_layers(table).index)


def test_entropy_profile_shows_the_matrix_and_its_type_in_other_layers(book, table):
    fig = atlas.entropy_profile_figure(book, table, FFN_IN_3)
    assert len(fig.data) == 5 + 3  # five other layers, ln d_k, S_k full, S_k kept
    full = fig.data[-2].y
    assert tuple(full) == mpo_core.entanglement_entropy(book.entry(FFN_IN_3).mpo)
    assert all(kept <= f + 1e-9 for kept, f in zip(fig.data[-1].y, full))  # fewer kept values, less entropy
    assert len(atlas.entropy_profile_figure(book, table, WORD).data) == 3


@pytest.mark.slow  # > 1.5 s in the fast subset (issue 27)
def test_build_atlas_subset_progress_and_errors():
    calls = []
    small = atlas.build_atlas(3, names=[QUERY_0, WORD], progress=lambda done, total, name: calls.append((done, total, name)))
    assert small.names == [QUERY_0, WORD] and small.entries[0].mpo.n == 3
    assert calls == [(1, 2, QUERY_0), (2, 2, WORD)]
    with pytest.raises(KeyError, match="no weight named"):
        atlas.build_atlas(5, names=["nope.weight"])
    with pytest.raises(ValueError, match="at least 2"):
        atlas.build_atlas(1, names=[QUERY_0])
    torch.testing.assert_close(
        torch.tensor(mpo_core.entanglement_entropy(small.entries[0].mpo), dtype=torch.float64),
        torch.tensor(mpo_core.entanglement_entropy(mpo_core.decompose(mpo_core.load_weight_matrix(QUERY_0), n=3)),
                     dtype=torch.float64),
    )


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_second_build_reads_every_decomposition_from_the_disk_cache(tmp_path, book):
    names = [QUERY_0, FFN_IN_3, WORD]
    first = atlas.build_atlas(5, names=names, cache_dir=tmp_path)
    assert first.from_cache == 0 and all(e.key for e in first.entries)
    assert len(list((tmp_path / "decompositions").glob("*.npz"))) == 3
    second = atlas.build_atlas(5, names=names, cache_dir=tmp_path)
    assert second.from_cache == 3 and [e.key for e in second.entries] == [e.key for e in first.entries]
    assert "read from the disk cache" in atlas.time_help(second) and "decomposed now" in atlas.time_help(first)
    for name in names:  # the same numbers as a fresh decomposition
        assert mpo_core.entanglement_entropy(second.entry(name).mpo) == mpo_core.entanglement_entropy(book.entry(name).mpo)
        assert atlas.chosen_bond_dims(second.entry(name), 0.2) == atlas.chosen_bond_dims(book.entry(name), 0.2)
        assert second.entry(name).norm == pytest.approx(book.entry(name).norm, rel=1e-12)
    other_n = atlas.build_atlas(4, names=names[:1], cache_dir=tmp_path)
    assert other_n.from_cache == 0  # another n is another decomposition


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_the_table_is_kept_on_disk_and_reads_back_equal(tmp_path, book, table):
    import pandas as pd

    small = atlas.build_atlas(5, names=[QUERY_0, WORD], cache_dir=tmp_path)
    fresh = atlas.atlas_table(small, 0.2, cache_dir=tmp_path)
    assert len(list((tmp_path / atlas.TABLE_SUBDIR).glob("*.json"))) == 1
    again = atlas.atlas_table(small, 0.2, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(again, fresh, check_exact=True)
    pd.testing.assert_frame_equal(fresh, table.loc[[QUERY_0, WORD]], check_exact=True)
    assert atlas.table_key(small, 0.3) != atlas.table_key(small, 0.2)
    assert atlas.table_key(book, 0.2) is None  # built without the disk cache: nothing to key a table by


def test_bounds_over_100_percent_get_a_note():
    assert atlas.bound_note(0.99) is None
    assert "over-counts" in atlas.bound_note(1.01)
    assert atlas.percent(0.887) == "88.7 %" and atlas.percent(1.013) == "101 %"


def test_every_n_has_a_first_build_estimate():
    assert set(atlas.FIRST_BUILD_SECONDS) == set(atlas.NUM_TENSOR_CHOICES)

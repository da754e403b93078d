"""The disk cache of decompositions (spectra only): round trip, keys, damaged files, bound."""
import io
import json
import os

import numpy as np
import pytest
import torch

import mpo_core
from app import decomposition_cache as cache

QUERY_0 = "encoder.layer.0.attention.self.query.weight"


@pytest.fixture(scope="module")
def spectra() -> mpo_core.MPO:
    """A seeded 96 x 64 matrix as a full-bond n = 4 MPO, spectra only."""
    matrix = torch.randn(96, 64, generator=torch.Generator().manual_seed(0))
    return cache.spectra_only(mpo_core.decompose(matrix, n=4))


def _key(text: str = "x") -> str:
    return cache.entry_key({"name": text}, {"n": 4})


def test_a_stored_decomposition_reads_back_the_same(tmp_path, spectra):
    cache.save(tmp_path, _key(), spectra, {"weight": "random"})
    back = cache.load(tmp_path, _key())
    assert back is not None and back.shape == spectra.shape and back.center == spectra.center
    assert back.bond_dims == spectra.bond_dims and back.dtype == spectra.dtype
    assert all(t.stride() == (0, 0, 0, 0) for t in back.tensors)  # placeholders hold no memory
    for a, b in zip(back.singular_values, spectra.singular_values):
        assert torch.equal(a, b)
    assert back.center_row_tails.keys() == spectra.center_row_tails.keys()
    assert all(np.array_equal(back.center_row_tails[x], v) for x, v in spectra.center_row_tails.items())
    assert mpo_core.entanglement_entropy(back) == mpo_core.entanglement_entropy(spectra)
    for ratio in (0.1, 0.4):  # the allocator reads the spectra and the central pair's table
        assert mpo_core.bond_dims_for_ratio(back, ratio) == mpo_core.bond_dims_for_ratio(spectra, ratio)


def test_keys_follow_the_matrix_and_the_settings(tmp_path):
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"0" * 10)
    first = cache.weight_identity(QUERY_0, weights)
    key = cache.entry_key(first, {"n": 5})
    assert key == cache.entry_key(cache.weight_identity(QUERY_0, weights), {"n": 5})  # stable
    assert len(key) == 32 and int(key, 16) >= 0
    assert key != cache.entry_key(first, {"n": 4})
    assert key != cache.entry_key(cache.weight_identity("pooler.dense.weight", weights), {"n": 5})
    assert cache.weight_key(QUERY_0, weights, 5, (2, 4, 4, 4, 3), (3, 4, 4, 4, 2)) == cache.entry_key(
        first, {"n": 5, "out_factors": [2, 4, 4, 4, 3], "in_factors": [3, 4, 4, 4, 2]})  # atlas and Decompose alike
    os.utime(weights / "model.safetensors", ns=(1, 1))  # the weights file rewritten
    assert key != cache.entry_key(cache.weight_identity(QUERY_0, weights), {"n": 5})


def test_the_packaged_model_has_an_identity():
    identity = cache.weight_identity(QUERY_0, mpo_core.default_model_path())
    assert identity["name"] == QUERY_0 and identity["files"] and identity["files"][0][1] > 0


def test_absent_unfinished_foreign_or_damaged_entries_are_none(tmp_path, spectra):
    key = _key()
    assert cache.load(tmp_path, key) is None  # absent
    cache.save(tmp_path, key, spectra)
    npz, meta = tmp_path / f"{key}.npz", tmp_path / f"{key}.json"
    good_meta, good_npz = meta.read_text(), npz.read_bytes()
    meta.unlink()
    assert cache.load(tmp_path, key) is None  # unfinished: the arrays without their marker
    meta.write_text(good_meta.replace('"version": 1', '"version": 99'))
    assert cache.load(tmp_path, key) is None  # another format
    meta.write_text(good_meta.replace(key, _key("y")))
    assert cache.load(tmp_path, key) is None  # another entry's marker
    meta.write_text(good_meta)
    npz.write_bytes(good_npz[: len(good_npz) // 2])
    assert cache.load(tmp_path, key) is None  # torn arrays
    buffer = io.BytesIO()
    np.savez(buffer, s0=np.array([object()], dtype=object))
    npz.write_bytes(buffer.getvalue())
    assert cache.load(tmp_path, key) is None  # pickled objects are never loaded
    npz.write_bytes(good_npz)
    assert cache.load(tmp_path, key) is not None


def test_keys_must_be_hex_names(tmp_path, spectra):
    with pytest.raises(ValueError, match="not a cache key"):
        cache.load(tmp_path, "../../etc/passwd")
    with pytest.raises(ValueError, match="not a cache key"):
        cache.save(tmp_path, "x" * 32, spectra)


def test_json_results_round_trip(tmp_path):
    rows = [{"name": "a", "layer": None, "value": 0.1 + 0.2, "count": 3}]
    cache.save_json(tmp_path, _key(), rows)
    assert cache.load_json(tmp_path, _key()) == rows  # floats exactly
    assert cache.load_json(tmp_path, _key("other")) is None
    (tmp_path / f"{_key()}.json").write_text("{torn")
    assert cache.load_json(tmp_path, _key()) is None


def test_the_folder_is_bounded_least_recently_used_first(tmp_path, spectra):
    keys = [_key(str(i)) for i in range(4)]
    for i, key in enumerate(keys):
        cache.save(tmp_path, key, spectra)
        os.utime(tmp_path / f"{key}.json", (1000 + i, 1000 + i))
    cache.load(tmp_path, keys[0])  # used now: the most recent
    size = sum(p.stat().st_size for p in tmp_path.iterdir()) // 4
    (tmp_path / "notes.txt").write_text("not an entry")
    removed = cache.prune(tmp_path, max_bytes=2 * size + size // 2)
    assert removed == keys[1:3]
    assert cache.load(tmp_path, keys[0]) is not None and cache.load(tmp_path, keys[3]) is not None
    assert (tmp_path / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{k}{s}" for k in (keys[0], keys[3]) for s in (".json", ".npz")] + ["notes.txt"])
    assert json.loads((tmp_path / f"{keys[0]}.json").read_text())["key"] == keys[0]

"""app/built_model_cache.py: the Compress page's built models and their effect, on disk, read back exactly."""
import json
import os
import shutil
import time

import pytest
import torch

from app import built_model_cache as cache, compress as mc
from mpo_core.model.calibration import model_fingerprint
from mpo_core.model.embedding_agreement import Agreement

REQUEST = mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.3, n=5, layers=(0,))


@pytest.fixture(scope="module")
def minilm():
    """The packaged MiniLM cut to its first two encoder layers (real weights, fast)."""
    return mc.load_base_model(num_hidden_layers=2)


@pytest.fixture(scope="module")
def built(minilm):
    return mc.build_compressed_model(minilm, REQUEST)


def _key(minilm, request=REQUEST) -> str:
    return cache.entry_key(model_fingerprint(minilm), request.mpo_config().to_dict())


def _hidden(model) -> torch.Tensor:
    ids = torch.tensor([[101, 7592, 2088, 102]])
    with torch.no_grad():
        return model(input_ids=ids).last_hidden_state


def test_a_built_model_reads_back_exactly(minilm, built, tmp_path):
    model, report = built
    key = _key(minilm)
    assert cache.load(tmp_path, key, minilm.config.to_dict()) is None  # nothing stored yet
    cache.save(tmp_path, key, model, report, 12.5, {"ratio": 0.3})
    loaded, loaded_report, record = cache.load(tmp_path, key, minilm.config.to_dict())
    assert loaded_report == report and record["seconds"] == 12.5 and record["about"] == {"ratio": 0.3}
    assert torch.equal(_hidden(loaded), _hidden(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == [key]  # no staging folder left


def test_the_key_follows_the_weights_and_every_setting(minilm):
    key = _key(minilm)
    assert key == _key(minilm) and len(key) == 32
    for changed in (mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.31, n=5, layers=(0,)),
                    mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.3, n=4, layers=(0,)),
                    mc.CompressionRequest(groups=("query",), ratio=0.3, n=5, layers=(0,)),
                    mc.CompressionRequest(groups=("query", "ffn_in"), ratio=0.3, n=5, layers=(0, 1))):
        assert _key(minilm, changed) != key
    assert cache.entry_key("other weights", REQUEST.mpo_config().to_dict()) != key


def test_unfinished_damaged_or_mismatched_entries_are_ignored(minilm, built, tmp_path):
    model, report = built
    key = _key(minilm)
    cache.save(tmp_path, key, model, report, 1.0, {})
    record_file = tmp_path / key / cache.BUILT
    record = json.loads(record_file.read_text())
    record["report"][0]["bond_dims"] = [1, 1, 1, 1]  # not the stored weights' bonds
    record_file.write_text(json.dumps(record))
    assert cache.load(tmp_path, key, minilm.config.to_dict()) is None
    record_file.write_text("{not json")
    assert cache.load(tmp_path, key, minilm.config.to_dict()) is None
    record_file.unlink()  # unfinished: the marker is written last
    assert cache.load(tmp_path, key, minilm.config.to_dict()) is None
    with pytest.raises(ValueError, match="not a cache key"):
        cache.load(tmp_path, "../../etc", minilm.config.to_dict())


def test_a_concurrent_twin_keeps_the_first_entry(minilm, built, tmp_path):
    model, report = built
    key = _key(minilm)
    cache.save(tmp_path, key, model, report, 1.0, {"first": True})
    cache.save(tmp_path, key, model, report, 2.0, {"first": False})  # the folder exists: the second is dropped
    assert cache.load(tmp_path, key, minilm.config.to_dict())[2]["about"] == {"first": True}
    assert [p.name for p in tmp_path.iterdir()] == [key]


def test_the_effect_is_stored_beside_its_model(minilm, built, tmp_path):
    model, report = built
    key, sample = _key(minilm), "0123456789abcdef"
    effect = Agreement(400, 0.071, -0.06, 0.86, 0.595, (0.9, 0.8))
    cache.save_effect(tmp_path, key, sample, effect)  # no model stored yet: nothing written
    assert cache.load_effect(tmp_path, key, sample) is None
    cache.save(tmp_path, key, model, report, 1.0, {})
    cache.save_effect(tmp_path, key, sample, effect)
    assert cache.load_effect(tmp_path, key, sample) == effect
    assert cache.load_effect(tmp_path, key, "fedcba9876543210") is None  # another STS-B sample
    (tmp_path / key / f"effect-{sample}.json").write_text('{"sentences": "x", "cosine_mean": []}')
    assert cache.load_effect(tmp_path, key, sample) is None


def test_the_sample_key_follows_the_sts_b_file(tmp_path):
    (tmp_path / "STS-B").mkdir()
    dev = tmp_path / "STS-B" / "dev.tsv"
    dev.write_text("header\n")
    key = cache.sample_key(tmp_path, 200, 0)
    assert key == cache.sample_key(tmp_path, 200, 0) != cache.sample_key(tmp_path, 100, 0)
    dev.write_text("header\nanother row\n")
    assert cache.sample_key(tmp_path, 200, 0) != key
    with pytest.raises(FileNotFoundError):
        cache.sample_key(tmp_path / "nowhere", 200, 0)


def test_the_folder_keeps_the_most_recently_used_entries_within_its_bound(minilm, built, tmp_path):
    model, report = built
    keys = [cache.entry_key(f"weights {i}", {}) for i in range(3)]
    for i, key in enumerate(keys):
        cache.save(tmp_path, key, model, report, 1.0, {})
        os.utime(tmp_path / key / cache.BUILT, (time.time() - 100 + i, time.time() - 100 + i))
    cache.load(tmp_path, keys[0], minilm.config.to_dict())  # read: now the most recently used
    size = sum(f.stat().st_size for f in (tmp_path / keys[0]).rglob("*") if f.is_file())
    assert cache.prune(tmp_path, max_bytes=2 * size + 1000) == [keys[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keys[0], keys[2]])
    shutil.rmtree(tmp_path / keys[2] / cache.MODEL)  # a damaged entry is simply a miss
    assert cache.load(tmp_path, keys[2], minilm.config.to_dict()) is None


def test_the_folder_fingerprint_follows_every_weight_byte_and_the_config(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 4}')
    weights = bytearray(b"header" + bytes(range(200)))
    (model / "model.safetensors").write_bytes(weights)
    first = cache.folder_fingerprint(model)
    assert first == cache.folder_fingerprint(model) and len(first) == 64
    weights[-1] ^= 1  # one bit of one weight
    (model / "model.safetensors").write_bytes(weights)
    second = cache.folder_fingerprint(model)
    assert second != first
    (model / "config.json").write_text('{"hidden_size": 5}')
    assert cache.folder_fingerprint(model) not in (first, second)
    with pytest.raises(FileNotFoundError, match="safetensors"):
        cache.folder_fingerprint(tmp_path / "empty")

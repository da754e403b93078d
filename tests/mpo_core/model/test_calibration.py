"""Calibration statistics: X^T X of each matrix's inputs over real tokens, token counts, the disk cache (tiny BERT)."""
import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

import mpo_core
from mpo_core.model import calibration
from mpo_core.model.calibration import CalibrationStats, calibration_stats, collect_calibration
from mpo_core.tensor.second_moment import pack_upper, symmetric_from_upper, unpack_upper, upper_gram

SENTENCES = ["a man is playing a guitar.", "the cat sleeps.", "two children are swimming in the pool today.",
             "a woman is slicing an onion for the soup she cooks tonight, slowly and carefully."]
QUERY, KEY, VALUE = (f"encoder.layer.0.attention.self.{m}" for m in ("query", "key", "value"))
FFN_OUT = "encoder.layer.1.output.dense"


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)


def tiny_encoder(seed: int = 0) -> BertModel:
    """The tiny random BERT of tiny_models.py, with the real tokenizer's vocabulary."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_encoder()


@pytest.fixture
def glue_dir(tmp_path):
    folder = tmp_path / "glue" / "STS-B"
    folder.mkdir(parents=True)
    rows = [f"main\tx\t2012\t{i:04d}\t{s}\t{SENTENCES[(i + 1) % 4]}\t{i % 5}.0" for i, s in enumerate(SENTENCES * 3)]
    (folder / "train.tsv").write_text("genre\tfile\tyear\tid\tsentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    return tmp_path / "glue"


def captured_inputs(model, tokenizer, name, sentences):
    """The input rows of module ``name`` over the real tokens, captured by our own hook."""
    module, seen = dict(model.named_modules())[name], []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        model(**batch)
    handle.remove()
    return seen[0][batch["attention_mask"].bool()].double(), batch


@pytest.mark.parametrize("features, block", [(1, 256), (7, 3), (10, 5), (300, 256), (12, 100)])
def test_the_upper_blocks_complete_to_the_full_product(features, block):
    rows = torch.randn(9, features, generator=torch.Generator().manual_seed(features), dtype=torch.float64)
    upper = upper_gram(rows, block)
    torch.testing.assert_close(symmetric_from_upper(upper + upper_gram(2 * rows, block)), 5 * rows.T @ rows)
    with pytest.raises(ValueError, match="expected rows of shape"):
        upper_gram(rows[0], block)
    full = rows.T @ rows
    assert pack_upper(full).shape == (features * (features + 1) // 2,)
    assert torch.equal(unpack_upper(pack_upper(full), features), symmetric_from_upper(full))
    with pytest.raises(ValueError, match="packed values"):
        unpack_upper(pack_upper(full), features + 1)


def test_second_moment_is_the_product_of_the_captured_inputs(model, tokenizer):
    stats = collect_calibration(model, tokenizer, SENTENCES, progress=False, batch_size=8)
    for name in (QUERY, FFN_OUT):
        rows, _ = captured_inputs(model, tokenizer, name, SENTENCES)
        assert stats.second_moments[name].dtype == torch.float64
        torch.testing.assert_close(stats.second_moments[name], rows.T @ rows, rtol=1e-5, atol=1e-5)
        assert stats.num_tokens[name] == rows.shape[0]
    torch.testing.assert_close(stats.covariance(FFN_OUT), stats.second_moments[FFN_OUT] / stats.num_tokens[FFN_OUT])


def test_padding_is_left_out(model, tokenizer):
    together = collect_calibration(model, tokenizer, SENTENCES, progress=False, batch_size=4)
    alone = [collect_calibration(model, tokenizer, [s], progress=False) for s in SENTENCES]
    for name, moment in together.second_moments.items():
        torch.testing.assert_close(moment, sum(a.second_moments[name] for a in alone), rtol=1e-5, atol=1e-5)
        assert together.num_tokens[name] == sum(a.num_tokens[name] for a in alone)


def test_query_key_and_value_share_one_accumulation(model, tokenizer):
    stats = collect_calibration(model, tokenizer, SENTENCES, progress=False)
    assert stats.second_moments[QUERY] is stats.second_moments[KEY] is stats.second_moments[VALUE]
    assert stats.second_moments[QUERY] is not stats.second_moments["encoder.layer.0.attention.output.dense"]
    assert set(stats.second_moments) == {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def test_the_pooler_counts_every_sentence(model, tokenizer):
    stats = collect_calibration(model, tokenizer, SENTENCES, progress=False, batch_size=3)
    assert stats.num_tokens["pooler.dense"] == len(SENTENCES)


def test_token_counts_are_a_bincount_of_the_real_ids(model, tokenizer):
    stats = collect_calibration(model, tokenizer, SENTENCES, progress=False, batch_size=3)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    ids = batch["input_ids"][batch["attention_mask"].bool()]
    counts = stats.token_counts["embeddings.word_embeddings"]
    assert counts.dtype == torch.float64 and counts.shape == (30522,)
    assert torch.equal(counts, torch.bincount(ids, minlength=30522).double())
    assert stats.num_tokens["embeddings.word_embeddings"] == ids.numel()


def test_a_matrix_shared_by_layers_sums_every_use(tokenizer):
    from transformers import AlbertConfig, AlbertModel

    torch.manual_seed(0)
    albert = AlbertModel(AlbertConfig(vocab_size=30522, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                                      num_attention_heads=4, intermediate_size=48)).eval()
    stats = collect_calibration(albert, tokenizer, SENTENCES[:2], progress=False)
    real = int(tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")["attention_mask"].sum())
    assert stats.num_tokens["encoder.albert_layer_groups.0.albert_layers.0.ffn_output"] == 3 * real


def test_groups_choose_the_matrices_and_the_model_is_left_as_it_was(model, tokenizer):
    model.train()
    stats = collect_calibration(model, tokenizer, SENTENCES[:2], groups=["ffn_out"], progress=False)
    assert model.training and not any(m._forward_pre_hooks for m in model.modules())
    model.eval()
    assert set(stats.second_moments) == {"encoder.layer.0.output.dense", FFN_OUT} and not stats.token_counts


def test_mpo_layers_are_calibrated_like_dense_ones(model, tokenizer):
    compressed = copy.deepcopy(model)
    mpo_core.apply_mpo(compressed, mpo_core.MPOConfig(groups=("ffn_out",)), progress=False)
    assert isinstance(dict(compressed.named_modules())[FFN_OUT], mpo_core.MPOLinear)
    dense = collect_calibration(model, tokenizer, SENTENCES, groups=["ffn_out"], progress=False)
    mpo = collect_calibration(compressed, tokenizer, SENTENCES, groups=["ffn_out"], progress=False)
    torch.testing.assert_close(mpo.second_moments[FFN_OUT], dense.second_moments[FFN_OUT], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options, message", [
    (dict(sentences=[]), "non-empty list of strings"),
    (dict(sentences="one sentence"), "non-empty list of strings"),
    (dict(groups=["attention"]), "unknown matrix groups"),
    (dict(max_length=1), "max_length must be an int"),
    (dict(max_length=100_000), "max_length must be an int"),
    (dict(batch_size=0), "batch_size must be an int"),
])
def test_bad_options_are_refused(model, tokenizer, options, message):
    options = {"sentences": SENTENCES, **options}
    with pytest.raises(ValueError, match=message):
        collect_calibration(model, tokenizer, options.pop("sentences"), progress=False, **options)


def test_a_matrix_too_wide_is_refused_before_allocating(model, tokenizer, monkeypatch):
    monkeypatch.setattr(calibration, "MAX_CALIBRATION_FEATURES", 40)
    with pytest.raises(ValueError, match="layer.0.output.dense takes 48 input features, more than the 40"):
        collect_calibration(model, tokenizer, SENTENCES, progress=False)


# --- the cache -----------------------------------------------------------------------------


def counting(model):
    """The model with a counter of its forward calls."""
    calls = []
    model.register_forward_pre_hook(lambda m, args, kwargs: calls.append(1), with_kwargs=True)
    return calls


def test_the_cache_hits_and_misses_when_weights_or_options_change(tokenizer, glue_dir, tmp_path):
    model = tiny_encoder()
    calls = counting(model)
    options = dict(num_sentences=8, cache_dir=tmp_path / "cache", data_dir=glue_dir, progress=False)
    first = calibration_stats(model, tokenizer, "stsb", **options)
    assert len(calls) == 1 and len(first.key) == 64 and first.metadata["source"] == "stsb"
    again = calibration_stats(model, tokenizer, "stsb", **options)
    assert len(calls) == 1  # read back, the model did not run
    assert again.key == first.key and again.num_tokens == first.num_tokens and again.num_sentences == 8
    for name, moment in first.second_moments.items():
        assert torch.equal(again.second_moments[name], moment)
    assert again.second_moments[QUERY] is again.second_moments[KEY]
    assert torch.equal(again.token_counts["embeddings.word_embeddings"], first.token_counts["embeddings.word_embeddings"])

    calibration_stats(model, tokenizer, "stsb", **{**options, "num_sentences": 6})
    assert len(calls) == 2
    calibration_stats(model, tokenizer, "stsb", **{**options, "max_length": 16})
    assert len(calls) == 3
    with torch.no_grad():
        model.encoder.layer[1].output.dense.weight[3, 5] += 0.01
    calibration_stats(model, tokenizer, "stsb", **options)
    assert len(calls) == 4


def test_a_model_key_replaces_the_weight_fingerprint(tokenizer, glue_dir, tmp_path):
    model = tiny_encoder()
    calls = counting(model)
    options = dict(num_sentences=4, cache_dir=tmp_path, data_dir=glue_dir, progress=False, model_key="ckpt-1")
    calibration_stats(model, tokenizer, "stsb", **options)
    with torch.no_grad():
        model.pooler.dense.bias += 1.0  # the caller vouches for the key
    calibration_stats(model, tokenizer, "stsb", **options)
    assert len(calls) == 1
    assert mpo_core.model_fingerprint(model) != mpo_core.model_fingerprint(tiny_encoder())


@pytest.mark.parametrize("damage", ["truncate", "garbage json", "other tensors", "wrong shape"])
def test_a_damaged_cache_entry_is_computed_again(tokenizer, glue_dir, tmp_path, damage):
    model = tiny_encoder()
    calls = counting(model)
    options = dict(num_sentences=4, cache_dir=tmp_path, data_dir=glue_dir, progress=False, model_key="same")
    first = calibration_stats(model, tokenizer, "stsb", **options)
    tensors, record = sorted(tmp_path.glob("*.safetensors"))[0], sorted(tmp_path.glob("*.json"))[0]
    if damage == "truncate":
        tensors.write_bytes(tensors.read_bytes()[:100])
    elif damage == "garbage json":
        record.write_text("{not json")
    elif damage == "other tensors":
        data = bytearray(tensors.read_bytes())
        data[-8:] = b"\x00" * 8
        tensors.write_bytes(bytes(data))
    else:  # the same key, another model: shapes must be checked against the model
        model = BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=48)).eval()
        calls = counting(model)
    with pytest.warns(UserWarning, match="ignoring the calibration cache entry"):
        again = calibration_stats(model, tokenizer, "stsb", **options)
    assert len(calls) == (1 if damage == "wrong shape" else 2)
    if damage != "wrong shape":
        for name, moment in first.second_moments.items():
            torch.testing.assert_close(again.second_moments[name], moment, rtol=0, atol=0)
    calibration_stats(model, tokenizer, "stsb", **options)  # rewritten: a hit now
    assert len(calls) == (1 if damage == "wrong shape" else 2)
    assert json.loads(record.read_text())["key"] == again.key


def test_the_default_cache_dir_follows_mpo_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MPO_CACHE_DIR", str(tmp_path))
    assert mpo_core.default_calibration_dir() == tmp_path / "calibration"
    monkeypatch.delenv("MPO_CACHE_DIR")
    assert mpo_core.default_calibration_dir().parts[-2:] == ("cache", "calibration")


def test_stats_are_a_frozen_record():
    stats = CalibrationStats({}, {}, {}, 0, 8)
    with pytest.raises(AttributeError):
        stats.num_sentences = 3
    with pytest.raises(KeyError, match="no calibration statistics"):
        stats.covariance("x")


@pytest.mark.slow
def test_the_packaged_minilm_on_stsb_reads_back_what_it_wrote(tokenizer, tmp_path):
    from transformers import AutoModel

    from mpo_core.data.glue import default_glue_dir

    assert Path(default_glue_dir(), "STS-B", "train.tsv").is_file(), "the offline GLUE copy (../shared/glue) is missing"
    model = AutoModel.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False,
                                      use_safetensors=True).eval()
    calls = counting(model)
    first = calibration_stats(model, tokenizer, "stsb", num_sentences=32, cache_dir=tmp_path, progress=False)
    again = calibration_stats(model, tokenizer, "stsb", num_sentences=32, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1 and len(first.second_moments) == 37 and len({id(m) for m in again.second_moments.values()}) == 25
    for name, moment in first.second_moments.items():
        assert torch.equal(again.second_moments[name], moment)
    moment = first.second_moments["encoder.layer.5.output.dense"]
    assert torch.linalg.eigvalsh(moment).min() > -1e-6 * moment.diagonal().max()  # positive semi-definite

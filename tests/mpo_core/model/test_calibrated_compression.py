"""Compressing a whole model with calibration data: every method, one budget, the word embedding, sensitivity."""
import copy

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel

import mpo_core
from mpo_core.layers import MPOEmbedding, MPOLinear
from mpo_core.model.calibrated_compression import (CALIBRATED, METHODS, CompressionConfig, compress_model)
from mpo_core.model.calibration import collect_calibration
from mpo_core.model.output_sensitivity import measured_sensitivity, output_sensitivity

SENTENCES = ["a man is playing a guitar.", "the cat sleeps on the warm mat.", "two children are swimming in the pool.",
             "a woman is slicing an onion for the soup she cooks tonight.", "the stock market fell sharply today.",
             "kids swim in a pool.", "a dog runs in the park after a red ball.", "nobody came to the meeting."] * 3


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48)
    return BertModel(config).eval()


@pytest.fixture(scope="module")
def stats(model, tokenizer):
    groups = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out", "word_embedding")
    return collect_calibration(model, tokenizer, SENTENCES, groups=groups, progress=False)


def _compressed(model, stats, **options):
    student = copy.deepcopy(model)
    report = compress_model(student, CompressionConfig(**options), stats, progress=False)
    return student, report


@pytest.mark.parametrize("method", METHODS)
def test_every_method_replaces_the_encoder_matrices_within_the_budget(model, stats, method):
    student, report = _compressed(model, stats, method=method, size=0.5, n=3, sweeps=1)
    assert len(report.matrices) == 12  # 6 matrices x 2 layers
    assert report.params_after <= 0.5 * report.params_before
    kinds = {type(dict(student.named_modules())[m.name]) for m in report.matrices}
    assert kinds <= {MPOLinear, nn.Linear}
    assert all(m.error is not None and m.error >= 0 for m in report.matrices)
    for m in report.matrices:  # the reported error is the one the module now has
        module = dict(student.named_modules())[m.name]
        w = dict(model.named_modules())[m.name].weight.detach()
        sigma = stats.second_moments[m.name]
        delta = (w - module.weight.detach()).double()
        assert m.error == pytest.approx(float(((delta @ sigma) * delta).sum().sqrt()), rel=1e-4, abs=1e-6)


def test_data_aware_methods_beat_plain_ones_on_the_data_error(model, stats):
    errors = {}
    for method in ("svd", "svd_whitened", "mpo", "mpo_kronecker", "mpo_calibrated"):
        _, report = _compressed(model, stats, method=method, size=0.4, n=3, sweeps=2)
        errors[method] = {m.name: m.error for m in report.matrices}
    for name in errors["svd"]:
        assert errors["svd_whitened"][name] <= errors["svd"][name] * (1 + 1e-6)
        assert errors["mpo_calibrated"][name] <= errors["mpo"][name] * (1 + 1e-6)  # ALS from the plain MPO


def test_auto_never_loses_to_the_whitened_svd_on_its_own_objective(model, stats):
    _, uniform = _compressed(model, stats, method="svd_whitened", size=0.3)
    _, auto = _compressed(model, stats, method="auto", size=0.3, structures=(2, 3), sweeps=1)
    total = lambda r: sum(m.error ** 2 for m in r.matrices)
    assert auto.params_after <= 0.3 * auto.params_before
    assert total(auto) <= total(uniform) * 1.01  # 1 %: options are judged on the damped moment
    assert {m.structure for m in auto.matrices} <= {0, 2, 3}
    groups = auto.by_group()
    assert sum(v["params"] for k, v in groups.items() if k.startswith("group:")) == auto.params_after


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_a_model_size_includes_the_word_embedding_and_holds_the_whole_model_budget(model, stats):
    groups = ("query", "key", "value", "attention_output", "ffn_in", "ffn_out", "word_embedding")
    for method in ("mpo", "svd_whitened", "auto"):
        student, report = _compressed(model, stats, method=method, model_size=0.5, groups=groups, n=3)
        assert report.model_params_after <= 0.5 * report.model_params_before * 1.0001
        embedding = dict(student.named_modules())["embeddings.word_embeddings"]
        assert isinstance(embedding, MPOEmbedding)
        out = student(**_batch())
        assert torch.isfinite(out.last_hidden_state).all()


def _batch():
    tok = AutoTokenizer.from_pretrained(str(mpo_core.default_model_path()), trust_remote_code=False)
    return tok(SENTENCES[:3], padding=True, return_tensors="pt")


def test_token_counts_weight_the_embedding_rows(model, stats):
    """Rows of frequent tokens are kept better than with plain truncation at the same size."""
    groups = ("word_embedding",)
    _, plain = _compressed(model, stats, method="svd", size=0.2, groups=groups)
    _, weighted = _compressed(model, stats, method="svd_whitened", size=0.2, groups=groups)
    assert weighted.matrices[0].error < plain.matrices[0].error


def test_output_sensitivity_is_measured_per_matrix(model, stats, tokenizer):
    config = CompressionConfig(method="auto", size=0.5)
    sens = measured_sensitivity(model, tokenizer, stats, SENTENCES, config, progress=False)
    assert set(sens) == {m for m in stats.second_moments if "encoder" in m}
    assert all(v >= 0 for v in sens.values()) and max(sens.values()) > 0
    zero = {"encoder.layer.0.attention.self.query": torch.zeros(32, 32)}
    assert output_sensitivity(model, tokenizer, SENTENCES[:4], zero, progress=False) == {
        "encoder.layer.0.attention.self.query": 0.0}
    with pytest.raises(ValueError, match="perturbation"):
        output_sensitivity(model, tokenizer, SENTENCES[:4], {"encoder.layer.0.attention.self.query": torch.zeros(3, 3)})
    free = "encoder.layer.1.intermediate.dense"  # its output error moves nothing: it gets the cheapest option
    weights = {name: (0.0 if name == free else 1.0) for name in sens}
    report = compress_model(copy.deepcopy(model), CompressionConfig(method="auto", size=0.5, structures=(2,)), stats,
                            sensitivity=weights, progress=False)
    chosen = {m.name: m for m in report.matrices}[free]
    assert chosen.structure == 2 and chosen.bond_dims == (1,)


@pytest.mark.parametrize("options, message", [
    ({"method": "mpo"}, "exactly one of size"),
    ({"method": "mpo", "size": 1.5}, "share in"),
    ({"method": "nope", "size": 0.5}, "method"),
    ({"method": "auto", "size": 0.5, "structures": (1,)}, "structures"),
    ({"method": "mpo", "size": 0.5, "sweeps": -1}, "sweeps"),
])
def test_bad_configs_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        CompressionConfig(**options)


@pytest.mark.parametrize("method", CALIBRATED)
def test_calibrated_methods_need_calibration(model, method):
    with pytest.raises(ValueError, match="calibration statistics"):
        compress_model(copy.deepcopy(model), CompressionConfig(method=method, size=0.5), None, progress=False)


def test_a_model_size_too_small_for_what_stays_dense_is_an_error(model, stats):
    with pytest.raises(ValueError, match="model_size"):
        compress_model(copy.deepcopy(model), CompressionConfig(method="svd", model_size=0.01), stats, progress=False)


def test_auto_with_mpo_structures_only_finds_a_choice_at_a_small_share(model, stats):
    _, report = _compressed(model, stats, method="auto", size=0.1, structures=(3,), sweeps=0)
    assert report.params_after <= 0.1 * report.params_before
    assert {m.structure for m in report.matrices} <= {0, 3}

import pytest
import torch
from torch import nn
from transformers import AutoModelForSequenceClassification

from mpo_core import MPOEmbedding, MPOLinear, default_model_path
from mpo_core.model.matrix_groups import DEFAULT_GROUPS, GROUPS, find_matrices, matrix_group
from mpo_core.model.checkpoint import load_mpo_model, save_mpo_model
from mpo_core.model.mpo_config import MPOConfig
from mpo_core.model.parameter_count import count_parameters
from mpo_core.model.surgery import apply_mpo, merge_mpo, mpo_modules

from ..tiny_models import LAYERS, TINY, tiny_inputs, tiny_model

ALL = MPOConfig(groups=GROUPS)
# per layer: query, key, value, attention output, ffn in, ffn out (MobileBERT: 2 FFN blocks)
EXPECTED_LINEARS = {"bert": 6 * LAYERS + 1, "albert": 6 + 1, "distilbert": 6 * LAYERS,
                    "mobilebert": 8 * LAYERS + 1, "mpnet": 6 * LAYERS}


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("arch", list(TINY))
def test_full_bond_surgery_keeps_logits_and_merge_round_trips(arch):
    model = tiny_model(arch)
    inputs = tiny_inputs()
    reference = logits(model, inputs)
    before = count_parameters(model).total
    report = apply_mpo(model, ALL, progress=False)
    assert len(report) == EXPECTED_LINEARS[arch] + 1  # + the word embedding
    assert all(isinstance(m, (MPOLinear, MPOEmbedding)) for m in mpo_modules(model).values())
    assert torch.allclose(logits(model, inputs), reference, atol=1e-5)
    assert merge_mpo(model) == len(report)
    assert not mpo_modules(model)
    assert count_parameters(model).total == before
    assert torch.allclose(logits(model, inputs), reference, atol=1e-5)


def test_albert_sharing_is_kept_and_counted_once():
    model = tiny_model("albert")
    apply_mpo(model, MPOConfig(groups=("query", "ffn_in")), progress=False)
    layer = model.albert.encoder.albert_layer_groups[0].albert_layers[0]
    assert isinstance(layer.attention.query, MPOLinear) and isinstance(layer.ffn, MPOLinear)
    count = count_parameters(model)
    assert count.groups["query"].matrices == 1
    assert count.groups["query"].total == sum(t.numel() for t in layer.attention.query.tensors) + 32
    assert count.total == sum(p.numel() for p in model.parameters())


def test_mobilebert_bottlenecks_are_not_attention():
    model = tiny_model("mobilebert")
    groups = find_matrices(model)
    assert not any("bottleneck" in name for name in groups)
    assert sum(g == "attention_output" for g in groups.values()) == LAYERS


def test_groups_layers_and_truncation_are_honoured():
    model = tiny_model("bert")
    config = MPOConfig(groups=("ffn_in", "ffn_out"), layers=(1,), compression_ratio={"ffn_in": 0.5, "ffn_out": 0.5})
    report = apply_mpo(model, config, progress=False)
    assert [r.name for r in report] == ["bert.encoder.layer.1.intermediate.dense", "bert.encoder.layer.1.output.dense"]
    assert all(r.params_after <= 0.5 * r.params_before for r in report)
    assert isinstance(model.bert.encoder.layer[0].intermediate.dense, nn.Linear)


def test_explicit_factors_and_bond_dims():
    model = tiny_model("bert")
    config = MPOConfig(groups=("query",), factors={"query": ((2, 4, 4), (4, 4, 2))}, bond_dims={"query": (2, 3)})
    apply_mpo(model, config, progress=False)
    query = model.bert.encoder.layer[0].attention.self.query
    assert query.shape.out_factors == (2, 4, 4) and query.bond_dims == (2, 3)


def test_config_and_model_errors_are_clear():
    with pytest.raises(ValueError, match="non-empty selection"):
        MPOConfig(groups=("queries",))
    with pytest.raises(ValueError, match="not both"):
        MPOConfig(groups=("query",), bond_dims={"query": (2, 2)}, compression_ratio=0.5)
    with pytest.raises(ValueError, match="> 0"):
        MPOConfig(compression_ratio=0)
    with pytest.raises(ValueError, match="not in groups"):
        MPOConfig(groups=("query",), bond_dims={"key": (1, 1)})
    with pytest.raises(ValueError, match="no supported matrices"):
        apply_mpo(nn.Sequential(nn.ReLU()), progress=False)
    with pytest.raises(ValueError, match="outside 1.."):
        apply_mpo(tiny_model("bert"), MPOConfig(groups=("query",), n=2, bond_dims={"query": (999,)}), progress=False)


def test_apply_is_idempotent():
    model = tiny_model("distilbert")
    first = apply_mpo(model, progress=False)
    assert first and apply_mpo(model, progress=False) == []


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_mpo_model_saves_and_loads_with_truncated_bonds(arch, tmp_path):
    model = tiny_model(arch)
    apply_mpo(model, MPOConfig(compression_ratio=0.6), progress=False)
    inputs = tiny_inputs(1)
    expected = logits(model, inputs)
    save_mpo_model(model, tmp_path)
    loaded = load_mpo_model(tmp_path, AutoModelForSequenceClassification)
    assert torch.equal(logits(loaded, inputs), expected)
    assert {n: m.bond_dims for n, m in mpo_modules(loaded).items()} == {n: m.bond_dims for n, m in mpo_modules(model).items()}


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_merged_model_loads_in_plain_transformers(tmp_path):
    model = tiny_model("mpnet")
    apply_mpo(model, MPOConfig(compression_ratio=0.5), progress=False)
    inputs = tiny_inputs(2)
    expected = logits(model, inputs)
    merge_mpo(model)
    model.save_pretrained(tmp_path)
    script = (
        "import sys, torch; from transformers import AutoModelForSequenceClassification as A; "
        f"m = A.from_pretrained({str(tmp_path)!r}).eval(); "
        "assert not any(k.startswith('mpo_core') for k in sys.modules); "
        "ids = torch.load(sys.argv[1]); "
        "print(repr(m(**ids).logits.detach().tolist()))"
    )
    torch.save(inputs, tmp_path / "inputs.pt")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "inputs.pt")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert torch.allclose(torch.tensor(eval(out.stdout.strip())), expected, atol=1e-5)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_packaged_real_model_full_bond_surgery():
    model = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=2).eval()
    inputs = {"input_ids": torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 1012, 102]])}
    reference = logits(model, inputs)
    apply_mpo(model, ALL, progress=False)
    assert (logits(model, inputs) - reference).abs().max() <= 1e-4
    count = count_parameters(model)
    assert count.groups["word_embedding"].central > 0.9 * count.groups["word_embedding"].total
    for group in DEFAULT_GROUPS:
        assert count.groups[group].matrices == (1 if group == "word_embedding" else 6)


def test_matrix_group_table():
    assert matrix_group("bert.encoder.layer.0.attention.output.dense", nn.Linear(2, 2)) == "attention_output"
    assert matrix_group("bert.encoder.layer.0.output.dense", nn.Linear(2, 2)) == "ffn_out"
    assert matrix_group("distilbert.transformer.layer.1.ffn.lin1", nn.Linear(2, 2)) == "ffn_in"
    assert matrix_group("albert.encoder.albert_layer_groups.0.albert_layers.0.ffn", nn.Linear(2, 2)) == "ffn_in"
    assert matrix_group("mpnet.encoder.layer.0.attention.attn.o", nn.Linear(2, 2)) == "attention_output"
    assert matrix_group("bert.embeddings.word_embeddings", nn.Embedding(3, 2)) == "word_embedding"
    assert matrix_group("bert.embeddings.word_embeddings", nn.Linear(3, 2)) is None
    assert matrix_group("classifier", nn.Linear(2, 2)) is None

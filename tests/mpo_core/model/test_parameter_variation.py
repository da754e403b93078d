import copy

import numpy as np
import pytest
import torch

from mpo_core.model.parameter_variation import BIN_LABELS, parameter_variation, variation_table

from ..tiny_models import tiny_model


def test_bins_match_a_controlled_change():
    before = tiny_model("bert")
    after = copy.deepcopy(before)
    with torch.no_grad():
        after.bert.embeddings.word_embeddings.weight[:10] += 5e-4  # 10 of 120 rows -> middle bin
        for layer in after.bert.encoder.layer:
            layer.intermediate.dense.weight += 2e-3  # all FFN-in weights -> last bin
    stats = parameter_variation(before, after)
    emb = stats["word_embedding"]
    assert emb.shares == pytest.approx((110 / 120, 10 / 120, 0.0))
    assert emb.unchanged_share == pytest.approx(110 / 120)
    ffn = stats["ffn"]
    ffn_in = sum(l.intermediate.dense.weight.numel() for l in before.bert.encoder.layer)
    ffn_all = ffn_in + sum(l.output.dense.weight.numel() for l in before.bert.encoder.layer)
    assert ffn.shares[2] == pytest.approx(ffn_in / ffn_all)
    assert stats["attention"].shares == (1.0, 0.0, 0.0)
    assert int(ffn.histogram_counts.sum()) == ffn_in
    table = variation_table(stats)
    assert list(table["group"]) == ["Word embedding", "Feed-forward", "Self-attention"]
    assert {f"ours {b}" for b in BIN_LABELS} <= set(table.columns)
    assert np.allclose(table[[f"ours {b}" for b in BIN_LABELS]].sum(axis=1), 1.0)


def test_mismatched_models_are_rejected():
    with pytest.raises(ValueError, match="differ in their matrices"):
        parameter_variation(tiny_model("bert"), tiny_model("distilbert"))


def test_relative_change_per_group_sees_mpo_layers_through_their_rebuilt_matrices():
    from mpo_core.model.mpo_config import MPOConfig
    from mpo_core.model.parameter_variation import matrix_snapshot, relative_change
    from mpo_core.model.surgery import apply_mpo, mpo_modules

    model = tiny_model("bert")
    before = matrix_snapshot(model)
    apply_mpo(model, MPOConfig())  # full bonds: exact, so nothing moved yet
    assert max(relative_change(before, model).values()) < 1e-5
    embedding = mpo_modules(model)["bert.embeddings.word_embeddings"]
    with torch.no_grad():
        embedding.tensors[0].mul_(1.5)  # the rebuilt table scales by 1.5: it moved by half its norm
    change = relative_change(before, model)
    assert change["word_embedding"] == pytest.approx(0.5, rel=1e-4)
    assert change["ffn"] < 1e-5 and change["attention"] < 1e-5
    with pytest.raises(ValueError, match="lacks matrices"):
        relative_change({"nowhere.dense": ("ffn", torch.zeros(2, 2))}, model)

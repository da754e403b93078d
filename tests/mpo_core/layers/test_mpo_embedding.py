import pytest
import torch
from torch import nn

import mpo_core.layers.mpo_embedding as embedding_module
import mpo_core.layers.mpo_module as mpo_module
from mpo_core import MPOEmbedding

from ...conftest import cuda


def make_embedding(rows=300, dim=24, padding_idx=None, dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Embedding(rows, dim, padding_idx=padding_idx).to(dtype)


@pytest.mark.parametrize("mode", ["dense", "chain", "auto"])
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_lookup_equals_dense_incl_gradients(mode, n, padding_idx):
    dense = make_embedding(padding_idx=padding_idx)
    layer = MPOEmbedding.from_embedding(dense, n=n, forward_mode=mode)
    ids = torch.tensor([[0, 5, 299, 5], [17, 0, 3, 3]])
    grad_out = torch.randn(2, 4, 24, dtype=torch.float64)
    out = layer(ids)
    assert torch.allclose(out, dense(ids), atol=1e-10)
    out.backward(grad_out)
    # the gradient reaching the tensors equals the one through the rebuilt table
    via_rows = [t.grad.clone() for t in layer.tensors]
    layer.zero_grad()
    nn.functional.embedding(ids, layer.weight, padding_idx).backward(grad_out)
    for a, b in zip(via_rows, [t.grad for t in layer.tensors]):
        assert torch.allclose(a, b, atol=1e-9)


def test_few_ids_never_build_the_table(monkeypatch):
    layer = MPOEmbedding.from_embedding(make_embedding(30522, 48, dtype=torch.float32))

    def fail(*args, **kwargs):
        raise AssertionError("the full table was built for a few ids")

    monkeypatch.setattr(mpo_module, "contract_to_matrix", fail)
    out = layer(torch.tensor([1, 30521, 7]))
    assert out.shape == (3, 48)


def test_round_trip_keeps_padding_idx():
    dense = make_embedding(padding_idx=1, dtype=torch.float32)
    back = MPOEmbedding.from_embedding(dense).to_embedding()
    assert back.padding_idx == 1 and torch.allclose(back.weight, dense.weight, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(TypeError, match="nn.Embedding"):
        MPOEmbedding.from_embedding(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="plain embeddings"):
        MPOEmbedding.from_embedding(nn.Embedding(10, 4, max_norm=1.0))
    layer = MPOEmbedding.from_embedding(make_embedding(), forward_mode="chain")
    with pytest.raises(TypeError, match="int64"):
        layer(torch.tensor([0.5]))
    with pytest.raises(IndexError):
        layer(torch.tensor([300]))


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_real_word_embedding_rows(word_embedding):
    dense = nn.Embedding.from_pretrained(word_embedding, freeze=False, padding_idx=0)
    layer = MPOEmbedding.from_embedding(dense, compression_ratio=0.1)
    assert sum(t.numel() for t in layer.tensors) <= 0.1 * word_embedding.numel()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    assert layer.uses_rows(4)
    rows = layer(ids)
    table = layer.weight.detach()
    assert torch.allclose(rows, table[ids], atol=1e-5)


@cuda
def test_cuda_embedding():
    dense = make_embedding(dtype=torch.float32).cuda()
    layer = MPOEmbedding.from_embedding(dense, forward_mode="chain")
    ids = torch.tensor([[1, 2, 299]], device="cuda")
    assert torch.allclose(layer(ids), dense(ids), atol=1e-4)


def test_no_grad_lookups_of_few_ids_do_not_build_the_table_but_reuse_a_cached_one(monkeypatch):
    layer = MPOEmbedding.from_embedding(make_embedding(30522, 48, dtype=torch.float32))
    with torch.no_grad():
        few = layer(torch.tensor([1, 2]))  # rows path: no table
        assert not layer.has_cached_weight()
        layer.forward_mode = "dense"
        table_rows = layer(torch.tensor([1, 2]))  # builds and caches the table
        assert layer.has_cached_weight()
        layer.forward_mode = "auto"
        monkeypatch.setattr(embedding_module, "gather_rows", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
        assert torch.allclose(layer(torch.tensor([1, 2])), few, atol=1e-5)  # served from the cache
    assert torch.allclose(table_rows, few, atol=1e-5)

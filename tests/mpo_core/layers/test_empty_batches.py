"""An empty batch (0 tokens or 0 ids) gives what ``nn.Linear`` / ``nn.Embedding`` give: an empty, correctly
shaped output, and a backward pass with zero gradients, on every contraction path."""
import pytest
import torch
from torch import nn

from mpo_core.layers.mpo_embedding import MPOEmbedding
from mpo_core.layers.mpo_linear import MPOLinear
from mpo_core.tensor.chain_plan import all_plans, plan_matmul
from mpo_core.tensor.contraction import chain_matmul, gather_rows
from mpo_core.tensor.shape import MPOShape

EMPTY_INPUTS = [(0,), (2, 0), (0, 0)]


def backward_matches(layer, dense, make_input):
    x, x_dense = make_input(), make_input()
    y, y_dense = layer(x), dense(x_dense)
    assert y.shape == y_dense.shape and y.dtype == y_dense.dtype
    y.sum().backward()
    y_dense.sum().backward()
    if x.is_floating_point():
        assert x.grad.shape == x_dense.grad.shape
    grads = [p.grad for p in layer.parameters() if p.requires_grad]
    assert grads and all(g is not None and not g.any() for g in grads)


@pytest.mark.parametrize("mode", ["auto", "chain", "dense"])
@pytest.mark.parametrize("lead", EMPTY_INPUTS)
@pytest.mark.parametrize("grad", [True, False])
def test_mpo_linear_on_an_empty_batch(mode, lead, grad):
    dense = nn.Linear(24, 10)
    layer = MPOLinear.from_linear(dense, n=3, forward_mode=mode)
    make = lambda: torch.zeros(*lead, 24, requires_grad=True)
    if grad:
        backward_matches(layer, dense, make)
    else:
        with torch.no_grad():
            assert layer(make()).shape == dense(make()).shape == (*lead, 10)


@pytest.mark.parametrize("mode", ["auto", "chain", "dense"])
@pytest.mark.parametrize("lead", EMPTY_INPUTS)
@pytest.mark.parametrize("grad", [True, False])
def test_mpo_embedding_on_no_ids(mode, lead, grad):
    dense = nn.Embedding(30, 12, padding_idx=0)
    layer = MPOEmbedding.from_embedding(dense, n=3, forward_mode=mode)
    make = lambda: torch.zeros(lead, dtype=torch.long)
    if grad:
        backward_matches(layer, dense, make)
    else:
        with torch.no_grad():
            assert layer(make()).shape == dense(make()).shape == (*lead, 12)


@pytest.mark.parametrize("plan", all_plans(3), ids=str)
def test_every_plan_sweeps_zero_tokens(plan):
    shape = MPOShape(7, 10, (2, 2, 2), (3, 2, 2))
    tensors = [torch.randn(d0, i, j, d1, requires_grad=True)
               for d0, i, j, d1 in [(1, 2, 3, 4), (4, 2, 2, 3), (3, 2, 2, 1)]]
    for chunk in (1 << 17, 1):
        y = plan_matmul(torch.zeros(0, 10), tensors, shape, plan, chunk)
        assert y.shape == (0, 7)
    assert chain_matmul(torch.zeros(5, 0, 10), tensors, shape).shape == (5, 0, 7)
    rows = gather_rows(torch.zeros(0, dtype=torch.long), tensors, shape)
    assert rows.shape == (0, 10)
    rows.sum().backward()
    assert all(t.grad is not None and not t.grad.any() for t in tensors)

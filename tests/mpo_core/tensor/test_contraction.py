import pytest
import torch

import mpo_core.tensor.contraction as contraction
from mpo_core import plan_shape
from mpo_core.tensor.contraction import chain_matmul, contract_to_matrix, gather_rows


def random_chain(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = (1, *shape.full_bond_dims, 1)
    return [torch.randn(d[k], i, j, d[k + 1], generator=gen, dtype=torch.float64, requires_grad=True)
            for k, (i, j) in enumerate(zip(shape.out_factors, shape.in_factors))]


@pytest.mark.parametrize("right_first", [True, False])
@pytest.mark.parametrize("dims, n", [((300, 24), 3), ((60, 200), 5), ((97, 31), 4), ((50, 40), 2), ((120, 64), 6)])
def test_gather_rows_both_orders_match_the_matrix(monkeypatch, dims, n, right_first):
    monkeypatch.setattr(contraction, "_core_first_from_right", lambda *a: right_first)
    shape = plan_shape(*dims, n=n)
    tensors = random_chain(shape)
    rows = torch.tensor([0, dims[0] - 1, 5, 5, 17])
    got = gather_rows(rows, tensors, shape)
    want = contract_to_matrix(tensors, shape)[rows]
    assert torch.allclose(got, want, atol=1e-10)
    grads = torch.autograd.grad(got.square().sum(), tensors)
    want_grads = torch.autograd.grad(want.square().sum(), tensors)
    assert all(torch.allclose(a, b, atol=1e-8) for a, b in zip(grads, want_grads))


def test_chain_matmul_matches_the_matrix():
    shape = plan_shape(37, 29, n=4)
    tensors = random_chain(shape, 1)
    x = torch.randn(3, 7, 29, dtype=torch.float64)
    assert torch.allclose(chain_matmul(x, tensors, shape), x @ contract_to_matrix(tensors, shape).T, atol=1e-9)

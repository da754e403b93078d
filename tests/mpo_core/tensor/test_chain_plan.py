"""Every contraction plan gives ``x @ W^T`` and its gradients, for any shape, n, bonds, dtype and chunking."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mpo_core.tensor.chain_plan import (
    ChainPlan, all_plans, merge_flops, merge_group, peak_state, plan_flops, plan_matmul, plan_steps, sweep_matmul,
    merge_plan,
)
from mpo_core.tensor.contraction import chain_flops, chain_matmul, contract_to_matrix, reconstruction_flops
from mpo_core.tensor.shape import MPOShape


@st.composite
def chains(draw):
    """A random chain: n in 2..5, factors 1..4, padding, bonds 1..5."""
    n = draw(st.integers(2, 5))
    out_f = tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    in_f = tuple(draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    out_features = draw(st.integers(max(1, math.prod(out_f) - 2), math.prod(out_f)))
    in_features = draw(st.integers(max(1, math.prod(in_f) - 2), math.prod(in_f)))
    bonds = tuple(draw(st.lists(st.integers(1, 5), min_size=n - 1, max_size=n - 1)))
    return MPOShape(out_features, in_features, out_f, in_f), bonds


def random_tensors(shape, bonds, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = (1, *bonds, 1)
    return [torch.randn(d[k], i, j, d[k + 1], generator=gen, dtype=dtype).requires_grad_()
            for k, (i, j) in enumerate(zip(shape.out_factors, shape.in_factors))]


@given(chains(), st.integers(1, 7), st.sampled_from([1 << 17, 7]))
def test_every_plan_matches_the_matrix_with_gradients(chain, tokens, chunk):
    shape, bonds = chain
    tensors = random_tensors(shape, bonds)
    x = torch.randn(tokens, shape.in_features, dtype=torch.float64, requires_grad=True)
    reference = x @ contract_to_matrix(tensors, shape).T
    grad_out = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, [x, *tensors], grad_out)
    for plan in all_plans(shape.n):
        y = plan_matmul(x, tensors, shape, plan, chunk_elements=chunk)
        assert torch.allclose(y, reference, atol=1e-10), plan
        for got, want in zip(torch.autograd.grad(y, [x, *tensors], grad_out), expected):
            assert torch.allclose(got, want, atol=1e-10), plan
        with torch.no_grad():  # the chunked path without autograd writes into one output
            assert torch.allclose(plan_matmul(x, tensors, shape, plan, chunk_elements=chunk), reference, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_low_precision_dtypes(dtype, tol):
    shape, bonds = MPOShape(24, 30, (2, 3, 4), (5, 3, 2)), (3, 4)
    tensors = [t.detach().to(dtype) for t in random_tensors(shape, bonds)]
    x = torch.randn(3, 5, 30, dtype=torch.float64).to(dtype)
    reference = (x.double() @ contract_to_matrix([t.double() for t in tensors], shape).T)
    for plan in all_plans(3):
        y = plan_matmul(x, tensors, shape, plan)
        assert y.dtype == dtype and y.shape == (3, 5, 24)
        assert (y.double() - reference).norm() / reference.norm() < tol, plan


def test_plans_of_n_tensors():
    assert len(all_plans(1)) == 1 and all_plans(1)[0].is_dense
    plans = all_plans(4)
    assert len(plans) == 2 * 2 ** 3 - 1 and len(set(plans)) == len(plans)  # dense once, every grouping both ways
    assert ChainPlan.dense(4) in plans and ChainPlan.chain(4, reverse=True) in plans
    assert str(ChainPlan(((0, 2), (2, 3)), reverse=True)) == "<-0,1|2" and str(ChainPlan.dense(3)) == "dense"
    with pytest.raises(ValueError, match="consecutive"):
        ChainPlan(((0, 2), (3, 4)))


def test_flops_steps_and_peak_follow_the_closed_forms():
    shape, bonds = MPOShape(48, 40, (4, 4, 3), (2, 5, 4)), (2, 3)
    i, j, d = shape.out_factors, shape.in_factors, (1, 2, 3, 1)
    right = sum(math.prod(j[:k + 1]) * math.prod(i[k:]) * d[k] * d[k + 1] for k in range(3))
    left = sum(math.prod(j[k:]) * math.prod(i[:k + 1]) * d[k] * d[k + 1] for k in range(3))
    assert plan_flops(10, shape, bonds, ChainPlan.chain(3)) == 2 * 10 * right
    assert plan_flops(10, shape, bonds, ChainPlan.chain(3, reverse=True)) == 2 * 10 * left
    assert chain_flops(10, shape, bonds) == 2 * 10 * min(left, right)
    assert plan_flops(10, shape, bonds, ChainPlan.dense(3)) == 2 * 10 * 48 * 40
    steps = plan_steps(shape, bonds, ChainPlan.chain(3))
    assert [(s.inner, s.cols) for s in steps] == [(j[2], i[2] * 3), (j[1] * 3, i[1] * 2), (j[0] * 2, i[0])]
    assert peak_state(shape, bonds, ChainPlan.chain(3)) == max(40, *(s.rows * s.cols for s in steps))
    grouped = ChainPlan(((0, 2), (2, 3)))
    assert merge_flops(shape, bonds, grouped) == 2 * (1 * 8) * 2 * 20 * 3
    assert merge_flops(shape, bonds, ChainPlan.chain(3)) == 0
    tensors = random_tensors(shape, bonds)
    assert merge_group(tensors[:2]).shape == (1, 16, 10, 3)
    assert reconstruction_flops(shape, bonds) > 0


def test_chain_matmul_takes_the_cheaper_end():
    shape, bonds = MPOShape(64, 8, (16, 4, 1), (1, 2, 4)), (2, 2)
    tensors = random_tensors(shape, bonds)
    x = torch.randn(5, 8, dtype=torch.float64)
    assert torch.allclose(chain_matmul(x, tensors, shape), x @ contract_to_matrix(tensors, shape).T, atol=1e-10)
    assert chain_flops(5, shape, bonds) == min(plan_flops(5, shape, bonds, ChainPlan.chain(3, r)) for r in (0, 1))


def test_merged_tensors_must_fit_the_plan():
    shape, bonds = MPOShape(24, 30, (2, 3, 4), (5, 3, 2)), (3, 4)
    tensors = random_tensors(shape, bonds)
    merged = merge_plan(tensors, ChainPlan(((0, 2), (2, 3))))
    with pytest.raises(ValueError, match="do not fit"):
        sweep_matmul(torch.zeros(1, 30, dtype=torch.float64), merged, shape, ChainPlan.chain(3))
    with pytest.raises(ValueError, match="covers 2 tensors"):
        merge_plan(tensors, ChainPlan(((0, 1), (1, 2))))
    with pytest.raises(ValueError, match="last dim"):
        sweep_matmul(torch.zeros(1, 29, dtype=torch.float64), merged, shape, ChainPlan(((0, 2), (2, 3))))

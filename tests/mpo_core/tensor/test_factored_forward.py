"""Each factored forward of Table 2 against ``x @ W'.T`` with ``W'`` rebuilt from the same factors."""
import math

import pytest
import tensorly as tl
import torch

from mpo_core import contract_to_matrix, matricize, plan_shape
from mpo_core.tensor.factored_forward import (
    cp_flops, cp_matmul, cp_peak_elements, dense_flops, mpo_flops, mpo_matmul, svd_flops, svd_matmul,
    tucker_flops, tucker_matmul, tucker_peak_elements,
)

# (out, in, n): balanced, wide, padded (primes), and the n=2 planned split
SHAPES = [(48, 40, 3), (24, 60, 4), (37, 29, 3), (30, 36, 5), (20, 12, 2)]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def cp_factors(shape, rank, seed=0):
    g = gen(seed)
    return [torch.randn(a, rank, generator=g, dtype=torch.float64) for a in shape.local_dims]


def tucker_parts(shape, ranks, seed=0):
    g = gen(seed)
    core = torch.randn(*ranks, generator=g, dtype=torch.float64)
    return core, [torch.randn(a, r, generator=g, dtype=torch.float64) for a, r in zip(shape.local_dims, ranks)]


def cp_matrix(factors, shape):
    with tl.backend_context("pytorch"):
        return matricize(tl.cp_to_tensor((torch.ones(factors[0].shape[1], dtype=factors[0].dtype), factors)), shape)


def tucker_matrix(core, factors, shape):
    with tl.backend_context("pytorch"):
        return matricize(tl.tucker_to_tensor((core, factors)), shape)


def inputs(shape, lead=(3, 5), seed=1):
    return torch.randn(*lead, shape.in_features, generator=gen(seed), dtype=torch.float64)


@pytest.mark.parametrize("out_f, in_f, n", SHAPES)
@pytest.mark.parametrize("rank", [1, 3, 7])
def test_cp_matmul_matches_the_rebuilt_matrix(out_f, in_f, n, rank):
    shape = plan_shape(out_f, in_f, n=n)
    factors = cp_factors(shape, rank)
    x = inputs(shape)
    y = cp_matmul(x, factors, shape)
    assert y.shape == (3, 5, out_f)
    assert torch.allclose(y, x @ cp_matrix(factors, shape).T, atol=1e-9)


@pytest.mark.parametrize("out_f, in_f, n", SHAPES)
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_tucker_matmul_matches_the_rebuilt_matrix(out_f, in_f, n, scale):
    shape = plan_shape(out_f, in_f, n=n)
    ranks = tuple(min(a, scale + k % 2) for k, a in enumerate(shape.local_dims))  # unequal ranks
    core, factors = tucker_parts(shape, ranks)
    x = inputs(shape)
    y = tucker_matmul(x, core, factors, shape)
    assert y.shape == (3, 5, out_f)
    assert torch.allclose(y, x @ tucker_matrix(core, factors, shape).T, atol=1e-9)


@pytest.mark.parametrize("out_f, in_f, n", SHAPES)
def test_mpo_matmul_matches_the_rebuilt_matrix(out_f, in_f, n):
    shape = plan_shape(out_f, in_f, n=n)
    d = (1, *(min(b, 3) for b in shape.full_bond_dims), 1)
    g = gen(2)
    tensors = [torch.randn(d[k], i, j, d[k + 1], generator=g, dtype=torch.float64)
               for k, (i, j) in enumerate(zip(shape.out_factors, shape.in_factors))]
    x = inputs(shape)
    assert torch.allclose(mpo_matmul(x, tensors, shape), x @ contract_to_matrix(tensors, shape).T, atol=1e-9)


@pytest.mark.parametrize("rank", [1, 4])
def test_svd_matmul_matches_the_product(rank):
    g = gen(3)
    left, right = torch.randn(20, rank, generator=g, dtype=torch.float64), torch.randn(rank, 12, generator=g,
                                                                                       dtype=torch.float64)
    x = torch.randn(6, 12, generator=g, dtype=torch.float64)
    assert torch.allclose(svd_matmul(x, left, right), x @ (left @ right).T, atol=1e-10)


def test_real_decompositions_forward_like_their_reconstruction(real_weights):
    """TensorLy's CP and Tucker of a real weight, and the MPO of Algorithm 1, through the factors."""
    from tensorly.decomposition import parafac, tucker

    from mpo_core import decompose, tensorize
    from mpo_core.tensor.truncation import truncate_to

    weight = next(w for w in real_weights.values() if w.shape == (384, 384))[:96, :64].double()
    shape = plan_shape(*weight.shape, n=3)
    x = torch.randn(10, 64, generator=gen(4), dtype=torch.float64)
    with tl.backend_context("pytorch"):
        weights, cp = parafac(tensorize(weight, shape), 5, n_iter_max=3, init="svd", random_state=0)
        core, factors = tucker(tensorize(weight, shape), [3, 4, 3], n_iter_max=3, init="svd", random_state=0)
    cp = [cp[0] * weights, *cp[1:]]
    assert torch.allclose(cp_matmul(x, cp, shape), x @ cp_matrix(cp, shape).T, atol=1e-9)
    assert torch.allclose(tucker_matmul(x, core, factors, shape), x @ tucker_matrix(core, factors, shape).T, atol=1e-9)
    mpo = truncate_to(decompose(weight, shape=shape), (4, 4)).mpo
    assert torch.allclose(mpo_matmul(x, mpo.tensors, shape), x @ mpo.to_matrix().T, atol=1e-9)


def test_flop_counts_follow_the_closed_forms():
    shape = plan_shape(48, 40, n=3)  # out (i_1, i_2, i_3), in (j_1, j_2, j_3)
    i, j = shape.out_factors, shape.in_factors
    per_token = i[0] * j[0] * j[1] * j[2] + i[0] * i[1] * j[1] * j[2] + i[0] * i[1] * i[2] * j[2]
    assert cp_flops(10, shape, 4) == 2 * 10 * 4 * per_token
    assert tucker_flops(1, shape, (1, 1, 1)) == 2 * (shape.local_dims[0] + per_token)
    assert svd_flops(10, 48, 40, 3) == 2 * 10 * 3 * 88
    assert dense_flops(10, 48, 40) == 2 * 10 * 48 * 40
    # the chain runs from its cheaper end: J_<=k I_>=k d_{k-1} d_k per step from the right, J_>=k I_<=k from the left
    from_right = j[0] * i[0] * i[1] * i[2] * 2 + j[0] * j[1] * i[1] * i[2] * 6 + j[0] * j[1] * j[2] * i[2] * 3
    from_left = j[0] * j[1] * j[2] * i[0] * 2 + j[1] * j[2] * i[0] * i[1] * 6 + j[2] * i[0] * i[1] * i[2] * 3
    assert from_left != from_right
    assert mpo_flops(10, shape, (2, 3)) == 2 * 10 * min(from_left, from_right)
    assert cp_peak_elements(shape, 2) == 2 * max(i[0] * j[1] * j[2], i[0] * i[1] * j[2], math.prod(i))
    assert tucker_peak_elements(shape, (2, 3, 4)) == max(i[0] * j[1] * j[2] * 12, i[0] * i[1] * j[2] * 4, math.prod(i))


def test_wrong_factors_are_reported():
    shape = plan_shape(48, 40, n=3)
    with pytest.raises(ValueError, match="one factor per mode"):
        cp_matmul(torch.zeros(2, 40), cp_factors(shape, 2)[:2], shape)
    core, factors = tucker_parts(shape, (2, 2, 2))
    with pytest.raises(ValueError, match="core shape"):
        tucker_matmul(torch.zeros(2, 40, dtype=torch.float64), core[:1], factors, shape)
    with pytest.raises(ValueError, match="expected"):
        tucker_matmul(torch.zeros(2, 40, dtype=torch.float64), core, [f.T for f in factors], shape)

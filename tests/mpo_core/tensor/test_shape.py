import math

import pytest
import torch
from hypothesis import given, strategies as st

from mpo_core import MPOShape, full_bond_dims, matricize, plan_factors, plan_shape, tensorize
from mpo_core.tensor.shape import tensor_sizes


@pytest.mark.parametrize("n", range(2, 10))
@pytest.mark.parametrize("dims", [(30522, 384), (384, 384), (1536, 384), (384, 1536), (512, 384), (2, 384)])
def test_planned_shape_covers_matrix_and_center_is_largest(dims, n):
    shape = plan_shape(*dims, n=n)
    rows, cols = shape.padded_shape
    assert rows >= dims[0] and cols >= dims[1]
    assert rows <= dims[0] * 1.25 + 8 and cols <= dims[1] * 1.25 + 8
    sizes = tensor_sizes(shape.local_dims, shape.full_bond_dims)
    assert sizes[shape.center] == max(sizes)


def test_word_embedding_is_padded_and_balanced():
    shape = plan_shape(30522, 384, n=5)
    assert shape.is_padded and shape.padded_shape[0] > 30522
    assert max(shape.out_factors) <= 2 * math.ceil(30522 ** 0.2)
    assert shape.center == 2
    sizes = tensor_sizes(shape.local_dims, shape.full_bond_dims)
    assert sum(sizes) - sizes[2] < 0.1 * sizes[2]  # auxiliary tensors are small


def test_well_factoring_dims_are_not_padded():
    assert math.prod(plan_factors(3072, 5)) == 3072
    assert math.prod(plan_factors(384, 5)) == 384


def test_full_bond_dims_follow_eq2():
    assert full_bond_dims((12, 16, 32, 24, 12)) == (12, 192, 288, 12)


@given(st.integers(1, 70), st.integers(1, 70), st.integers(2, 7), st.integers(0, 1000))
def test_tensorize_round_trip(rows, cols, n, seed):
    shape = plan_shape(rows, cols, n=n)
    m = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    t = tensorize(m, shape)
    assert tuple(t.shape) == shape.local_dims
    assert torch.equal(matricize(t, shape), m)


def test_explicit_factors_are_used_and_validated():
    shape = plan_shape(3072, 768, n=5, out_factors=(4, 4, 8, 6, 4), in_factors=(3, 4, 4, 4, 4))
    assert shape.full_bond_dims == (12, 192, 384, 16)  # the reference code's table
    with pytest.raises(ValueError, match="multiply to"):
        plan_shape(3072, 768, out_factors=(4, 4, 8, 6, 3), in_factors=(3, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="same length"):
        MPOShape(6, 6, (2, 3), (2, 3, 1))
    with pytest.raises(ValueError, match="positive ints"):
        MPOShape(6, 6, (2, 0, 3), (2, 3, 1))


@pytest.mark.parametrize("bad_n", [1, 0, -3])
def test_n_below_two_is_rejected(bad_n):
    with pytest.raises(ValueError, match="at least 2"):
        plan_shape(10, 10, n=bad_n)
    with pytest.raises(TypeError):
        plan_shape(10, 10, n=2.5)


def test_n_is_taken_from_explicit_factors_and_checked():
    assert plan_shape(24, 16, out_factors=(4, 6), in_factors=(4, 4)).n == 2
    with pytest.raises(ValueError, match="n=5 but the factors"):
        plan_shape(24, 16, n=5, out_factors=(4, 6), in_factors=(4, 4))


def test_n2_plans_the_truncated_svd():
    shape = plan_shape(30522, 384, n=2)
    assert (shape.out_factors, shape.in_factors) == ((30522, 1), (1, 384))
    assert shape.full_bond_dims == (384,) and not shape.is_padded

import math

import pytest
import torch
from hypothesis import given, strategies as st

from mpo_core import (
    clip_bond_dims,
    compression_ratio,
    decompose,
    frobenius_error,
    parameter_split,
    sequential_svd,
    truncate,
    truncation_error_bound,
)
from mpo_core.tensor.contraction import contract_to_matrix, contract_to_tensor
from mpo_core.tensor.truncation_error import local_truncation_errors

from ..strategies import matrices


@st.composite
def truncation_cases(draw):
    matrix, n = draw(matrices())
    mpo = decompose(matrix, n=n)
    dims = tuple(draw(st.integers(1, d)) for d in mpo.full_bond_dims)
    return matrix, mpo, dims


@given(truncation_cases())
def test_truncation_equals_algorithm1_run_with_those_bond_dims(case):
    matrix, mpo, dims = case
    truncated = truncate(mpo, dims).mpo.to_matrix()
    tensors, _ = sequential_svd(matrix, dims, shape=mpo.shape)
    reference = contract_to_matrix(tensors, mpo.shape, center=mpo.n - 1)
    assert float((truncated - reference).norm()) <= 1e-8 * (float(matrix.norm()) + 1e-30)


@given(truncation_cases())
def test_bound_always_holds(case):
    matrix, mpo, dims = case
    result = truncate(mpo, dims)
    error = frobenius_error(matrix, result.mpo.to_matrix())
    assert error <= result.error_bound * (1 + 1e-7) + 1e-9
    assert result.error_bound == pytest.approx(truncation_error_bound(mpo, dims))
    paper = truncation_error_bound(mpo, dims, form="paper")
    assert paper >= result.error_bound - 1e-9  # the printed form is looser


@given(truncation_cases(), st.data())
def test_single_bond_bound_equals_true_error(case, data):
    matrix, mpo, _ = case
    k = data.draw(st.integers(0, mpo.n - 2))
    dims = list(mpo.full_bond_dims)
    dims[k] = data.draw(st.integers(1, dims[k]))
    result = truncate(mpo, dims)
    error = frobenius_error(matrix, result.mpo.to_matrix())
    if mpo.shape.is_padded:  # the approximation may spill into the zero padding
        assert error <= result.error_bound * (1 + 1e-7) + 1e-9
    else:
        assert error == pytest.approx(result.error_bound, rel=1e-6, abs=1e-9)


@given(truncation_cases())
def test_ratio_formula_is_actual_parameter_count(case):
    matrix, mpo, dims = case
    result = truncate(mpo, dims)
    actual = result.mpo.num_params / matrix.numel()
    assert compression_ratio(mpo.shape, dims) == pytest.approx(actual)
    split = parameter_split(mpo.shape, dims, mpo.center)
    assert split.central == result.mpo.central_tensor.numel()
    assert split.auxiliary == sum(t.numel() for t in result.mpo.auxiliary_tensors)


@given(truncation_cases())
def test_truncated_mpo_is_canonical_with_its_own_spectra(case):
    matrix, mpo, dims = case
    result = truncate(mpo, dims).mpo
    rebuilt = contract_to_tensor(result.tensors, result.center)  # padded: spill included
    a = mpo.shape.local_dims
    for k, values in enumerate(result.singular_values):
        unfolding = rebuilt.reshape(math.prod(a[: k + 1]), -1)
        reference = torch.linalg.svdvals(unfolding)[: values.shape[0]]
        assert torch.allclose(values, reference, atol=1e-7 * float(matrix.norm()) + 1e-12)


@given(matrices(max_dim=40), st.sampled_from([0.05, 0.2, 0.5, 0.9]))
def test_truncate_to_ratio_meets_target(case, ratio):
    matrix, n = case
    mpo = decompose(matrix, n=n)
    result = truncate(mpo, compression_ratio=ratio)
    achieved = result.mpo.num_params / matrix.numel()
    assert achieved <= ratio or all(d == 1 for d in result.requested_bond_dims)


@given(matrices(max_dim=40), st.sampled_from([0.0, 0.05, 0.3, 0.8]))
def test_truncate_to_error_meets_target(case, target):
    matrix, n = case
    mpo = decompose(matrix, n=n)
    result = truncate(mpo, max_error=target, relative=True)
    assert result.error_bound <= target * float(matrix.norm()) * (1 + 1e-9) + 1e-12
    assert frobenius_error(matrix, result.mpo.to_matrix()) <= result.error_bound * (1 + 1e-7) + 1e-9


def test_full_bonds_lose_nothing():
    matrix = torch.randn(30, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mpo = decompose(matrix, n=4)
    result = truncate(mpo, mpo.full_bond_dims)
    assert result.error_bound == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(result.mpo.to_matrix(), matrix, atol=1e-10)


def test_discarded_values_and_local_errors_agree():
    matrix = torch.randn(48, 36, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mpo = decompose(matrix, n=3)
    dims = (3, 4)
    result = truncate(mpo, dims)
    for eps, tail in zip(result.local_errors, result.discarded_singular_values):
        assert eps == pytest.approx(float(tail.norm()))
    assert result.local_errors == pytest.approx(local_truncation_errors(mpo, dims))


@pytest.mark.parametrize("name", ["encoder.layer.0.attention.self.query.weight", "encoder.layer.5.output.dense.weight"])
def test_real_weights_bound_and_single_bond_equality(real_weights, name):
    weight = real_weights[name]
    mpo = decompose(weight, n=5)
    full = mpo.full_bond_dims
    dims = tuple(max(1, d // 3) for d in full)
    result = truncate(mpo, dims)
    assert frobenius_error(weight, result.mpo.to_matrix()) <= result.error_bound * (1 + 1e-5)
    single = list(full)
    single[mpo.center] = full[mpo.center] // 4
    one = truncate(mpo, single)
    assert frobenius_error(weight, one.mpo.to_matrix()) == pytest.approx(one.error_bound, rel=1e-4)
    assert compression_ratio(mpo.shape, dims) == pytest.approx(result.mpo.num_params / weight.numel())


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_word_embedding_truncation(word_embedding):
    mpo = decompose(word_embedding, n=5)
    result = truncate(mpo, compression_ratio=0.1)
    assert result.mpo.num_params <= 0.1 * word_embedding.numel()
    error = frobenius_error(word_embedding, result.mpo.to_matrix())
    assert 0 < error <= result.error_bound * (1 + 1e-5)


@given(matrices(), st.data())
def test_n2_truncation_is_the_eckart_young_svd(case, data):
    matrix, _ = case
    mpo = decompose(matrix, n=2)
    rank = data.draw(st.integers(1, mpo.full_bond_dims[0]))
    singular_values = torch.linalg.svdvals(matrix)
    result = truncate(mpo, (rank,))
    optimum = float(singular_values[rank:].norm())
    assert frobenius_error(matrix, result.mpo.to_matrix()) == pytest.approx(optimum, rel=1e-6, abs=1e-9)
    assert result.error_bound == pytest.approx(optimum, rel=1e-6, abs=1e-9)


def test_eq5_and_eq6_helpers_validate_bond_dims():
    from mpo_core import entanglement_entropy

    mpo = decompose(torch.randn(24, 36, dtype=torch.float64), n=3)
    for bad in [(0, 1), (1,), (mpo.full_bond_dims[0] + 1, 1)]:
        with pytest.raises(ValueError):
            compression_ratio(mpo.shape, bad)
        with pytest.raises(ValueError):
            entanglement_entropy(mpo, bad)


def test_redundant_bonds_left_of_center_are_compressed():
    # requested bonds wider than their right neighbour can carry (regression). The greedy allocator
    # requests such bonds ((4, 12, 1, 8, 2) here); the optimal one only requests consistent ones.
    matrix = torch.randn(60, 40, generator=torch.Generator().manual_seed(0))
    result = truncate(decompose(matrix, n=6), compression_ratio=0.1, allocator="greedy")
    assert result.mpo.num_params <= 0.1 * matrix.numel()
    assert result.mpo.bond_dims == clip_bond_dims(result.mpo.shape, result.requested_bond_dims)
    tensors, _ = sequential_svd(matrix, result.requested_bond_dims, shape=result.mpo.shape)
    reference = contract_to_matrix(tensors, result.mpo.shape, center=5)
    assert torch.allclose(result.mpo.to_matrix(), reference, atol=1e-5)

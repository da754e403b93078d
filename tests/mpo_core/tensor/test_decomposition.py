import math

import pytest
import torch
from hypothesis import given

from mpo_core import decompose, sequential_svd, tensorize
from mpo_core.tensor.contraction import contract_to_matrix

from ..strategies import matrices


def unfolding_singular_values(matrix, shape, k):
    t = tensorize(matrix.double(), shape)
    return torch.linalg.svdvals(t.reshape(math.prod(shape.local_dims[: k + 1]), -1))


def assert_canonical(mpo, tol):
    for k, t in enumerate(mpo.tensors):
        if k < mpo.center:
            m = t.reshape(-1, t.shape[-1]).double()
            assert torch.allclose(m.T @ m, torch.eye(m.shape[1], dtype=torch.float64), atol=tol)
        elif k > mpo.center:
            m = t.reshape(t.shape[0], -1).double()
            assert torch.allclose(m @ m.T, torch.eye(m.shape[0], dtype=torch.float64), atol=tol)


@given(matrices(dtypes=(torch.float64, torch.float32)))
def test_exact_reconstruction_canonical_form_and_spectra(case):
    matrix, n = case
    mpo = decompose(matrix, n=n)
    tol = 1e-10 if matrix.dtype == torch.float64 else 1e-5
    scale = float(matrix.double().norm())
    assert float((mpo.to_matrix().double() - matrix.double()).norm()) <= tol * scale + 1e-12
    assert mpo.bond_dims == mpo.full_bond_dims  # Eq. (2)
    assert_canonical(mpo, 100 * tol)
    for k, values in enumerate(mpo.singular_values):
        reference = unfolding_singular_values(matrix, mpo.shape, k)
        assert torch.allclose(values[: reference.shape[0]], reference, atol=1e-6 * max(scale, 1e-30) + 1e-12)


@given(matrices())
def test_algorithm1_verbatim_is_exact(case):
    matrix, n = case
    mpo = decompose(matrix, n=n)
    tensors, _ = sequential_svd(matrix, shape=mpo.shape)
    rebuilt = contract_to_matrix(tensors, mpo.shape, center=n - 1)
    assert torch.allclose(rebuilt, matrix, atol=1e-10)


@pytest.mark.slow  # > 2 s in the fast subset (issue 27)
def test_real_weights_reconstruct_within_1e5(real_weights, word_embedding):
    for name, weight in {**real_weights, "word_embeddings": word_embedding}.items():
        mpo = decompose(weight, n=5)
        error = float((mpo.to_matrix().double() - weight.double()).norm() / weight.double().norm())
        assert error <= 1e-5, name
        assert mpo.dtype == torch.float32


def test_real_weight_spectra_match_direct_svd(real_weights):
    weight = real_weights["encoder.layer.3.intermediate.dense.weight"]
    mpo = decompose(weight, n=5)
    for k, values in enumerate(mpo.singular_values):
        reference = unfolding_singular_values(weight, mpo.shape, k)
        assert torch.allclose(values, reference, rtol=0, atol=1e-5 * float(reference[0]))


@pytest.mark.parametrize("n", [2, 3, 5, 7, 9])
def test_any_n_from_2_to_9(n):
    matrix = torch.randn(96, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    mpo = decompose(matrix, n=n)
    assert mpo.n == n and len(mpo.singular_values) == n - 1
    assert torch.allclose(mpo.to_matrix(), matrix, atol=1e-10)

"""Nearest Kronecker product of a second moment over the input digits."""
import pytest
import torch

from mpo_core.tensor.kronecker import kronecker_product, nearest_kronecker


def _spd(size, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=g, dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(size, dtype=torch.float64)


@pytest.mark.parametrize("factors", [(3, 4), (2, 3, 2), (2, 2, 2, 2)])
def test_exact_when_the_moment_is_a_kronecker_product(factors):
    parts = [_spd(f, k) for k, f in enumerate(factors)]
    sigma = kronecker_product(parts)
    scale, found = nearest_kronecker(sigma, factors)
    assert torch.allclose(scale * kronecker_product(found), sigma, atol=1e-10 * float(sigma.norm()))


def test_factors_stay_positive_definite_and_fit_no_worse_than_the_start():
    sigma = _spd(24, 7)
    scale, found = nearest_kronecker(sigma, (2, 3, 4))
    for f in found:
        assert float(torch.linalg.eigvalsh(f).min()) > 0
    start_scale, start = nearest_kronecker(sigma, (2, 3, 4), sweeps=0)
    fit = float((scale * kronecker_product(found) - sigma).norm())
    assert fit <= float((start_scale * kronecker_product(start) - sigma).norm()) + 1e-9


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="multiply to"):
        nearest_kronecker(torch.eye(6, dtype=torch.float64), (2, 2))

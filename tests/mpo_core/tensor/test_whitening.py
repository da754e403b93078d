"""Whitened SVD: the closed form, its error on the data, and its optimality among rank-r matrices."""
import pytest
import torch

from mpo_core.tensor.whitening import (damped, scaled_svd, whitened_error, whitened_svd, whitening_factor)


def _case(seed=0, out=40, inp=24, tokens=300):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g, dtype=torch.float64)
    mix = torch.randn(inp, inp, generator=g, dtype=torch.float64) * torch.linspace(0.1, 3, inp, dtype=torch.float64)
    x = torch.randn(tokens, inp, generator=g, dtype=torch.float64) @ mix  # correlated, uneven inputs
    return w, x


@pytest.mark.parametrize("rank", [1, 5, 12])
def test_whitened_svd_equals_closed_form_and_its_error_is_the_output_error_on_the_data(rank):
    w, x = _case()
    sigma = x.T @ x
    result = whitened_svd(w, sigma, rank, damping=0)
    s = torch.linalg.cholesky(sigma)
    u, lam, vh = torch.linalg.svd(w @ s, full_matrices=False)
    closed = u[:, :rank] @ torch.diag(lam[:rank]) @ vh[:rank] @ torch.linalg.inv(s)
    assert torch.allclose(result.to_matrix(), closed, atol=1e-9 * float(w.norm()))
    on_data = float((x @ (w - result.to_matrix()).T).norm())  # ||X (W - W')^T||_F
    assert result.error == pytest.approx(on_data, rel=1e-9)
    assert result.error == pytest.approx(float(lam[rank:].square().sum().sqrt()), rel=1e-9)


def test_whitened_svd_beats_plain_svd_and_asvd_on_the_data_error():
    w, x = _case(1)
    sigma = x.T @ x
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    plain = whitened_error(w, (u[:, :6] * s[:6]) @ vh[:6], sigma)
    ours = whitened_svd(w, sigma, 6, damping=0).error
    asvd = scaled_svd(w, sigma, 6).error
    assert ours < plain and ours <= asvd + 1e-9


def test_whitening_factor_is_a_cholesky_factor_of_the_damped_moment_even_when_singular():
    _, x = _case(2, inp=24, tokens=10)  # 10 tokens, 24 inputs: X^T X is singular
    sigma = x.T @ x
    s = whitening_factor(sigma)
    assert torch.allclose(s @ s.T, damped(sigma), atol=1e-8 * float(sigma.diagonal().mean()))
    assert torch.equal(s, torch.tril(s))


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.full((4, 4), float("nan")), -torch.eye(4)])
def test_bad_second_moments_are_clear_errors(bad):
    w = torch.randn(5, 4)
    with pytest.raises(ValueError, match="second moment"):
        whitened_svd(w, bad, 2)


def test_rank_is_checked():
    with pytest.raises(ValueError, match="rank must be an integer"):
        whitened_svd(torch.randn(5, 4), torch.eye(4), 5)

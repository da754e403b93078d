"""Calibrated MPO truncation: Kronecker whitening, ALS refinement, canonical form kept."""
import pytest
import torch

from mpo_core.tensor.als_refinement import refine
from mpo_core.tensor.calibrated_truncation import calibrated_truncate, whiten
from mpo_core.tensor.compress import compress_matrix
from mpo_core.tensor.decomposition import decompose
from mpo_core.tensor.kronecker import kronecker_product
from mpo_core.tensor.shape import plan_shape
from mpo_core.tensor.truncation import truncate_to
from mpo_core.tensor.whitening import whitened_error, whitened_svd


def _case(seed=0, out=36, inp=24, tokens=400):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inp, generator=g, dtype=torch.float64)
    scale = torch.linspace(0.2, 4, inp, dtype=torch.float64)
    x = (torch.randn(tokens, inp, generator=g, dtype=torch.float64) * scale) @ torch.randn(inp, inp, generator=g,
                                                                                          dtype=torch.float64)
    return w, x.T @ x


def _assert_canonical(mpo):
    for k in range(mpo.center):
        t = mpo.tensors[k].double().reshape(-1, mpo.tensors[k].shape[-1])
        assert torch.allclose(t.T @ t, torch.eye(t.shape[1], dtype=t.dtype), atol=1e-8)
    for k in range(mpo.center + 1, mpo.n):
        t = mpo.tensors[k].double().reshape(mpo.tensors[k].shape[0], -1)
        assert torch.allclose(t @ t.T, torch.eye(t.shape[0], dtype=t.dtype), atol=1e-8)
    for k, s in enumerate(mpo.singular_values):  # the cached spectra are the matrix's own
        unfolded = torch.linalg.svdvals(_unfold(mpo, k + 1))
        assert torch.allclose(s, unfolded[: len(s)], atol=1e-8 * float(unfolded[0]))


def _unfold(mpo, k):
    from mpo_core.tensor.contraction import contract_to_tensor
    a = mpo.shape.local_dims
    flat = contract_to_tensor([t.double() for t in mpo.tensors], mpo.center)
    left = 1
    for x in a[:k]:
        left *= x
    return flat.reshape(left, -1)


def test_n2_svd_plan_is_the_whitened_svd():
    w, sigma = _case()
    shape = plan_shape(*w.shape, n=2)
    ours = calibrated_truncate(w, sigma, shape=shape, bond_dims=(7,), damping=0)
    closed = whitened_svd(w, sigma, 7, damping=0)
    assert ours.error == pytest.approx(closed.error, rel=1e-8)
    assert torch.allclose(ours.mpo.to_matrix(), closed.to_matrix(), atol=1e-8 * float(w.norm()))


@pytest.mark.parametrize("n", [3, 4])
def test_kronecker_route_is_exact_when_the_moment_is_a_kronecker_product(n):
    """Then the whitened truncation is optimal in the data metric: it equals truncating W S exactly."""
    w, _ = _case(1)
    shape = plan_shape(*w.shape, n=n)
    g = torch.Generator().manual_seed(3)
    parts = []
    for f in shape.in_factors:
        a = torch.randn(f, f, generator=g, dtype=torch.float64)
        parts.append(a @ a.T + torch.eye(f, dtype=torch.float64))
    sigma = kronecker_product(parts)
    whitened = whiten(w, sigma, shape, damping=0)
    dims = tuple(max(1, d // 2) for d in whitened.mpo.bond_dims)
    ours = calibrated_truncate(w, sigma, shape=shape, bond_dims=dims, damping=0, whitened=whitened)
    # W S truncated with the same dims (Algorithm 1) and multiplied back by S^{-1}: the same matrix
    s = torch.linalg.cholesky(sigma)
    cut = truncate_to(decompose(w @ s, out_factors=shape.out_factors, in_factors=shape.in_factors), dims).mpo
    expected = cut.to_matrix() @ torch.linalg.inv(s)
    assert torch.allclose(ours.mpo.to_matrix(), expected, atol=1e-7 * float(w.norm()))
    assert ours.error <= ours.kronecker_bound * (1 + 1e-9)  # Eq. (4) holds in the (here exact) data metric


@pytest.mark.parametrize("n", [3, 5])
def test_als_never_increases_the_error_keeps_bonds_and_canonical_form(n):
    w, sigma = _case(2, out=32, inp=32)
    shape = plan_shape(*w.shape, n=n)
    start = compress_matrix(w, n=n, compression_ratio=0.3)
    result = refine(start, w, sigma, sweeps=3, cg_steps=4)
    errors = result.errors
    assert all(b <= a * (1 + 1e-12) for a, b in zip(errors, errors[1:]))
    assert errors[-1] < errors[0]
    assert errors[0] == pytest.approx(whitened_error(w, start.to_matrix(), sigma), rel=1e-9)
    assert errors[-1] == pytest.approx(whitened_error(w, result.mpo.to_matrix(), sigma), rel=1e-7)
    assert result.mpo.bond_dims == start.bond_dims and result.mpo.center == start.center
    _assert_canonical(result.mpo)


def test_calibration_beats_plain_truncation_on_the_data_error_at_equal_parameters():
    w, sigma = _case(4, out=32, inp=32)
    plain = compress_matrix(w, n=3, compression_ratio=0.4)
    kron = calibrated_truncate(w, sigma, n=3, compression_ratio=0.4)
    als = calibrated_truncate(w, sigma, n=3, compression_ratio=0.4, sweeps=2)
    assert kron.num_params <= 0.4 * w.numel() and als.num_params == kron.num_params
    assert als.error <= kron.error * (1 + 1e-9)
    assert als.error < whitened_error(w, plain.to_matrix(), sigma)
    _assert_canonical(als.mpo)


def test_padded_inputs_are_handled():
    w, sigma = _case(5, out=20, inp=23)  # 23 is prime: padded to a factorable width
    shape = plan_shape(20, 23, n=3)
    assert shape.is_padded
    result = calibrated_truncate(w, sigma, shape=shape, compression_ratio=0.5, sweeps=1)
    assert result.mpo.to_matrix().shape == (20, 23)
    assert result.error == pytest.approx(whitened_error(w, result.mpo.to_matrix(), sigma), rel=1e-9)


def test_one_target_exactly():
    w, sigma = _case()
    with pytest.raises(ValueError, match="exactly one"):
        calibrated_truncate(w, sigma, n=3)
    with pytest.raises(ValueError, match="sweeps must be"):
        calibrated_truncate(w, sigma, n=3, compression_ratio=0.5, sweeps=-1)


def test_row_weights_give_the_row_weighted_svd_for_n2_and_a_valid_mpo_for_more_tensors():
    g = torch.Generator().manual_seed(6)
    w = torch.randn(60, 12, generator=g, dtype=torch.float64)
    weights = torch.rand(60, generator=g, dtype=torch.float64) * 10 + 0.1
    ours = calibrated_truncate(w, row_weights=weights, n=2, bond_dims=(4,))
    root = weights.sqrt()[:, None]
    u, s, vh = torch.linalg.svd(root * w, full_matrices=False)
    expected = (u[:, :4] * s[:4]) @ vh[:4] / root
    assert torch.allclose(ours.mpo.to_matrix(), expected, atol=1e-9 * float(w.norm()))
    assert ours.error == pytest.approx(float((weights * (w - expected).square().sum(1)).sum().sqrt()), rel=1e-9)
    five = calibrated_truncate(w, row_weights=weights, n=3, compression_ratio=0.5)
    assert five.mpo.to_matrix().shape == (60, 12) and five.num_params <= 0.5 * w.numel()
    _assert_canonical(five.mpo)
    with pytest.raises(ValueError, match="sweeps=0"):
        calibrated_truncate(w, row_weights=weights, n=3, compression_ratio=0.5, sweeps=1)

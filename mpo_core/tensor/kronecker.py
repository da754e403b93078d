"""The nearest Kronecker product of a second moment over an MPO's input factors.

The MPO splits the input index ``j`` into digits ``j_1 .. j_n`` (row-major:
``j = ((j_1 J_2 + j_2) J_3 + ...)``), one per local tensor. A second moment
``Sigma`` (``J x J``) mixes all digits; its nearest Kronecker product

    Sigma  ~  c * Sigma_1 (x) Sigma_2 (x) ... (x) Sigma_n,        Sigma_k  (j_k x j_k)

is the best rank-1 term of ``Sigma`` rearranged so that each digit pair
``(j_k, j'_k)`` becomes one index (Van Loan & Pitsianis): a bond-1 MPO of the
rearranged tensor, found by alternating sweeps (higher-order power
iteration) started from the partial traces. For a positive semi-definite
``Sigma`` every iterate stays positive semi-definite (each update is a partial
trace of ``Sigma`` against positive factors), so every ``Sigma_k`` has a
Cholesky factor. Exact when ``Sigma`` is a Kronecker product.

References
----------
.. [1] Van Loan and Pitsianis, "Approximation with Kronecker Products",
   in Linear Algebra for Large Scale and Real-Time Applications (1993).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

DEFAULT_SWEEPS = 8
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _contract_others(tensor: torch.Tensor, factors: Sequence[torch.Tensor], keep: int) -> torch.Tensor:
    """``sum over all digits but keep of Sigma[j, j'] prod_{m != keep} factors[m][j_m, j'_m]``: ``(j_k, j_k)``.

    One digit pair at a time (each step shrinks the tensor by ``j_m^2``), not one n-operand einsum.
    """
    n = len(factors)
    labels = list(range(2 * n))  # which (row m / column n + m) digit each axis of t still is
    t = tensor
    for m in range(n):
        if m == keep:
            continue
        t = torch.tensordot(t, factors[m], dims=([labels.index(m), labels.index(n + m)], [0, 1]))
        labels = [x for x in labels if x not in (m, n + m)]
    return t


def nearest_kronecker(second_moment: torch.Tensor, in_factors: Sequence[int],
                      sweeps: int = DEFAULT_SWEEPS) -> tuple[float, tuple[torch.Tensor, ...]]:
    """``(c, (Sigma_1, .., Sigma_n))`` with ``c Sigma_1 (x) .. (x) Sigma_n`` nearest to ``Sigma`` in Frobenius norm.

    Parameters
    ----------
    second_moment:
        Symmetric positive semi-definite ``(J, J)``, ``J = prod(in_factors)``.
    in_factors:
        The input digits ``j_1 .. j_n`` of the MPO.
    sweeps:
        Alternating sweeps over the factors (the rank-1 fit converges in a few).

    Returns
    -------
    (scale, factors):
        Each factor is symmetric, float64, with unit Frobenius norm; ``scale >= 0``.
    """
    factors_shape = tuple(int(f) for f in in_factors)
    size = math.prod(factors_shape)
    if tuple(second_moment.shape) != (size, size):
        raise ValueError(f"the second moment is {tuple(second_moment.shape)} but the input factors "
                         f"{factors_shape} multiply to {size}.")
    n = len(factors_shape)
    tensor = second_moment.double().reshape(*factors_shape, *factors_shape)  # (j_1..j_n, j'_1..j'_n)
    eyes = [torch.eye(f, dtype=torch.float64, device=tensor.device) for f in factors_shape]
    factors = [_contract_others(tensor, eyes, k) for k in range(n)]  # partial traces: the start
    factors = [f / f.norm().clamp_min(1e-300) for f in factors]
    for _ in range(sweeps if n > 1 else 1):
        for k in range(n):
            update = _contract_others(tensor, factors, k)
            update = (update + update.T) / 2
            factors[k] = update / update.norm().clamp_min(1e-300)
    scale = float(_contract_others(tensor, factors, 0).mul(factors[0]).sum()) if n > 0 else 0.0
    return max(scale, 0.0), tuple(factors)


def nearest_outer_product(weights: torch.Tensor, factors: Sequence[int],
                          sweeps: int = DEFAULT_SWEEPS) -> tuple[torch.Tensor, ...]:
    """Positive vectors ``w_1 .. w_n`` with ``w_1 (x) .. (x) w_n`` nearest to ``weights`` (a diagonal's Kronecker fit).

    The diagonal case of :func:`nearest_kronecker`, for a weight per row (the word
    embedding's token counts): ``weights`` reshaped to ``(i_1, .., i_n)`` and fitted
    by a rank-1 tensor, started from the marginal sums. ``weights`` must be positive;
    the scale is folded into the first vector.
    """
    shape = tuple(int(f) for f in factors)
    if weights.dim() != 1 or weights.numel() != math.prod(shape):
        raise ValueError(f"{weights.numel()} row weights for factors {shape} multiplying to {math.prod(shape)}.")
    if not bool((weights > 0).all()) or not bool(torch.isfinite(weights).all()):
        raise ValueError("row weights must be positive and finite (add a floor for rows no token reached).")
    tensor = weights.double().reshape(shape)
    n = len(shape)
    dims = list(range(n))
    vectors = [tensor.sum(dim=[m for m in dims if m != k]) if n > 1 else tensor for k in range(n)]
    vectors = [v / v.norm() for v in vectors]
    letters = _LETTERS[:n]

    def others(keep: int | None) -> torch.Tensor:  # the tensor contracted with every vector but ``keep``
        terms = [letters] + [letters[m] for m in dims if m != keep]
        out = "" if keep is None else letters[keep]
        return torch.einsum(",".join(terms) + "->" + out, tensor, *(vectors[m] for m in dims if m != keep))

    for _ in range(sweeps if n > 1 else 0):
        for k in range(n):
            update = others(k)
            vectors[k] = update / update.norm()
    scale = others(None)
    vectors[0] = vectors[0] * float(scale)
    return tuple(v.clamp_min(1e-300) for v in vectors)


def kronecker_product(factors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``factors[0] (x) factors[1] (x) ...`` as a dense matrix (for tests and small checks)."""
    out = factors[0]
    for factor in factors[1:]:
        out = torch.kron(out, factor)
    return out


__all__ = ["kronecker_product", "nearest_kronecker", "nearest_outer_product"]

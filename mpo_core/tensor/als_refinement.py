"""Alternating least squares at fixed bond dims: an MPO refined for the data-aware error.

The data-aware error (:mod:`~mpo_core.tensor.whitening`)

    L(T_0 .. T_{n-1}) = tr((W - W') Sigma (W - W')^T),     W' = contraction of the chain

is quadratic in each local tensor ``T_k`` with the others fixed:
``W' = A_k(T_k)`` is linear, with ``A_k(V) = L_k V R_k`` (the left block of
``T_0..T_{k-1}`` and the right block of ``T_{k+1}..``). One ALS update solves

    min_V  tr((W - A_k V) Sigma (W - A_k V)^T),     normal equations  2 A_k^*(A_k(V) Sigma) = 2 A_k^*(W Sigma)

whose normal matrix, ``(d_{k-1} i_k j_k d_k)^2`` entries for each output digit
block, is far too large to form for the central tensor of an FFN matrix. It is
solved matrix-free by conjugate gradients started at the current ``T_k``: each
CG step applies ``A_k``, ``Sigma`` and ``A_k^*`` once (``O(I J^2)`` for the
``Sigma`` product), and CG on a convex quadratic decreases it at every step, so
**L never increases** (a step that rounding made worse is rejected).

Sweeps run left to right and back, moving the orthogonality centre with the
update (QR of the updated tensor, ``R`` pushed into the next one: the matrix is
unchanged), so the environment of each update is an isometry in the plain
metric and the local problem is as well conditioned as ``Sigma`` itself. At
the end the chain is brought back to mixed-canonical form around its centre
with Schmidt bases (:func:`~mpo_core.tensor.canonical.canonicalize`), so the
spectra the engine caches are those of the refined matrix.

::

        L_k (A_L, d_{k-1})      V (d_{k-1}, i_k j_k, d_k)      R_k (d_k, A_R)
    W' = [T_0 .. T_{k-1}] ----------- [ T_k ] ----------- [T_{k+1} .. T_{n-1}]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .canonical import canonicalize
from .contraction import _left_block, _right_block
from .mpo import MPO
from .shape import matricize, tensorize

DEFAULT_SWEEPS = 2
DEFAULT_CG_STEPS = 6


@dataclass(frozen=True, eq=False)
class Refinement:
    """Result of :func:`refine`.

    Attributes
    ----------
    mpo:
        The refined MPO (same bond dims, canonical, own spectra).
    errors:
        The data-aware error ``sqrt(L)`` at the start and after each sweep (non-increasing).
    updates:
        Local updates made; ``rejected`` of them were undone because rounding made them worse.
    """

    mpo: MPO
    errors: tuple[float, ...]
    updates: int
    rejected: int

    @property
    def error(self) -> float:
        return self.errors[-1]


class _Environment:
    """``A_k`` and its adjoint for one tensor position, with the blocks beside it contracted once."""

    def __init__(self, chain: list[torch.Tensor], k: int, mpo: MPO):
        self.k, self.shape = k, mpo.shape
        self.core_shape = chain[k].shape  # (d_{k-1}, i_k, j_k, d_k)
        d_prev, i, j, d = self.core_shape
        self.left = _left_block(chain, k) if k > 0 else None  # (A_L, d_{k-1})
        self.right = _right_block(chain, k + 1) if k < len(chain) - 1 else None  # (d_k, A_R)
        self.a_left = 1 if self.left is None else self.left.shape[0]
        self.a = i * j

    def apply(self, core: torch.Tensor) -> torch.Tensor:
        """``A_k(core)``: the ``(out, in)`` matrix of the chain with ``core`` at position k."""
        d_prev, _, _, d = self.core_shape
        block = core.reshape(d_prev, -1)  # (d_{k-1}, a_k d_k)
        if self.left is not None:
            block = self.left @ block  # (A_L, a_k d_k)
        block = block.reshape(-1, d)  # (A_L a_k, d_k)
        if self.right is not None:
            block = block @ self.right  # (A_L a_k, A_R)
        return matricize(block.reshape(self.shape.local_dims), self.shape)

    def adjoint(self, matrix: torch.Tensor) -> torch.Tensor:
        """``A_k^*(matrix)``: the gradient of ``<A_k(V), matrix>`` in ``V``, shaped like the core."""
        d_prev, i, j, d = self.core_shape
        t = tensorize(matrix, self.shape).reshape(self.a_left, -1)  # (A_L, a_k A_R)
        if self.left is not None:
            t = self.left.T @ t  # (d_{k-1}, a_k A_R)
        t = t.reshape(d_prev * self.a, -1)  # (d_{k-1} a_k, A_R)
        if self.right is not None:
            t = t @ self.right.T  # (d_{k-1} a_k, d_k)
        return t.reshape(self.core_shape)


def _times_sigma(matrix: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``matrix @ Sigma``: the one O(I J^2) product of each step."""
    return matrix @ sigma  # (out, in)


def _loss(residual: torch.Tensor, sigma: torch.Tensor) -> tuple[float, torch.Tensor]:
    """``(tr(D Sigma D^T), D Sigma)`` for the residual ``D = W' - W`` (the trace summed in float64)."""
    product = _times_sigma(residual, sigma)
    return float((product * residual).sum(dtype=torch.float64)), product


def _conjugate_gradient(env: _Environment, gradient: torch.Tensor, sigma: torch.Tensor, steps: int):
    """Approximately solve ``H p = -gradient`` with ``H(v) = 2 A^*(A(v) Sigma)``, from ``p = 0``."""
    step = torch.zeros_like(gradient)
    r = -gradient
    direction = r.clone()
    rr = float((r * r).sum(dtype=torch.float64))
    start = rr
    for _ in range(steps):
        if rr <= 1e-24 * max(start, 1e-300):
            break
        h = 2 * env.adjoint(_times_sigma(env.apply(direction), sigma))
        curvature = float((direction * h).sum(dtype=torch.float64))
        if curvature <= 0:
            break
        alpha = rr / curvature
        step = step + alpha * direction
        r = r - alpha * h
        rr_next = float((r * r).sum(dtype=torch.float64))
        direction = r + (rr_next / rr) * direction
        rr = rr_next
    return step


def _move_right(chain: list[torch.Tensor], k: int) -> None:
    """QR of ``T_k`` (left-orthonormal), ``R`` into ``T_{k+1}``: the matrix is unchanged."""
    d_prev, i, j, d = chain[k].shape
    q, r = torch.linalg.qr(chain[k].reshape(d_prev * i * j, d))
    chain[k] = q.reshape(d_prev, i, j, -1)
    nxt = chain[k + 1]
    chain[k + 1] = (r @ nxt.reshape(d, -1)).reshape(r.shape[0], *nxt.shape[1:])


def _move_left(chain: list[torch.Tensor], k: int) -> None:
    """QR of ``T_k^T`` (right-orthonormal), ``R^T`` into ``T_{k-1}``."""
    d_prev, i, j, d = chain[k].shape
    q, r = torch.linalg.qr(chain[k].reshape(d_prev, i * j * d).T)
    chain[k] = q.T.reshape(-1, i, j, d)
    prev = chain[k - 1]
    chain[k - 1] = (prev.reshape(-1, d_prev) @ r.T).reshape(*prev.shape[:-1], r.shape[0])


def _centered(mpo: MPO, position: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """The chain in ``dtype`` with its orthogonality centre moved from ``mpo.center`` to ``position``."""
    chain = [t.detach().to(dtype) for t in mpo.tensors]
    for k in range(mpo.center, position):
        _move_right(chain, k)
    for k in range(mpo.center, position, -1):
        _move_left(chain, k)
    return chain


def refine(mpo: MPO, matrix: torch.Tensor, second_moment: torch.Tensor, *, sweeps: int = DEFAULT_SWEEPS,
           cg_steps: int = DEFAULT_CG_STEPS, progress: Callable[[int, int], None] | None = None) -> Refinement:
    """ALS sweeps at fixed bond dims lowering ``tr((W - W') Sigma (W - W')^T)`` (module docstring).

    Parameters
    ----------
    mpo:
        A canonical MPO of ``matrix`` (e.g. a truncation of it); its bond dims are kept.
    matrix:
        The original ``(out, in)`` matrix ``W``.
    second_moment:
        ``Sigma`` (``in x in``, symmetric positive semi-definite), e.g. damped ``X^T X``.
    sweeps:
        Sweeps left to right and back (0 returns the MPO unchanged).
    cg_steps:
        Conjugate-gradient steps per local update.
    progress:
        Called with ``(sweep, sweeps)`` after each sweep.

    Returns
    -------
    Refinement
        The refined MPO and the error after each sweep.
    """
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or not 0 <= sweeps <= 100:
        raise ValueError(f"sweeps must be an integer in 0..100, got {sweeps!r}.")
    if isinstance(cg_steps, bool) or not isinstance(cg_steps, int) or not 1 <= cg_steps <= 1000:
        raise ValueError(f"cg_steps must be an integer in 1..1000, got {cg_steps!r}.")
    if tuple(matrix.shape) != (mpo.shape.out_features, mpo.shape.in_features):
        raise ValueError(f"the MPO is of a {mpo.shape.out_features}x{mpo.shape.in_features} matrix, "
                         f"not of {tuple(matrix.shape)}.")
    # a float32 MPO is refined in float32 (about 2x faster; every trace is summed in float64 and each accepted
    # update lowers the loss as computed), a float64 one in float64
    work = torch.float32 if mpo.dtype in (torch.float32, torch.float16, torch.bfloat16) else torch.float64
    target = matrix.detach().to(device=mpo.device, dtype=work)
    sigma = second_moment.to(device=mpo.device, dtype=work)
    chain = _centered(mpo, 0, work)
    env = _Environment(chain, 0, mpo)
    loss, product = _loss(env.apply(chain[0]) - target, sigma)
    errors, updates, rejected = [max(loss, 0.0) ** 0.5], 0, 0
    n = mpo.n
    order = list(range(n)) + list(range(n - 2, 0, -1)) if n > 1 else [0]
    for sweep in range(sweeps):
        for position, k in enumerate(order):
            env = _Environment(chain, k, mpo)
            gradient = 2 * env.adjoint(product)
            candidate = chain[k] + _conjugate_gradient(env, gradient, sigma, cg_steps)
            new_loss, new_product = _loss(env.apply(candidate) - target, sigma)
            updates += 1
            if new_loss <= loss:
                chain[k], loss, product = candidate, new_loss, new_product
            else:
                rejected += 1
            nxt = order[position + 1] if position + 1 < len(order) else 0
            if nxt > k:
                _move_right(chain, k)
            elif nxt < k:
                _move_left(chain, k)
        errors.append(max(loss, 0.0) ** 0.5)
        if progress is not None:
            progress(sweep + 1, sweeps)
    if sweeps:
        for k in range(0, mpo.center):  # the chain's centre is at 0 after a full sweep: back to mpo.center
            _move_right(chain, k)
        tensors, values = canonicalize(chain, mpo.center)
        mpo = MPO(tuple(t.to(mpo.dtype) for t in tensors), mpo.shape, values, mpo.center)
    return Refinement(mpo, tuple(errors), updates, rejected)


__all__ = ["DEFAULT_CG_STEPS", "DEFAULT_SWEEPS", "Refinement", "refine"]

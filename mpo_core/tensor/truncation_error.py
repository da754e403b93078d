"""Local truncation errors and the total error bound: Eq. (3) and Eq. (4).

We implement the tight Frobenius form::

    eps_k = sqrt( sum_{i > d'_k} lambda_{k,i}^2 )          (Eq. (3), Frobenius form)
    ||M - MPO'(M)||_F <= sqrt( sum_k eps_k^2 )             (Eq. (4))

where ``lambda_{k,i}`` are the singular values of the matrix unfolded at bond
k, i.e. ``eps_k`` is the error of the best rank-``d'_k`` approximation of that
unfolding. This is the bound of Oseledets (2011, Thm. 2.2) for the
sequential-SVD truncation of Algorithm 1, and with a single truncated bond it
is an equality. The paper prints ``eps_k = sum_{i} lambda_i`` over the
discarded values (no squares, no root): since
``sum_i lambda_i >= sqrt(sum_i lambda_i^2)`` that form is a looser, still
valid, bound; ``form="paper"`` returns it for comparison.

With zero padding the approximation may spill into the padded rows/columns;
the error on the original matrix is then at most the bound, and may be below
it even for a single truncated bond.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .compression import check_bond_dims
from .mpo import MPO

FORMS = ("frobenius", "paper")


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}.")


def local_truncation_errors(mpo: MPO, bond_dims: Sequence[int], form: str = "frobenius") -> tuple[float, ...]:
    """Eq. (3): the error ``eps_k`` of cutting bond k of ``mpo`` to ``bond_dims[k]``.

    Uses the cached spectra only (microseconds; the matrix is never touched).
    """
    _check_form(form)
    dims = check_bond_dims(mpo.shape, bond_dims)
    if form == "frobenius":
        tails = mpo.tail_energies
        return tuple(math.sqrt(max(float(tails[k][min(d, len(tails[k]) - 1)]), 0.0)) for k, d in enumerate(dims))
    return tuple(float(s[d:].sum()) for s, d in zip(mpo.singular_values, dims))


def truncation_error_bound(mpo: MPO, bond_dims: Sequence[int], form: str = "frobenius") -> float:
    """Eq. (4): ``sqrt(sum_k eps_k^2)``, an upper bound of ``||M - M'||_F``."""
    return math.sqrt(sum(e * e for e in local_truncation_errors(mpo, bond_dims, form)))


def frobenius_error(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    """``||reference - approximation||_F`` accumulated in float64."""
    return float((reference.double() - approximation.double()).norm())

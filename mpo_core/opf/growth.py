"""Over-parameterization: MPO shapes whose full-bond tensors hold ``growth`` times a matrix.

OPF (Gao et al., ACL 2023) trains an exact MPO in place of a weight ``W``
``(I, J)``; its local tensors hold more entries than ``W``. As in the
reference code, the shapes are a two-site split with ``m`` trivial middle
sites (physical dimensions ``i_k = j_k = 1``)::

         I_0       1             1        I_1
          |        |             |         |
    1 --[T_1]--d--[E_1]--d ...--[E_m]--d--[T_n]-- 1         n = m + 2
          |        |             |         |
         J_0       1             1        J_1

``A_0 = I_0 J_0`` and ``A_1 = I_1 J_1 = IJ / A_0`` are the two local
dimensions; every full bond of Eq. (2) is ``d = min(A_0, A_1)``, so each
middle tensor is a ``d x d`` matrix (+-identity after decomposition) and the
parameter count and growth are::

    P      = d (A_0 + A_1) + m d^2
    growth = P / (IJ) = 1 + (m + 1) r,      r = min(A_0, A_1) / max(A_0, A_1) <= 1

Achievable precision. ``r = 1`` needs ``A_0 = sqrt(IJ)`` to be a product of
a divisor of ``I`` and one of ``J``: always true for square matrices
(``I_0 = I, J_0 = 1``) and for BERT's ``(4h, h)`` shapes (``sqrt(IJ) = 2h``).
Then every integer growth ``2..max_tensors`` is exact. Any other growth gets
the nearest ``1 + (m + 1) A_0^2 / (IJ)`` over all divisor splits and ``m``:
for widths 384 and 768 (and their 4x FFN shapes) every growth in ``[1, 30]``
is met within 2.6% (0.8% below 2); for 512 within 5.3%, since its divisors
are powers of two and ``r`` only takes powers of 1/4 (checked in
``tests/mpo_core/opf/test_growth.py``). Dimensions with few divisors (primes)
give coarser steps; :func:`growth_of` tells the growth met.
"""
from __future__ import annotations

import math
from fractions import Fraction

from ..tensor.shape import full_bond_dims, tensor_sizes
from ..tensor.validation import check_num_tensors, check_number, check_positive_ints

MAX_TENSORS = 32  # n <= 32: the reference uses 15; longer chains only add d x d identities


def check_growth(growth) -> float:
    """Check an over-parameterization factor: a finite number >= 1."""
    check_number("growth", growth)
    if growth < 1:
        raise ValueError(
            f"growth must be >= 1, got {growth}: over-parameterization adds parameters "
            "(use a compression strategy such as mpo_lfa to remove them)."
        )
    return float(growth)


def growth_of(out_factors, in_factors) -> float:
    """Full-bond (Eq. (2)) MPO parameters per matrix entry: ``sum_k d_{k-1} i_k j_k d_k / (IJ)``."""
    out_f = check_positive_ints(out_factors, "out_factors")
    in_f = check_positive_ints(in_factors, "in_factors")
    if len(out_f) != len(in_f):
        raise ValueError(f"out_factors {out_f} and in_factors {in_f} must have the same length.")
    check_num_tensors(len(out_f))
    local = tuple(i * j for i, j in zip(out_f, in_f))
    return sum(tensor_sizes(local, full_bond_dims(local))) / math.prod(local)


def _divisors(dim: int) -> list[int]:
    return [k for k in range(1, dim + 1) if dim % k == 0]


def _splits(out_features: int, in_features: int):
    """Two-site splits ``(I_0, J_0, I_1, J_1)`` whose sites both carry an index (``A_0, A_1 >= 2``)."""
    for i0 in _divisors(out_features):
        for j0 in _divisors(in_features):
            i1, j1 = out_features // i0, in_features // j0
            if i0 * j0 >= 2 and i1 * j1 >= 2:
                yield i0, j0, i1, j1


def _params(i0: int, j0: int, i1: int, j1: int, m: int) -> int:
    """``P = d (A_0 + A_1) + m d^2`` of the module docstring."""
    a0, a1 = i0 * j0, i1 * j1
    d = min(a0, a1)
    return d * (a0 + a1) + m * d * d


def _nearest_counts(split: tuple[int, int, int, int], target: float, max_m: int) -> set[int]:
    """The middle-site counts ``m`` around ``(target - P(m=0)) / d^2``: ``P`` is linear in ``m``."""
    step = min(split[0] * split[1], split[2] * split[3]) ** 2  # d^2
    below = math.floor((target - _params(*split, 0)) / step)
    return {min(max(k, 0), max_m) for k in (below, below + 1)}


def _imbalance(i0: int, j0: int, i1: int, j1: int) -> Fraction:
    """How far each site is from square (1 = both square); exact, so ties stay deterministic."""
    return Fraction(max(i0, j0), min(i0, j0)) * Fraction(max(i1, j1), min(i1, j1))


def plan_growth_factors(
    out_features: int, in_features: int, growth: float, max_tensors: int = MAX_TENSORS,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(out_factors, in_factors)`` whose full-bond MPO holds about ``growth * I * J`` entries.

    Searches every two-site split of exact divisors and every number of
    middle ``(1, 1)`` sites up to ``max_tensors`` tensors in all (module
    docstring), and returns the one with the parameter count closest to
    ``growth * I * J``; ties go to fewer tensors, then to square sites, then
    to the larger site first (as the reference's ``[32, 1, ..., 24]``).

    Parameters
    ----------
    out_features, in_features:
        The matrix shape ``(I, J)`` (PyTorch layout).
    growth:
        Wanted parameter factor, ``>= 1``; ``1`` gives the lossless split
        closest to the matrix's own size.
    max_tensors:
        Longest chain allowed (``n <= max_tensors``).

    Returns
    -------
    tuple
        ``((I_0, 1, ..., 1, I_1), (J_0, 1, ..., 1, J_1))``; :func:`growth_of` gives the growth met.

    Raises
    ------
    ValueError
        For growth < 1, a matrix without a two-site split (``IJ`` prime or 1),
        or a growth beyond what ``max_tensors`` tensors reach.
    """
    growth = check_growth(growth)
    size = check_positive_ints((out_features, in_features), "(out_features, in_features)")
    if check_num_tensors(max_tensors) > MAX_TENSORS:
        raise ValueError(f"max_tensors must be at most {MAX_TENSORS}, got {max_tensors}.")
    target = growth * math.prod(size)
    max_m = max_tensors - 2
    splits = list(_splits(*size))
    if not splits:
        raise ValueError(f"a {size[0]}x{size[1]} matrix has no two-site MPO split (I*J must not be 1 or prime).")
    largest = max(_params(*split, max_m) for split in splits)
    if target > largest:
        raise ValueError(
            f"growth {growth} is out of reach for a {size[0]}x{size[1]} matrix: at most "
            f"{largest / math.prod(size):.3f}x with {max_tensors} tensors; choose a smaller growth."
        )
    candidates = [(split, m) for split in splits for m in _nearest_counts(split, target, max_m)]
    (i0, j0, i1, j1), m = min(candidates, key=lambda c: (
        abs(_params(*c[0], c[1]) - target), c[1], _imbalance(*c[0]), -c[0][0] * c[0][1], -c[0][0]))
    return (i0, *(1,) * m, i1), (j0, *(1,) * m, j1)

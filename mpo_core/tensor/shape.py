"""Shape planning: how a matrix is tensorized into an MPO.

A weight ``W`` of shape ``(out_features, in_features)`` (PyTorch layout) is
padded with zero rows/columns to ``(I, J)``, ``I = prod(out_factors)``,
``J = prod(in_factors)``, and regrouped into an n-way tensor whose k-th index
is the pair ``(i_k, j_k)`` of local dimension ``a_k = i_k * j_k``::

    W[i_1..i_n, j_1..j_n]  ->  T[(i_1 j_1), (i_2 j_2), ..., (i_n j_n)]

The MPO is then a chain of local tensors ``T_k[d_{k-1}, i_k, j_k, d_k]``::

        i_1        i_2        i_3        i_4        i_5
         |          |          |          |          |
    1 --[T_1]--d_1--[T_2]--d_2--[ C ]--d_3--[T_4]--d_4--[T_5]-- 1
         |          |          |          |          |
        j_1        j_2        j_3        j_4        j_5

with full bond dimensions given by Eq. (2). The planner picks factors that
are balanced, with the largest ones in the middle so that the central tensor
``C`` holds most parameters and the auxiliary tensors stay small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from .validation import check_num_tensors, check_positive_int, check_positive_ints

DEFAULT_NUM_TENSORS = 5
# A factorization "factors badly" when its largest factor exceeds this many
# times the balanced root dim ** (1 / n); the dim is then zero-padded.
BALANCE_LIMIT = 2.0
MAX_PADDING_FRACTION = 0.25
#: explicit factors may pad a dimension ``size`` to at most ``MAX_PADDED_FACTOR * size + PADDING_SLACK``
#: (checked before anything is allocated: a huge product would otherwise allocate the padded matrix)
MAX_PADDED_FACTOR, PADDING_SLACK = 2, 16


def full_bond_dims(local_dims: tuple[int, ...]) -> tuple[int, ...]:
    """Full bond dimensions of Eq. (2): ``d_k = min(prod_{m<=k} a_m, prod_{m>k} a_m)``.

    Returns the ``n - 1`` inner bonds (the boundary bonds ``d_0 = d_n = 1``
    are implicit).
    """
    total = math.prod(local_dims)
    dims, left = [], 1
    for a in local_dims[:-1]:
        left *= a
        dims.append(min(left, total // left))
    return tuple(dims)


def tensor_sizes(local_dims: tuple[int, ...], bond_dims: tuple[int, ...]) -> tuple[int, ...]:
    """Number of entries of each local tensor ``d_{k-1} * a_k * d_k``."""
    bonds = (1, *bond_dims, 1)
    return tuple(bonds[k] * a * bonds[k + 1] for k, a in enumerate(local_dims))


def balanced_factors(dim: int, n: int) -> tuple[int, ...]:
    """Split ``dim`` into ``n`` factors as evenly as possible (descending order).

    Greedy number partitioning on log scale: each prime factor, largest
    first, goes to the currently smallest factor. Factors of 1 appear when
    ``dim`` has fewer than ``n`` prime factors.
    """
    primes, rest, p = [], dim, 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    factors = [1] * n
    for prime in sorted(primes, reverse=True):
        smallest = min(range(n), key=lambda k: factors[k])
        factors[smallest] *= prime
    return tuple(sorted(factors, reverse=True))


def _factors_well(dim: int, n: int) -> tuple[int, ...] | None:
    factors = balanced_factors(dim, n)
    limit = max(2, math.ceil(BALANCE_LIMIT * dim ** (1.0 / n)))
    return factors if factors[0] <= limit else None


def plan_factors(dim: int, n: int = DEFAULT_NUM_TENSORS) -> tuple[int, ...]:
    """Balanced factors (descending) of ``dim`` or of the smallest padded ``dim' >= dim``.

    ``30522`` (a prime times 6) factors badly and is padded, e.g. for n=5 to
    ``30576 = 13 * 8 * 7 * 7 * 6``.
    """
    check_num_tensors(n)
    check_positive_int("a matrix dimension", dim)
    for padded in range(dim, dim + max(8, int(dim * MAX_PADDING_FRACTION)) + 1):
        factors = _factors_well(padded, n)
        if factors is not None:
            return factors
    return balanced_factors(dim, n)  # unreachable in practice: powers of 2 are near


def _placement(n: int, center: int, lean: int) -> list[int]:
    """Positions ordered by distance to ``center``; ties broken towards ``lean`` (+1/-1)."""
    return sorted(range(n), key=lambda p: (abs(p - center), 0 if (p - center) * lean > 0 else 1))


def arrange_factors(row_factors: tuple[int, ...], col_factors: tuple[int, ...]):
    """Place descending factors with the largest in the middle.

    Rows lean right and columns lean left so that the products on both sides
    of the center stay balanced.
    """
    n = len(row_factors)
    center = (n - 1) // 2
    rows, cols = [1] * n, [1] * n
    for f, pos in zip(row_factors, _placement(n, center, +1)):
        rows[pos] = f
    for f, pos in zip(col_factors, _placement(n, center, -1)):
        cols[pos] = f
    return tuple(rows), tuple(cols)


@dataclass(frozen=True)
class MPOShape:
    """How a ``(out_features, in_features)`` matrix maps onto an n-tensor MPO.

    Attributes
    ----------
    out_features, in_features:
        Size of the original matrix (PyTorch layout: rows are outputs).
    out_factors:
        ``i_1..i_n``; their product ``I >= out_features`` (extra rows are zero padding).
    in_factors:
        ``j_1..j_n``; their product ``J >= in_features`` (extra columns are zero padding).
    """

    out_features: int
    in_features: int
    out_factors: tuple[int, ...]
    in_factors: tuple[int, ...]

    def __post_init__(self):
        for name in ("out_features", "in_features"):
            check_positive_int(name, getattr(self, name))
        out_f = check_positive_ints(self.out_factors, "out_factors")
        in_f = check_positive_ints(self.in_factors, "in_factors")
        object.__setattr__(self, "out_factors", out_f)
        object.__setattr__(self, "in_factors", in_f)
        if len(out_f) != len(in_f):
            raise ValueError(
                f"out_factors {out_f} and in_factors {in_f} must have the same length n "
                "(one pair (i_k, j_k) per local tensor)."
            )
        check_num_tensors(len(out_f))
        for name, factors, size in (
            ("out_factors", out_f, self.out_features),
            ("in_factors", in_f, self.in_features),
        ):
            if math.prod(factors) > MAX_PADDED_FACTOR * size + PADDING_SLACK:
                raise ValueError(
                    f"{name} {factors} multiply to {math.prod(factors)}, more than the {MAX_PADDED_FACTOR * size + PADDING_SLACK} "
                    f"allowed for the matrix dimension {size} ({MAX_PADDED_FACTOR}x + {PADDING_SLACK} of padding); "
                    f"choose factors whose product is {size} "
                    "(or a little larger, to zero-pad), e.g. from plan_shape()."
                )
            if math.prod(factors) < size:
                raise ValueError(
                    f"{name} {factors} multiply to {math.prod(factors)}, less than the "
                    f"matrix dimension {size}; choose factors whose product is {size} "
                    "(or larger, to zero-pad), e.g. from plan_shape()."
                )

    @property
    def n(self) -> int:
        """Number of local tensors."""
        return len(self.out_factors)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(I, J)``: the matrix size after zero padding."""
        return math.prod(self.out_factors), math.prod(self.in_factors)

    @property
    def is_padded(self) -> bool:
        return self.padded_shape != (self.out_features, self.in_features)

    @property
    def local_dims(self) -> tuple[int, ...]:
        """``a_k = i_k * j_k``, the physical dimension of each local tensor."""
        return tuple(i * j for i, j in zip(self.out_factors, self.in_factors))

    @cached_property
    def full_bond_dims(self) -> tuple[int, ...]:
        """Eq. (2) bond dimensions, the ranks of an exact MPO."""
        return full_bond_dims(self.local_dims)

    @cached_property
    def center(self) -> int:
        """Index of the central tensor: the largest at full bonds, ties broken towards the middle."""
        sizes = tensor_sizes(self.local_dims, self.full_bond_dims)
        middle = (self.n - 1) / 2
        return max(range(self.n), key=lambda k: (sizes[k], -abs(k - middle)))

    @property
    def num_matrix_params(self) -> int:
        """Entries of the original (unpadded) matrix: the denominator of Eq. (5)."""
        return self.out_features * self.in_features


def svd_factors(out_features: int, in_features: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The n=2 factors whose MPO is the truncated SVD: ``(out, 1)`` and ``(1, in)``.

    The unfolding at the only bond is then the matrix itself, so the MPO is
    its SVD (MPOP, Sec. 4.4: "SVD ... is a special case of MPO when n = 2").
    """
    return (out_features, 1), (1, in_features)


def plan_shape(
    out_features: int,
    in_features: int,
    n: int | None = None,
    out_factors=None,
    in_factors=None,
) -> MPOShape:
    """Plan an :class:`MPOShape` for a ``(out_features, in_features)`` matrix.

    Parameters
    ----------
    out_features, in_features:
        Matrix size.
    n:
        Number of local tensors: taken from explicit factors when given, else
        5 (the papers' choice). ``n=2`` plans the truncated SVD (see
        :func:`svd_factors`); pass explicit factors for another 2-tensor split.
    out_factors, in_factors:
        Optional explicit factors (validated); planned automatically when ``None``.
    """
    given = [len(tuple(f)) for f in (out_factors, in_factors) if f is not None]
    if n is None:
        n = given[0] if given else DEFAULT_NUM_TENSORS
    check_num_tensors(n)
    if any(g != n for g in given):
        raise ValueError(
            f"n={n} but the factors given have length {given}; give n factors per dimension "
            "(or leave n out to take it from the factors)."
        )
    if n == 2 and out_factors is None and in_factors is None:
        out_factors, in_factors = svd_factors(out_features, in_features)
    rows = plan_factors(out_features, n) if out_factors is None else None
    cols = plan_factors(in_features, n) if in_factors is None else None
    if rows is not None or cols is not None:
        placed_rows, placed_cols = arrange_factors(rows or (1,) * n, cols or (1,) * n)
        out_factors = placed_rows if out_factors is None else out_factors
        in_factors = placed_cols if in_factors is None else in_factors
    return MPOShape(out_features, in_features, tuple(out_factors), tuple(in_factors))


def tensorize(matrix: torch.Tensor, shape: MPOShape) -> torch.Tensor:
    """Pad and regroup ``matrix`` into the n-way tensor ``(a_1, ..., a_n)``."""
    padded_rows, padded_cols = shape.padded_shape
    rows, cols = matrix.shape
    if (rows, cols) != (shape.out_features, shape.in_features):
        raise ValueError(
            f"matrix of shape {(rows, cols)} does not match the planned shape "
            f"{(shape.out_features, shape.in_features)}; plan the shape for this matrix."
        )
    if (rows, cols) != (padded_rows, padded_cols):
        matrix = torch.nn.functional.pad(matrix, (0, padded_cols - cols, 0, padded_rows - rows))
    n = shape.n
    t = matrix.reshape(*shape.out_factors, *shape.in_factors)  # (i_1..i_n, j_1..j_n)
    order = [p for k in range(n) for p in (k, n + k)]
    return t.permute(order).reshape(shape.local_dims)  # (a_1, ..., a_n)


def matricize(tensor: torch.Tensor, shape: MPOShape) -> torch.Tensor:
    """Inverse of :func:`tensorize`: back to ``(out_features, in_features)``, padding removed."""
    n = shape.n
    pairs = [f for k in range(n) for f in (shape.out_factors[k], shape.in_factors[k])]
    t = tensor.reshape(pairs)  # (i_1, j_1, ..., i_n, j_n)
    order = list(range(0, 2 * n, 2)) + list(range(1, 2 * n, 2))
    matrix = t.permute(order).reshape(shape.padded_shape)
    return matrix[: shape.out_features, : shape.in_features]

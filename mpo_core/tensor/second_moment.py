"""The second moment ``X^T X`` of a matrix's inputs, computed by blocks of its upper triangle.

``X^T X`` is symmetric, so only the blocks on and above the diagonal are
multiplied; the rest is their transpose. With ``n`` features in ``b``-wide
blocks that is ``k (k + 1) / 2`` of ``k^2`` block products (``k = ceil(n / b)``):
5/8 of the work for 1536 features in blocks of 256 (BLAS has ``syrk`` for this,
torch does not expose it)::

    X^T X = [ A  B  C ]      computed: A B C / D E / F
            [ .  D  E ]      filled in: the lower triangle = upper^T
            [ .  .  F ]
"""
from __future__ import annotations

import torch

#: features per block: wide enough for efficient products, narrow enough to skip most of the lower half
GRAM_BLOCK = 256


def upper_gram_blocks(rows: torch.Tensor, block: int = GRAM_BLOCK) -> list[tuple[int, torch.Tensor]]:
    """The upper block rows of ``rows^T rows``: ``[(start, (rows^T rows)[start:start + block, start:])]``.

    ``rows`` has shape ``(N, n)``; block ``(start, B)`` has shape ``(min(block, n - start), n - start)``.
    Nothing below the diagonal blocks is computed or allocated.
    """
    if rows.dim() != 2 or block < 1:
        raise ValueError(f"expected rows of shape (N, n) and a positive block, got {tuple(rows.shape)}, {block}.")
    n = rows.shape[1]
    return [(start, rows[:, start:start + block].T @ rows[:, start:]) for start in range(0, n, block)]  # (b, n - start)


def add_blocks_(total: torch.Tensor, blocks: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """Add :func:`upper_gram_blocks` into ``total`` (``(n, n)``, any float dtype) in place; returns ``total``."""
    for start, part in blocks:
        total[start:start + part.shape[0], start:].add_(part)
    return total


def upper_gram(rows: torch.Tensor, block: int = GRAM_BLOCK) -> torch.Tensor:
    """``rows^T rows`` (``(n, n)`` for ``rows`` of shape ``(N, n)``) with only its upper blocks filled.

    The blocks below the diagonal are zero; sums of such matrices stay upper-block
    matrices, and :func:`symmetric_from_upper` completes one.
    """
    blocks = upper_gram_blocks(rows, block)
    return add_blocks_(rows.new_zeros(rows.shape[1], rows.shape[1]), blocks)


def symmetric_from_upper(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric matrix whose upper triangle (diagonal included) is that of ``matrix``."""
    upper = matrix.triu()
    return upper.add_(upper.triu(1).mT)


def pack_upper(matrix: torch.Tensor) -> torch.Tensor:
    """The upper triangle (diagonal included) of a square matrix, row by row: ``n (n + 1) / 2`` values."""
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(matrix.shape)}.")
    return matrix[_upper_mask(matrix.shape[0], matrix.device)]


def unpack_upper(packed: torch.Tensor, n: int) -> torch.Tensor:
    """The symmetric ``(n, n)`` matrix whose upper triangle :func:`pack_upper` gave ``packed``."""
    if packed.dim() != 1 or packed.numel() != n * (n + 1) // 2:
        raise ValueError(f"expected {n * (n + 1) // 2} packed values of a {n}x{n} matrix, got shape "
                         f"{tuple(packed.shape)}.")
    matrix = packed.new_zeros(n, n)
    matrix[_upper_mask(n, packed.device)] = packed
    return symmetric_from_upper(matrix)


def _upper_mask(n: int, device) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).triu()  # (n, n)


__all__ = ["GRAM_BLOCK", "add_blocks_", "pack_upper", "symmetric_from_upper", "unpack_upper", "upper_gram",
           "upper_gram_blocks"]

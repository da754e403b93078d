"""Hypothesis strategies: random matrices, n and factorizations."""
import torch
from hypothesis import strategies as st

from mpo_core import plan_shape


@st.composite
def matrices(draw, max_dim=48, dtypes=(torch.float64,)):
    rows = draw(st.integers(1, max_dim))
    cols = draw(st.integers(1, max_dim))
    n = draw(st.integers(2, 6))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    decay = torch.logspace(0, -draw(st.integers(0, 4)), cols, dtype=torch.float64)
    return (matrix * decay).to(dtype), n


@st.composite
def bond_choices(draw, shape):
    return tuple(draw(st.integers(1, d)) for d in shape.full_bond_dims)


def shape_for(matrix, n):
    return plan_shape(matrix.shape[0], matrix.shape[1], n=n)

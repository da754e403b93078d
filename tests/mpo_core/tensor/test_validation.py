import pytest
import torch

from mpo_core import decompose, truncate


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (torch.ones(3, 4, 5), ValueError, "2-D"),
        (torch.ones(7), ValueError, "2-D"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), ValueError, "NaN/Inf"),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), ValueError, "NaN/Inf"),
        (torch.ones(4, 4, dtype=torch.int64), TypeError, "float32 and float64"),
        (torch.ones(4, 4, dtype=torch.float16), TypeError, "float32 and float64"),
        ([[1.0, 2.0]], TypeError, "torch.Tensor"),
        (torch.ones(0, 3), ValueError, "empty"),
    ],
)
def test_bad_matrices_get_actionable_errors(bad, error, message):
    with pytest.raises(error, match=message):
        decompose(bad)


def test_bad_bond_dims_are_rejected():
    mpo = decompose(torch.randn(24, 36, dtype=torch.float64), n=3)
    full = mpo.full_bond_dims
    with pytest.raises(ValueError, match="outside 1.."):
        truncate(mpo, (full[0] + 1, full[1]))
    with pytest.raises(ValueError, match="outside 1.."):
        truncate(mpo, (0, full[1]))
    with pytest.raises(ValueError, match="needs 2 values"):
        truncate(mpo, (1,))
    with pytest.raises(TypeError):
        truncate(mpo, (1.5, 2))
    with pytest.raises(ValueError, match="exactly one"):
        truncate(mpo, (1, 1), compression_ratio=0.5)
    with pytest.raises(ValueError, match="> 0"):
        truncate(mpo, compression_ratio=0.0)


def test_factor_mismatch_is_rejected():
    with pytest.raises(ValueError, match="multiply to"):
        decompose(torch.randn(12, 10), out_factors=(2, 3), in_factors=(2, 2))

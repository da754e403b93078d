import numpy as np
import pytest
import torch

from mpo_core import decompose, truncate
from mpo_core.tensor.validation import check_choice, check_fraction, check_number, check_positive_int, is_int


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


# --- the scalar vocabulary every config uses -------------------------------------------------------------------------


@pytest.mark.parametrize("value, ok", [(1, True), (np.int64(3), True), (0, False), (True, False), (2.0, False),
                                       ("2", False), (None, False)])
def test_check_positive_int(value, ok):
    if ok:
        assert check_positive_int("k", value) == value and type(check_positive_int("k", value)) is int
    else:
        with pytest.raises(ValueError, match="k must be a positive int"):
            check_positive_int("k", value)


def test_check_positive_int_with_another_minimum():
    assert check_positive_int("warmup", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="warmup must be an int >= 0, got -1"):
        check_positive_int("warmup", -1, minimum=0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "0.1", None])
def test_check_number_refuses_non_numbers(value):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_number("lr", value)


def test_check_number_bounds_and_fraction_intervals():
    assert check_number("delta", 0.5, minimum=0) == 0.5
    with pytest.raises(ValueError, match="delta must be > 0, got 0"):
        check_number("delta", 0, minimum=0)
    assert check_number("x", 0, minimum=0, strict=False) == 0.0
    assert check_fraction("scale", 1) == 1.0
    with pytest.raises(ValueError, match=r"scale must be in \(0, 1\], got 0"):
        check_fraction("scale", 0)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), got 1"):
        check_fraction("p", 1, inclusive_low=True, inclusive_high=False)


def test_check_choice_and_is_int():
    assert check_choice("mode", "small", ("small", "full")) == "small"
    with pytest.raises(ValueError, match=r"mode must be one of \['small', 'full'\], got 'big'"):
        check_choice("mode", "big", ("small", "full"))
    assert is_int(np.int32(1)) and not is_int(True) and not is_int(1.0)

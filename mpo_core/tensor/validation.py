"""Input checks: the one vocabulary every config and function validates with.

Every check raises ``ValueError`` or ``TypeError`` with a message that says
what to do, so that the dashboard and the command line can show it as is.
Scalars: :func:`check_positive_int`, :func:`check_number`,
:func:`check_fraction`, :func:`check_choice`; sequences:
:func:`check_positive_ints`; matrices: :func:`check_matrix`;
the chain length: :func:`check_num_tensors`.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Iterable

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64)
MIN_LOCAL_TENSORS = 2
#: the most local tensors of any MPO (over-parameterized chains of OPF reach 32 with factors of 1);
#: a bound checked before anything is planned or allocated
MAX_LOCAL_TENSORS = 32


def check_matrix(matrix: torch.Tensor, name: str = "matrix") -> torch.Tensor:
    """Check that ``matrix`` is a finite 2-D float32/float64 torch tensor."""
    if not isinstance(matrix, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(matrix).__name__}; "
            "convert it with torch.as_tensor(...)."
        )
    if matrix.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D (out_features, in_features), got shape {tuple(matrix.shape)}; "
            "reshape it to a matrix first."
        )
    if matrix.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {matrix.dtype}; MPO decomposition supports float32 and float64. "
            "Cast it with .float() or .double()."
        )
    if matrix.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(matrix.shape)}); give a non-empty matrix.")
    if not bool(torch.isfinite(matrix).all()):
        bad = int((~torch.isfinite(matrix)).sum())
        raise ValueError(
            f"{name} has {bad} NaN/Inf entries; clean or replace them (e.g. torch.nan_to_num) first."
        )
    return matrix


def check_num_tensors(n: int, maximum: int = MAX_LOCAL_TENSORS) -> int:
    """Check the number of local tensors ``n`` (an int, 2 to ``maximum``)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"the number of local tensors n must be an int, got {n!r}.")
    if n > maximum:
        raise ValueError(f"the number of local tensors n must be at most {maximum}, got {n}; "
                         "the papers use n=5 (more tensors only add factors of 1).")
    if n < MIN_LOCAL_TENSORS:
        raise ValueError(
            f"the number of local tensors n must be at least {MIN_LOCAL_TENSORS}, got {n}; "
            "the papers use n=5 (n=2 with factors (I,1),(1,J) is the truncated SVD)."
        )
    return n


def check_positive_ints(values, name: str) -> tuple[int, ...]:
    """Check a sequence of positive ints and return it as a tuple."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of positive ints, got {_short_repr(values)}.")
    items = tuple(values)
    if not all(is_int(v) and v >= 1 for v in items):
        raise ValueError(f"{name} must contain positive ints, got {_short_repr(items)}.")
    return items


def _short_repr(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(value, Integral) and not isinstance(value, bool)


#: the largest int any count, size or step takes (what torch and numpy index with: int64)
MAX_INT = 2**63 - 1


def check_positive_int(name: str, value, minimum: int = 1, maximum: int = MAX_INT) -> int:
    """``value`` as an int in ``minimum..maximum`` (bools and floats are refused, even 3.0)."""
    if not is_int(value) or not minimum <= value <= maximum:
        wanted = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        limit = f" and at most {maximum}" if is_int(value) and value > maximum else ""
        raise ValueError(f"{name} must be {wanted}{limit}, got {_short_repr(value)}.")
    return int(value)


def check_number(name: str, value, minimum: float | None = None, strict: bool = True) -> float:
    """``value`` as a finite float, ``> minimum`` (``strict``) or ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value!r}.")
    return float(value)


def check_fraction(name: str, value, low: float = 0.0, high: float = 1.0,
                   inclusive_low: bool = False, inclusive_high: bool = True) -> float:
    """``value`` as a float in the interval ``low..high`` (open or closed at each end)."""
    value = check_number(name, value)
    above = value >= low if inclusive_low else value > low
    below = value <= high if inclusive_high else value < high
    if not (above and below):
        interval = f"{'[' if inclusive_low else '('}{low:g}, {high:g}{']' if inclusive_high else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}.")
    return value


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value

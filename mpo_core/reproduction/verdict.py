"""A claim's verdict from seeds, never from one number: "holds", "does not hold" or "cannot tell".

A claim compares a method's scores over seeds with a reference's (e.g. full
fine-tuning), as "the method is at most ``margin`` below the reference"
(``margin = 1`` point: "within 1 point") or, with ``margin = 0``, "not below".
The difference of means gets a Welch confidence interval (each side its own
seed-to-seed variance; the degrees of freedom by Welch-Satterthwaite)::

    d = mean(method) - mean(reference),  CI = d ± t(level, dof) * sqrt(s_m² / n_m + s_r² / n_r)

    CI entirely above -margin  -> holds
    CI entirely below -margin  -> does not hold
    otherwise                  -> cannot tell

With one seed on either side there is no interval and the verdict is
"cannot tell". The interval covers training noise across seeds; every run of
a comparison is scored on the same dev examples, so the dev set's own
sampling noise is a shared offset, not part of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "cannot tell"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim: the difference of means and its interval (in the scores' units)."""

    verdict: str
    difference: float
    low: float
    high: float
    seeds: tuple[int, int]  # (method, reference)

    def describe(self, unit: str = " points") -> str:
        if math.isnan(self.low):
            return f"{self.verdict} (difference {self.difference:+.1f}{unit}; one seed, no interval)"
        return f"{self.verdict} (difference {self.difference:+.1f}{unit}, 95 % CI [{self.low:+.1f}, {self.high:+.1f}])"


def difference_interval(method: Sequence[float], reference: Sequence[float],
                        level: float = 0.95) -> tuple[float, float, float]:
    """``(d, low, high)``: mean(method) - mean(reference) and its Welch ``level`` interval (NaN without one)."""
    from scipy import stats

    m, r = [float(x) for x in method], [float(x) for x in reference]
    if not m or not r:
        raise ValueError("a verdict needs at least one score on each side.")
    d = sum(m) / len(m) - sum(r) / len(r)
    if len(m) < 2 or len(r) < 2:
        return d, math.nan, math.nan
    vm, vr = _variance(m) / len(m), _variance(r) / len(r)
    se = math.sqrt(vm + vr)
    if se == 0:
        return d, d, d
    dof = (vm + vr) ** 2 / ((vm ** 2 / (len(m) - 1)) + (vr ** 2 / (len(r) - 1)))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    return d, d - half, d + half


def _variance(values: list[float]) -> float:
    """The sample variance (ddof 1), two-pass."""
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def not_below(method: Sequence[float], reference: Sequence[float], margin: float = 0.0,
              level: float = 0.95) -> Verdict:
    """Verdict on "``method`` is at most ``margin`` below ``reference``" (same units as the scores)."""
    d, low, high = difference_interval(method, reference, level)
    if math.isnan(low):
        verdict = UNCLEAR
    elif low > -margin:
        verdict = HOLDS
    elif high < -margin:
        verdict = FAILS
    else:
        verdict = UNCLEAR
    return Verdict(verdict, d, low, high, (len(method), len(reference)))

"""Confidence intervals for the rates journeyscope reports.

Every rate carries its sample size and a 95% interval so nobody acts on three
journeys. Wilson's score interval behaves at 0%, 100% and small n, where the
textbook normal interval collapses; differences of two rates use Newcombe's
hybrid score interval (method 10), built from the two Wilson intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Rate:
    """``k`` of ``n`` with its Wilson 95% interval; ``value`` is None when ``n`` is 0."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": self.value, "n": self.n, "ci_low": self.low, "ci_high": self.high}


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``n`` > 0)."""
    if n <= 0:
        raise ValueError("wilson() needs n > 0")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 and n successes the bound is exactly 0 or 1 (floating point lands a hair inside it).
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def rate(k: int, n: int) -> Rate:
    """The rate ``k / n`` with its interval (all None for ``n`` = 0)."""
    if n <= 0:
        return Rate(k, n, None, None, None)
    low, high = wilson(k, n)
    return Rate(k, n, k / n, low, high)


def ratio(k: int, n: int) -> Rate:
    """Like :func:`rate`, for counts that are not always a part of a whole.

    Conversion from the previous stage is one: in a non-linear journey a stage
    can be entered by more journeys than entered the stage before it. Then the
    ratio exceeds 1 and there is no binomial interval to give.
    """
    if n > 0 and k > n:
        return Rate(k, n, k / n, None, None)
    return rate(k, n)


@dataclass(frozen=True, slots=True)
class Difference:
    """``b - a`` of two rates with Newcombe's 95% interval; None where either side is empty."""

    a: Rate
    b: Rate
    value: float | None
    low: float | None
    high: float | None

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, object]:
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "difference": self.value,
            "ci_low": self.low,
            "ci_high": self.high,
            "significant": self.significant,
        }


def difference(a: Rate, b: Rate) -> Difference:
    """Newcombe's hybrid score interval for ``b.value - a.value``."""
    if a.value is None or b.value is None:
        return Difference(a, b, None, None, None)
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    d = b.value - a.value
    low = d - math.sqrt((b.value - b.low) ** 2 + (a.high - a.value) ** 2)
    high = d + math.sqrt((b.high - b.value) ** 2 + (a.value - a.low) ** 2)
    return Difference(a, b, d, max(-1.0, low), min(1.0, high))

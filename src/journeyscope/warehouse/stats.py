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


def excludes_zero(low: float | None, high: float | None) -> bool:
    """Whether a difference's interval lies wholly on one side of zero (the difference is significant)."""
    return low is not None and high is not None and (low > 0 or high < 0)


class _Difference:
    """What every difference ``b − a`` with a 95% interval shares: significance and its dict.

    Subclasses are dataclasses with fields ``value``, ``low`` and ``high`` (None where they cannot be
    computed) and say how they describe their two sides (:meth:`_sides`).
    """

    __slots__ = ()
    value: float | None
    low: float | None
    high: float | None

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return excludes_zero(self.low, self.high)

    def _sides(self) -> dict[str, object]:
        raise NotImplementedError

    def as_dict(self) -> dict[str, object]:
        return {**self._sides(), "difference": self.value, "ci_low": self.low, "ci_high": self.high,
                "significant": self.significant}


@dataclass(frozen=True, slots=True)
class Difference(_Difference):
    """``b - a`` of two rates with Newcombe's 95% interval; None where either side is empty."""

    a: Rate
    b: Rate
    value: float | None
    low: float | None
    high: float | None

    def _sides(self) -> dict[str, object]:
        return {"a": self.a.as_dict(), "b": self.b.as_dict()}


def difference(a: Rate, b: Rate) -> Difference:
    """Newcombe's hybrid score interval for ``b.value - a.value``."""
    if a.value is None or b.value is None:
        return Difference(a, b, None, None, None)
    assert a.low is not None and a.high is not None and b.low is not None and b.high is not None
    d = b.value - a.value
    low = d - math.sqrt((b.value - b.low) ** 2 + (a.high - a.value) ** 2)
    high = d + math.sqrt((b.high - b.value) ** 2 + (a.value - a.low) ** 2)
    return Difference(a, b, d, max(-1.0, low), min(1.0, high))


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4: a finite sum, exact)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return math.sin(theta) * total


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (the 95% interval's multiplier).

    Exact by bisection on the finite-sum CDF up to 200 degrees of freedom; beyond, the Cornish-Fisher
    expansion around the normal quantile (A&S 26.7.5), accurate there to well under 1e-6.
    """
    if df < 1:
        raise ValueError("t_quantile_975() needs df >= 1")
    if df > 200:
        z = Z95
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / df + g2 / df**2 + g3 / df**3
    low, high = Z95, 13.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_two_sided_mass(mid, df) < 0.95 else (low, mid)
    return (low + high) / 2


@dataclass(frozen=True, slots=True)
class Mean:
    """The mean of ``n`` answers with its 95% t-interval (None for fewer than two answers); ``sd`` the sample SD."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"n": self.n, "mean": self.mean, "ci_low": self.low, "ci_high": self.high}


def mean_interval(n: int, mean: float | None, sd: float | None, lowest: float, highest: float) -> Mean:
    """Student's t 95% interval for a mean of ``n`` answers on the scale ``lowest``..``highest`` (clipped to it)."""
    if n <= 0 or mean is None:
        return Mean(n, None, None, None, None)
    if n < 2 or sd is None:
        return Mean(n, mean, sd, None, None)
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return Mean(n, mean, sd, max(lowest, mean - half), min(highest, mean + half))


@dataclass(frozen=True, slots=True)
class NetScore:
    """A Net Promoter Score in points (-100..100) over ``n`` answers, with its 95% interval."""

    n: int
    promoters: int
    detractors: int
    score: float | None
    low: float | None
    high: float | None

    @property
    def variance(self) -> float | None:
        """The variance of the score (in points²) for one answer: ``n`` times the score's sampling variance."""
        if self.n <= 0:
            return None
        p, d = self.promoters / self.n, self.detractors / self.n
        return (p + d - (p - d) ** 2) * 100.0**2

    def as_dict(self) -> dict[str, float | int | None]:
        return {"n": self.n, "score": self.score, "ci_low": self.low, "ci_high": self.high,
                "promoters": self.promoters, "detractors": self.detractors}


def net_promoter(n: int, promoters: int, detractors: int) -> NetScore:
    """NPS = % promoters − % detractors, with an adjusted-Wald 95% interval from the multinomial variance.

    The score is a difference of two shares of one multinomial sample, so its variance is
    ``(p + d − (p − d)²) / n`` (promoter share ``p``, detractor share ``d``). The interval is
    centred ± 1.96 standard errors after adding one pseudo-answer of each kind (promoter, passive,
    detractor; ``n + 3``), so five promoters out of five do not get a zero-width interval; it is
    clipped to -100..100 and always holds the score itself.
    """
    if n <= 0:
        return NetScore(n, promoters, detractors, None, None, None)
    score = (promoters - detractors) / n * 100.0
    m = n + 3
    p, d = (promoters + 1) / m, (detractors + 1) / m
    centre = (p - d) * 100.0
    half = Z95 * math.sqrt(max(0.0, p + d - (p - d) ** 2) / m) * 100.0
    low, high = max(-100.0, centre - half), min(100.0, centre + half)
    return NetScore(n, promoters, detractors, score, min(low, score), max(high, score))


@dataclass(frozen=True, slots=True)
class MeanDifference(_Difference):
    """``b − a`` of two means (or net scores) with a Welch 95% interval; None where a side lacks a spread."""

    a_n: int
    b_n: int
    value: float | None
    low: float | None
    high: float | None

    def _sides(self) -> dict[str, object]:
        return {"a_n": self.a_n, "b_n": self.b_n}


def welch_difference(a_n: int, a_mean: float | None, a_var: float | None,
                     b_n: int, b_mean: float | None, b_var: float | None, *, normal: bool = False) -> MeanDifference:
    """Welch's interval for ``b_mean − a_mean`` from each side's size, mean and per-answer variance.

    ``normal=True`` uses the normal multiplier instead of Welch–Satterthwaite's t (net scores: a
    multinomial's large-sample interval).
    """
    if a_mean is None or b_mean is None:
        return MeanDifference(a_n, b_n, None, None, None)
    d = b_mean - a_mean
    if a_var is None or b_var is None or a_n < 2 or b_n < 2:
        return MeanDifference(a_n, b_n, d, None, None)
    va, vb = a_var / a_n, b_var / b_n
    se = math.sqrt(va + vb)
    if se == 0:
        return MeanDifference(a_n, b_n, d, d, d)
    if normal:
        multiplier = Z95
    else:
        df = (va + vb) ** 2 / (va**2 / (a_n - 1) + vb**2 / (b_n - 1))
        multiplier = t_quantile_975(max(1, math.floor(df)))
    return MeanDifference(a_n, b_n, d, d - multiplier * se, d + multiplier * se)


def auroc_interval(auroc: float, n_positive: int, n_negative: int) -> tuple[float | None, float | None]:
    """Hanley & McNeil's (1982) 95% interval for an AUROC from ``n_positive`` and ``n_negative`` cases."""
    if n_positive < 1 or n_negative < 1:
        return None, None
    q1, q2 = auroc / (2 - auroc), 2 * auroc * auroc / (1 + auroc)
    var = (auroc * (1 - auroc) + (n_positive - 1) * (q1 - auroc**2) + (n_negative - 1) * (q2 - auroc**2)) / (
        n_positive * n_negative
    )
    half = Z95 * math.sqrt(max(0.0, var))
    return max(0.0, auroc - half), min(1.0, auroc + half)


def spearman_interval(rho: float, n: int) -> tuple[float | None, float | None]:
    """95% interval for Spearman's rho: Fisher's z with Fieller, Hartley & Pearson's variance 1.06 / (n − 3)."""
    if n <= 3 or not -1 < rho < 1:
        return None, None
    z, half = math.atanh(rho), Z95 * math.sqrt(1.06 / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)

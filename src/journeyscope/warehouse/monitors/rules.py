"""The sequential rule: a CUSUM over hourly buckets, against a baseline, with hysteresis to resolve.

Why a CUSUM: a threshold on a windowed average either waits for the window to
fill (slow) or flaps on noise (false alarms). Page's CUSUM accumulates the
log-likelihood ratio of "the bad rate has shifted by the odds ratio ``shift``"
against "it is at the baseline", observation by observation, and resets at
zero; it is the fastest detector of a shift of that size for a given false
alarm rate (Moustakides 1986). For a rate each observation is a Bernoulli
outcome (the Bernoulli CUSUM of Reynolds and Stoumbos); for a mean a Gaussian
one, with the baseline's standard deviation. A bucket adds the sum of its
observations' ratios, so hourly sums from SQL give the per-visit statistic
(clamped at zero per hour instead of per visit).

To fire, three things must hold: the CUSUM has crossed ``threshold``; the run
that pushed it there (observations since it last left zero: the change-point
estimate) holds ``min_window`` observations and ``min_events`` bad ones; and
the run differs from the baseline beyond the 95% intervals journeyscope reports
elsewhere (Newcombe's interval of the difference of two rates, whose Wilson
intervals account for the baseline's own sample; Wilson alone against a target;
the normal interval for means). Once firing, the baseline is frozen and a second CUSUM
collects evidence that the signal is back at it rather than at the level seen
since the alarm's run began (at least the shifted level); the alert resolves
when that one crosses ``resolve_threshold`` (hysteresis: no flapping around a
single threshold). Testing against the level actually seen, not just the
shifted one, resolves a large regression about as fast as it was detected.

Pure Python over arrays: :mod:`.engine` feeds it from SQL, live and in backtests alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from journeyscope.warehouse.stats import Z95, difference, rate, wilson

__all__ = ["Baseline", "Episode", "run_rule"]

_P_FLOOR = 1e-3
_SD_FLOOR = 0.01
_Z_CLIP = 3.0


@dataclass
class Baseline:
    """The baseline at one bucket: a rate (``value``, ``sd`` None) or a mean and its standard deviation.

    ``k`` (bad observations) and ``n`` say how sure it is; a target is certain (``exact``).
    """

    value: float
    n: int
    sd: float | None = None
    k: float = 0.0
    exact: bool = False


@dataclass
class Episode:
    """One alarm: when it fired (bucket index) and resolved (None: still firing), with its evidence."""

    fired: int
    run_start: int
    value: float  # the run's bad rate or mean
    baseline: Baseline
    n: int  # observations in the run
    k: int  # bad observations in the run (rates)
    ci_low: float
    ci_high: float
    cusum: float
    resolved: int | None = None


def _llr_rate(p0: float, shift: float) -> tuple[float, float, float]:
    """(p1, log-ratio per bad observation, per good observation) for odds x ``shift``."""
    odds = p0 / (1 - p0) * shift
    p1 = odds / (1 + odds)
    return p1, math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def run_rule(
    kind: str,
    worse: str,
    n: np.ndarray,
    k: np.ndarray,
    s: np.ndarray,
    ss: np.ndarray,
    baselines: list[Baseline | None],
    *,
    shift: float,
    threshold: float,
    resolve_threshold: float,
    min_window: int,
    min_events: int,
) -> list[Episode]:
    """Run the rule over buckets ``0..len(n)-1``; ``baselines[i]`` is None where there is not enough of one."""
    episodes: list[Episode] = []
    up = down = 0.0
    run_start, run_n, run_k, run_s, run_ss = 0, 0, 0, 0.0, 0.0
    firing: Episode | None = None
    frozen: Baseline | None = None
    sign = 1.0 if worse == "up" else -1.0
    for i in range(len(n)):
        ni, ki, si, ssi = int(n[i]), int(k[i]), float(s[i]), float(ss[i])
        if firing is None:
            base = baselines[i]
            if base is None:
                up = 0.0
                continue
            inc = _increment(kind, sign, base, shift, ni, ki, si)
            if up == 0.0 and inc > 0:
                run_start, run_n, run_k, run_s, run_ss = i, 0, 0, 0.0, 0.0
            up = max(0.0, up + inc)
            if up == 0.0:
                continue
            run_n, run_k, run_s, run_ss = run_n + ni, run_k + ki, run_s + si, run_ss + ssi
            if up < threshold or run_n < min_window:
                continue
            if kind == "rate":
                if run_k < min_events:
                    continue
                low, high = wilson(run_k, run_n)
                value = run_k / run_n
                beyond = _rate_beyond(base, run_k, run_n)
            else:
                value = run_s / run_n
                var = max(run_ss / run_n - value * value, 0.0) * run_n / max(run_n - 1, 1)
                half = Z95 * math.sqrt(var / run_n)
                low, high = value - half, value + half
                # The difference's interval, with the baseline's own uncertainty unless it is a target.
                base_se2 = 0.0 if base.exact or not base.n else (base.sd or 0.0) ** 2 / base.n
                margin = Z95 * math.sqrt(var / run_n + base_se2)
                beyond = sign * (value - base.value) > margin
            if beyond:
                firing = Episode(i, run_start, value, base, run_n, run_k, low, high, up)
                frozen, down = base, 0.0
        else:
            assert frozen is not None
            down = max(0.0, down + _back(kind, sign, frozen, shift, (run_n, run_k, run_s), ni, ki, si))
            run_n, run_k, run_s = run_n + ni, run_k + ki, run_s + si
            if down >= resolve_threshold:
                firing.resolved = i
                episodes.append(firing)
                firing, frozen, up = None, None, 0.0
    if firing is not None:
        episodes.append(firing)
    return episodes


def _rate_beyond(base: Baseline, k: int, n: int) -> bool:
    """The run's bad rate is above the baseline: its Wilson interval above a target, or the Newcombe
    interval of the difference above zero (the baseline, history or peers, is itself a sample)."""
    if base.exact:
        return wilson(k, n)[0] > base.value
    return difference(rate(int(round(base.k)), base.n), rate(k, n)).significant and k / n > base.k / base.n


def _back(kind: str, sign: float, base: Baseline, shift: float, seen: tuple[int, int, float],
          n: int, k: int, s: float) -> float:
    """Log-likelihood ratio of one bucket: back at the baseline against still at the alarm's level."""
    if n == 0:
        return 0.0
    seen_n, seen_k, seen_s = seen
    if kind == "rate":
        p0 = min(max(base.value, _P_FLOOR), 1 - _P_FLOOR)
        # The level seen, shrunk a little (a run of 10 bad out of 10 is not a certainty of failure).
        level = min(max(_llr_rate(p0, shift)[0], (seen_k + 0.5) / (seen_n + 1)), 1 - _P_FLOOR)
        return k * math.log(p0 / level) + (n - k) * math.log((1 - p0) / (1 - level))
    sd = max(base.sd or 0.0, _SD_FLOOR)
    delta = max(shift * sd, sign * (seen_s / max(seen_n, 1) - base.value))
    return -delta / sd * math.sqrt(n) * _z(sign, base.value, sd, n, s) + n * delta * delta / (2 * sd * sd)


def _increment(kind: str, sign: float, base: Baseline, shift: float, n: int, k: int, s: float) -> float:
    """Log-likelihood ratio of one bucket: shifted (worse) against the baseline."""
    if n == 0:
        return 0.0
    if kind == "rate":
        p0 = min(max(base.value, _P_FLOOR), 1 - _P_FLOOR)
        _, bad, good = _llr_rate(p0, shift)
        return k * bad + (n - k) * good
    sd = max(base.sd or 0.0, _SD_FLOOR)
    delta = shift * sd
    return delta / sd * math.sqrt(n) * _z(sign, base.value, sd, n, s) - n * delta * delta / (2 * sd * sd)


def _z(sign: float, mean: float, sd: float, n: int, s: float) -> float:
    """The bucket mean's distance from the baseline in standard errors, worse-positive, clipped to
    ``±_Z_CLIP``: per-visit scores and times are far from Gaussian (mostly 1.0 with rare zeros; long
    tails), and one outlier must not count as many observations' worth of evidence (a Huber-type CUSUM)."""
    z = sign * (s - n * mean) / (sd * math.sqrt(n))
    return min(max(z, -_Z_CLIP), _Z_CLIP)

"""Agreement of scores with reviews, computed the plain way: the reference the DuckDB version is checked against.

Pairwise AUROC (every positive against every negative, ties half), the confusion matrix counted in a
loop, Cohen's kappa from its definition, Youden's J tried at every threshold. Slow and obvious on purpose.
"""

from __future__ import annotations

import math


def auroc(scores: list[float], truth: list[bool]) -> float | None:
    pos = [s for s, t in zip(scores, truth) if t]
    neg = [s for s, t in zip(scores, truth) if not t]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def confusion(passed: list[bool], truth: list[bool]) -> dict[str, int]:
    out = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for p, t in zip(passed, truth):
        out[("t" if p == t else "f") + ("p" if p else "n")] += 1
    return out


def kappa(passed: list[bool], truth: list[bool]) -> float | None:
    n = len(passed)
    po = sum(p == t for p, t in zip(passed, truth)) / n
    p_yes = sum(passed) / n * sum(truth) / n
    p_no = (n - sum(passed)) / n * (n - sum(truth)) / n
    pe = p_yes + p_no
    return None if math.isclose(pe, 1.0) else (po - pe) / (1 - pe)


def best_youden(scores: list[float], truth: list[bool]) -> float:
    """The largest J = TPR - FPR over thresholds at every score seen (``score >= t`` passes)."""
    pos, neg = sum(truth), len(truth) - sum(truth)
    best = -2.0
    for t in set(scores):
        tpr = sum(1 for s, y in zip(scores, truth) if y and s >= t) / pos
        fpr = sum(1 for s, y in zip(scores, truth) if not y and s >= t) / neg
        best = max(best, tpr - fpr)
    return best


def youden_at(scores: list[float], truth: list[bool], t: float) -> float:
    pos, neg = sum(truth), len(truth) - sum(truth)
    return (sum(1 for s, y in zip(scores, truth) if y and s >= t) / pos
            - sum(1 for s, y in zip(scores, truth) if not y and s >= t) / neg)

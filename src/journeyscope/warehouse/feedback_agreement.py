"""Do the evaluators predict what customers report? Each evaluator's scores against the customers' CSAT answers.

Per evaluator, journey type and stage (and over all stages: ``journey`` and
``stage`` None), over the visits that were both scored and rated:

- ``auroc``: how well the score separates unhappy customers (CSAT ≤ 2) from happy
  ones (CSAT ≥ 4): the chance that a happy customer's visit scored higher than
  an unhappy one's (ties count half; 0.5 is no better than chance), from the
  rank sum (Mann-Whitney), with Hanley & McNeil's interval;
- ``spearman``: the rank correlation of score and CSAT over every rated visit
  (ties share their mean rank), with Fisher's z interval.

Computed in one SQL pass; a team reads it to learn which evaluator to trust before
the surveys come in, next to the agreement with reviewers' labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.stats import auroc_interval, spearman_interval
from journeyscope.warehouse.store import Warehouse

__all__ = ["FeedbackAgreement", "LOW_CSAT", "HIGH_CSAT", "feedback_agreement"]

#: CSAT answers counted as an unhappy and as a happy customer (a 3 is neither).
LOW_CSAT = 2
HIGH_CSAT = 4

_PARTS = "evaluator, journey_name, stage"


def _mean_rank(order: str, extra: str = "") -> str:
    """A value's rank within its group, ties sharing the mean of their ranks."""
    return (f"rank() OVER (PARTITION BY {_PARTS} ORDER BY {order}) "
            f"+ (count(*) OVER (PARTITION BY {_PARTS}, {order}{extra}) - 1) / 2.0")


_AGREEMENT = f"""
WITH pairs AS (
    SELECT e.evaluator, v.journey_name, v.stage, e.score, v.csat
    FROM stage_visits v JOIN evaluations e USING (journey_id, stage, visit)
    WHERE v.csat IS NOT NULL AND v.journey_name IS NOT NULL AND e.error IS NULL AND e.score IS NOT NULL AND {{where}}
),
grouped AS (
    SELECT * FROM pairs
    UNION ALL
    SELECT evaluator, NULL, NULL, score, csat FROM pairs
),
ranked AS (
    SELECT {_PARTS}, {_mean_rank("score")} AS r_score, {_mean_rank("csat")} AS r_csat FROM grouped
),
spearman AS (
    -- rounded: the same figure whatever the thread count (parallel sums differ in the last bits)
    SELECT {_PARTS}, count(*) AS n, round(corr(r_score, r_csat), 12) AS rho FROM ranked GROUP BY ALL
),
polar AS (
    SELECT {_PARTS}, csat >= {HIGH_CSAT} AS happy, {_mean_rank("score")} AS r
    FROM grouped WHERE csat <= {LOW_CSAT} OR csat >= {HIGH_CSAT}
),
auc AS (
    SELECT {_PARTS}, count(*) FILTER (WHERE happy) AS n_high, count(*) FILTER (WHERE NOT happy) AS n_low,
           sum(r) FILTER (WHERE happy) AS rank_sum_high
    FROM polar GROUP BY ALL
)
SELECT s.evaluator, s.journey_name, s.stage, s.n, coalesce(a.n_low, 0), coalesce(a.n_high, 0),
       (a.rank_sum_high - a.n_high * (a.n_high + 1) / 2.0) / nullif(a.n_high * a.n_low, 0) AS auroc,
       s.rho
FROM spearman s
LEFT JOIN auc a ON a.evaluator = s.evaluator AND a.journey_name IS NOT DISTINCT FROM s.journey_name
               AND a.stage IS NOT DISTINCT FROM s.stage
ORDER BY s.evaluator, s.journey_name NULLS FIRST, s.stage NULLS FIRST
"""


@dataclass(frozen=True)
class FeedbackAgreement:
    """One evaluator's agreement with what customers reported, at one stage (or overall)."""

    evaluator: str
    journey: str | None
    stage: str | None
    n: int
    n_low: int
    n_high: int
    auroc: float | None
    auroc_ci: tuple[float | None, float | None]
    spearman: float | None
    spearman_ci: tuple[float | None, float | None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator, "journey": self.journey, "stage": self.stage, "n": self.n,
            "n_low_csat": self.n_low, "n_high_csat": self.n_high,
            "auroc": self.auroc, "auroc_ci": list(self.auroc_ci),
            "spearman": self.spearman, "spearman_ci": list(self.spearman_ci),
        }


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def feedback_agreement(warehouse: Warehouse, filters: Filters | None = None) -> list[FeedbackAgreement]:
    """Every evaluator's agreement with the customers' CSAT, overall and per stage, over visits passing ``filters``."""
    where, params = (filters or Filters()).where("v")
    out = []
    for evaluator, journey, stage, n, n_low, n_high, auroc, rho in warehouse.query(
        _AGREEMENT.format(where=where), params
    ):
        auroc, rho = _finite(auroc), _finite(rho)  # a constant score or CSAT has no rank correlation
        out.append(FeedbackAgreement(
            evaluator, journey, stage, int(n), int(n_low), int(n_high),
            auroc, auroc_interval(auroc, n_high, n_low) if auroc is not None else (None, None),
            rho, spearman_interval(rho, int(n)) if rho is not None else (None, None),
        ))
    return out

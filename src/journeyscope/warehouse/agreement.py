"""How far to trust each evaluator on this warehouse's own data: its results against people's reviews.

Per evaluator and engine, overall (``journey`` and ``stage`` null), per journey type (``stage`` null) and per
journey type and stage, over the current reviews (:data:`journeyscope.warehouse.reviews.CURRENT`) of visits
the evaluator scored:

- ``n``: reviews counted (a visit reviewed by two people counts twice); ``reviewed_pass``/``reviewed_fail``;
- ``auroc``: the probability that a visit the reviewer passed scores higher than one they failed (ties count
  half), from the Mann-Whitney rank sum, computed in DuckDB; interval: Hanley & McNeil (1982);
- ``precision`` and ``recall`` of ``passed`` as stored (decided at the threshold in force): of the visits the
  evaluator passed, the share the reviewer passed; of those the reviewer passed, the share the evaluator
  passed; intervals: Wilson score (:func:`journeyscope.warehouse.stats.wilson`);
- ``kappa``: Cohen's κ between the evaluator's ``passed`` and the reviewer's; interval: the large-sample
  standard error ``sqrt(po (1 - po) / n) / (1 - pe)`` (Cohen 1960);
- ``threshold`` in force for the row's scope (:func:`journeyscope.warehouse.thresholds.resolve`) and its
  ``threshold_version`` (null: built-in), and ``suggested_threshold``: the score maximising Youden's J
  (recall of reviewed passes minus the share of reviewed failures passed, predicting "passed" when
  ``score >= t``): the threshold in force when no other does better, else the middle of the best gap between
  two reviewed scores (every threshold in it classifies the reviews alike; among equal J, the gap closest to
  the threshold in force). Only with at least :data:`MIN_PER_VERDICT` reviews of each verdict, else null
  (``suggestion_note`` says why).

All intervals are 95%, analytic (no resampling, so the same reviews always give the same figures). At
perfect agreement the AUROC and κ intervals collapse to a point (their standard errors are 0 there): read
``n`` with them.

Scores come from ``evaluations`` (the engine they were made with) and, for the other engine, from
``review_scores`` (:mod:`journeyscope.warehouse.review_scoring`), so local and llm results on the same
reviews show side by side as two rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import duckdb

from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse.reviews import CURRENT
from journeyscope.warehouse.stats import Z95, wilson
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.thresholds import in_force, resolve

__all__ = ["MIN_PER_VERDICT", "Agreement", "agreement", "agreement_report", "auroc_interval", "kappa_interval"]

#: Reviews of each verdict (pass and fail) needed before a threshold is suggested.
MIN_PER_VERDICT = 10

#: Each reviewed, scored result once per level: 0 overall, 1 journey type, 2 journey type and stage.
_PAIRS = f"""
WITH r AS (SELECT journey_id, stage, visit, evaluator, passed AS truth FROM ({CURRENT})),
scored AS (
    SELECT journey_id, stage, visit, evaluator, engine, score, passed, journey_name
    FROM evaluations WHERE score IS NOT NULL AND passed IS NOT NULL AND error IS NULL
    UNION ALL
    SELECT s.journey_id, s.stage, s.visit, s.evaluator, s.engine, s.score, s.passed, v.journey_name
    FROM review_scores s JOIN stage_visits v USING (journey_id, stage, visit)
    WHERE s.score IS NOT NULL AND s.passed IS NOT NULL AND s.error IS NULL
      AND NOT EXISTS (SELECT 1 FROM evaluations e WHERE e.journey_id = s.journey_id AND e.stage = s.stage
                      AND e.visit = s.visit AND e.evaluator = s.evaluator AND e.engine = s.engine)
),
pairs AS (SELECT s.*, r.truth FROM r JOIN scored s USING (journey_id, stage, visit, evaluator) {{where}}),
levels AS (
    SELECT 0 AS level, evaluator, engine, NULL::VARCHAR AS journey, NULL::VARCHAR AS stage, score, passed, truth
    FROM pairs
    UNION ALL
    SELECT 1, evaluator, engine, journey_name, NULL, score, passed, truth FROM pairs WHERE journey_name IS NOT NULL
    UNION ALL
    SELECT 2, evaluator, engine, journey_name, stage, score, passed, truth FROM pairs WHERE journey_name IS NOT NULL
)
"""

_COUNTS = _PAIRS + """,
ranked AS (
    SELECT *, rank() OVER (PARTITION BY level, evaluator, engine, journey, stage ORDER BY score)
              + (count(*) OVER (PARTITION BY level, evaluator, engine, journey, stage, score) - 1) / 2.0 AS r
    FROM levels
)
SELECT level, evaluator, engine, journey, stage, count(*) AS n,
       count(*) FILTER (WHERE truth) AS pos, count(*) FILTER (WHERE NOT truth) AS neg,
       count(*) FILTER (WHERE passed AND truth) AS tp, count(*) FILTER (WHERE passed AND NOT truth) AS fp,
       count(*) FILTER (WHERE NOT passed AND truth) AS fn, count(*) FILTER (WHERE NOT passed AND NOT truth) AS tn,
       coalesce(sum(r) FILTER (WHERE truth), 0) AS pos_rank_sum
FROM ranked
GROUP BY ALL
ORDER BY evaluator, engine, level, journey, stage
"""

#: Youden's J at each score seen, predicting "passed" for ``score >= t``.
_CANDIDATES = _PAIRS + """,
cum AS (
    SELECT level, evaluator, engine, journey, stage, score,
           sum(truth::INTEGER) OVER w AS pos_at, sum((NOT truth)::INTEGER) OVER w AS neg_at
    FROM levels
    WINDOW w AS (PARTITION BY level, evaluator, engine, journey, stage ORDER BY score DESC
                 RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT DISTINCT level, evaluator, engine, journey, stage, score, pos_at, neg_at FROM cum
"""


def auroc_interval(auc: float, pos: int, neg: int, z: float = Z95) -> tuple[float, float]:
    """Hanley & McNeil's (1982) interval for an AUROC from ``pos`` positives and ``neg`` negatives."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (pos * neg)
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def kappa_interval(po: float, pe: float, n: int, z: float = Z95) -> tuple[float, float]:
    """κ's interval from the large-sample standard error ``sqrt(po (1 - po) / n) / (1 - pe)``."""
    kappa = (po - pe) / (1 - pe)
    half = z * math.sqrt(po * (1 - po) / n) / (1 - pe)
    return max(-1.0, kappa - half), min(1.0, kappa + half)


@dataclass
class Agreement:
    """One evaluator and engine against the reviews, in one scope (overall, journey type, or journey and stage)."""

    evaluator: str
    engine: str
    journey: str | None
    stage: str | None
    n: int
    reviewed_pass: int
    reviewed_fail: int
    tp: int
    fp: int
    fn: int
    tn: int
    auroc: float | None = None
    auroc_ci: tuple[float, float] | None = None
    kappa: float | None = None
    kappa_ci: tuple[float, float] | None = None
    precision: float | None = None
    precision_ci: tuple[float, float] | None = None
    recall: float | None = None
    recall_ci: tuple[float, float] | None = None
    accuracy: float | None = None
    threshold: float | None = None
    threshold_version: int | None = None
    suggested_threshold: float | None = None
    suggested_youden_j: float | None = None
    current_youden_j: float | None = None
    suggestion_note: str | None = None
    candidates: list[tuple[float, int, int]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        def ci(pair: tuple[float, float] | None, i: int) -> float | None:
            return None if pair is None else pair[i]

        return {
            "evaluator": self.evaluator, "engine": self.engine, "journey": self.journey, "stage": self.stage,
            "n": self.n, "reviewed_pass": self.reviewed_pass, "reviewed_fail": self.reviewed_fail,
            "auroc": self.auroc, "auroc_ci_low": ci(self.auroc_ci, 0), "auroc_ci_high": ci(self.auroc_ci, 1),
            "kappa": self.kappa, "kappa_ci_low": ci(self.kappa_ci, 0), "kappa_ci_high": ci(self.kappa_ci, 1),
            "precision": self.precision, "precision_ci_low": ci(self.precision_ci, 0),
            "precision_ci_high": ci(self.precision_ci, 1),
            "recall": self.recall, "recall_ci_low": ci(self.recall_ci, 0), "recall_ci_high": ci(self.recall_ci, 1),
            "accuracy": self.accuracy,
            "threshold": self.threshold, "threshold_version": self.threshold_version,
            "suggested_threshold": self.suggested_threshold, "suggested_youden_j": self.suggested_youden_j,
            "current_youden_j": self.current_youden_j, "suggestion_note": self.suggestion_note,
            "confusion": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
        }

    def _measure(self, pos_rank_sum: float) -> None:
        pos, neg, n = self.reviewed_pass, self.reviewed_fail, self.n
        if pos and neg:
            self.auroc = (pos_rank_sum - pos * (pos + 1) / 2) / (pos * neg)
            self.auroc_ci = auroc_interval(self.auroc, pos, neg)
        if self.tp + self.fp:
            self.precision = self.tp / (self.tp + self.fp)
            self.precision_ci = wilson(self.tp, self.tp + self.fp)
        if self.tp + self.fn:
            self.recall = self.tp / (self.tp + self.fn)
            self.recall_ci = wilson(self.tp, self.tp + self.fn)
        po = (self.tp + self.tn) / n
        self.accuracy = po
        pe = ((self.tp + self.fp) * (self.tp + self.fn) + (self.fn + self.tn) * (self.fp + self.tn)) / (n * n)
        if pe < 1:
            self.kappa = (po - pe) / (1 - pe)
            self.kappa_ci = kappa_interval(po, pe, n)

    def _suggest(self) -> None:
        pos, neg = self.reviewed_pass, self.reviewed_fail

        def youden(pos_at: int, neg_at: int) -> float:
            return pos_at / pos - neg_at / neg

        if pos and neg and self.threshold is not None:
            at = [(s, p, q) for s, p, q in self.candidates if s >= self.threshold]
            lowest = min(at, default=None)  # the cumulative counts at the lowest score still passed
            self.current_youden_j = youden(lowest[1], lowest[2]) if lowest else 0.0
        if pos < MIN_PER_VERDICT or neg < MIN_PER_VERDICT:
            self.suggestion_note = (f"needs at least {MIN_PER_VERDICT} reviews of each verdict "
                                    f"(has {pos} pass, {neg} fail)")
            return
        best = max(youden(p, q) for _, p, q in self.candidates)
        if self.current_youden_j is not None and self.current_youden_j >= best - 1e-12:
            self.suggested_threshold, self.suggested_youden_j = self.threshold, self.current_youden_j
            return
        # Every t in (next lower score, s] classifies alike: suggest the middle, the least sensitive to new scores.
        current = self.threshold if self.threshold is not None else 0.5
        ranked = [(youden(p, q), -abs(s - current), s) for s, p, q in self.candidates]
        j, _, score = max(ranked)
        lower = max((s for s, _, _ in self.candidates if s < score), default=None)
        self.suggested_threshold = score if lower is None else round((score + lower) / 2, 6)
        self.suggested_youden_j = j


def agreement(warehouse: Warehouse, evaluator: str | None = None, engine: str | None = None) -> list[Agreement]:
    """Every evaluator's (or one's) agreement with the current reviews, overall and per journey type and stage."""
    conditions, params = [], []
    if evaluator is not None:
        conditions.append("s.evaluator = ?")
        params.append(evaluator)
    if engine is not None:
        conditions.append("s.engine = ?")
        params.append(engine)
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    cur = warehouse.cursor()
    try:
        counts = cur.execute(_COUNTS.format(where=where), params).fetchall()
        candidates = cur.execute(_CANDIDATES.format(where=where), params).fetchall()
        adopted = in_force(cur)
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read reviews from {warehouse.path}") from None
    finally:
        cur.close()
    by_scope: dict[tuple[Any, ...], list[tuple[float, int, int]]] = {}
    for level, ev, eng, journey, stage, score, pos_at, neg_at in candidates:
        by_scope.setdefault((level, ev, eng, journey, stage), []).append((float(score), int(pos_at), int(neg_at)))
    out = []
    for level, ev, eng, journey, stage, n, pos, neg, tp, fp, fn, tn, pos_rank_sum in counts:
        row = Agreement(ev, eng, journey, stage, int(n), int(pos), int(neg), int(tp), int(fp), int(fn), int(tn),
                        candidates=sorted(by_scope.get((level, ev, eng, journey, stage), [])))
        row._measure(float(pos_rank_sum))
        row.threshold, row.threshold_version = resolve(adopted, ev, eng, journey, stage)
        row._suggest()
        out.append(row)
    return out


def agreement_report(warehouse: Warehouse, evaluator: str | None = None, engine: str | None = None) -> dict[str, Any]:
    """The ``GET /v1/evaluators/agreement`` and ``journeyscope evaluators agreement --format json`` body."""
    reviews = warehouse.query(f"SELECT count(*) FROM ({CURRENT})")[0][0]
    return {
        "reviews": int(reviews),
        "intervals": "95%, analytic: Hanley-McNeil (AUROC), Wilson (precision, recall), Cohen's large-sample "
                     "standard error (kappa)",
        "suggestion_rule": f"maximise Youden's J (score >= t passes): the threshold in force unless another does "
                           f"better, else the middle of the best gap between reviewed scores; needs "
                           f"{MIN_PER_VERDICT} reviews of each verdict",
        "evaluators": [a.as_dict() for a in agreement(warehouse, evaluator, engine)],
    }

"""Per-stage funnels: entered, completed, conversion, drop-off, re-entry, time in stage, scores.

Definitions (docs/contracts.md, "Stage visits, funnels, re-entry"), per journey type and
stage, over the visits that pass the :class:`Filters`:

- ``entered``: journeys with a visit to the stage; ``visits``: those visits;
- ``completed``: journeys with a ``completed`` visit to it;
- ``open``: journeys not completed whose latest visit may still move on;
- ``dropped``: the rest (entered, never completed, not open);
- ``reentered``: journeys with a visit numbered 2 or more (a re-entry);
- ``conversion_from_previous``: entered here / entered at the previous stage
  (above 1 where a non-linear journey enters a stage without the one before);
- time in stage: per journey, the summed duration of its visits (median, p90);
- per evaluator: mean score and fail rate of the visits it could score (``scored``); the visits it
  could not (no evidence, an unsupported language: a result without a score) are ``unscored``, counted
  apart and never in the fail rate.
- what customers reported (where any did): response rate, CSAT, CES and NPS
  (:mod:`journeyscope.warehouse.feedback`).

Stages come in journey-map order; a journey type absent from the map is ordered
by where its stages are first entered on average, and says so
(``order: "inferred"``). A stage seen in data but absent from the map is listed
after the mapped ones with ``in_map: false`` and reported, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from journeyscope.warehouse.feedback import StageFeedback, feedback_by_stage
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.journey_map import JourneyMap
from journeyscope.warehouse.stats import Rate, rate, ratio
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import OUTCOME_NOW

# A journey that visited a stage once (``visit = 1 AND last_of_stage``, most of them) is its own group:
# only the journeys that came back to a stage are grouped by journey, so a channel or time filter over a
# million journeys groups a few hundred thousand visits instead of every one.
_PER_STAGE = f"""
WITH v AS (
    SELECT journey_name, stage, journey_id, visit, position,
           {OUTCOME_NOW} AS outcome,
           epoch(ended_at - started_at) AS seconds,
           visit = 1 AND last_of_stage AS single
    FROM stage_visits
    WHERE journey_name IS NOT NULL AND {{where}}
),
per_journey AS (
    SELECT journey_name, stage, 1 AS visits, visit AS max_visit, outcome = 'completed' AS completed,
           outcome AS last_outcome, position AS first_position, seconds
    FROM v WHERE single
    UNION ALL
    SELECT journey_name, stage,
           count(*) AS visits,
           max(visit) AS max_visit,
           bool_or(outcome = 'completed') AS completed,
           arg_max(outcome, position) AS last_outcome,
           min(position) AS first_position,
           sum(seconds) AS seconds
    FROM v WHERE NOT single GROUP BY journey_name, stage, journey_id
)
SELECT journey_name, stage,
       count(*) AS entered,
       count(*) FILTER (WHERE completed) AS completed,
       count(*) FILTER (WHERE NOT completed AND last_outcome = 'open') AS open,
       count(*) FILTER (WHERE max_visit >= 2) AS reentered,
       sum(visits)::BIGINT AS visits,
       median(seconds) AS median_s,
       quantile_cont(seconds, 0.9) AS p90_s,
       avg(first_position) AS mean_first_position
FROM per_journey GROUP BY ALL
"""

# The same figures from the per-stage facts every visit carries (visit 1 = the journey entered
# the stage, visit 2 = it re-entered, the last visit holds whether and how long): no grouping by
# journey, which is what makes a million journeys fast. Exact only when the filter keeps or drops
# whole journeys (journey type, cohort); channel and time filters take the per-journey query.
_PER_STAGE_FAST = f"""
SELECT journey_name, stage,
       count(*) FILTER (WHERE visit = 1) AS entered,
       count(*) FILTER (WHERE last_of_stage AND stage_completed) AS completed,
       count(*) FILTER (WHERE last_of_stage AND NOT stage_completed AND {OUTCOME_NOW} = 'open') AS open,
       count(*) FILTER (WHERE visit = 2) AS reentered,
       count(*) AS visits,
       median(stage_seconds) FILTER (WHERE last_of_stage) AS median_s,
       quantile_cont(stage_seconds, 0.9) FILTER (WHERE last_of_stage) AS p90_s,
       avg(position) FILTER (WHERE visit = 1) AS mean_first_position
FROM stage_visits
WHERE journey_name IS NOT NULL AND {{where}}
GROUP BY ALL
"""

_TOTALS_FAST = """
SELECT journey_name, count(*) FROM stage_visits
WHERE journey_name IS NOT NULL AND position = 0 AND {where} GROUP BY ALL
"""

_TOTALS = """
SELECT journey_name, count(DISTINCT journey_id) FROM stage_visits
WHERE journey_name IS NOT NULL AND {where} GROUP BY ALL
"""

_EVALS = """
SELECT v.journey_name, e.stage, e.evaluator,
       round(avg(e.score), 12) AS mean_score,
       count(e.score) AS scored,
       count(*) FILTER (WHERE e.passed = false AND e.score IS NOT NULL) AS failed,
       count(*) FILTER (WHERE e.score IS NULL) AS unscored
FROM stage_visits v
JOIN evaluations e USING (journey_id, stage, visit)
WHERE v.journey_name IS NOT NULL AND {where} AND e.error IS NULL
GROUP BY ALL
"""

# The same from the journey type and cohort each evaluation carries (journeyscope.warehouse.journey_facts):
# no join of every score to its visit (most of a funnel's time at 15 M scores). Exact when the filter keeps
# or drops whole journeys; channel and time filters select visits, and take the join.
_EVALS_FAST = """
SELECT journey_name, stage, evaluator,
       round(avg(score), 12) AS mean_score,  -- the same figure whatever the thread count
       count(score) AS scored,
       count(*) FILTER (WHERE passed = false AND score IS NOT NULL) AS failed,
       count(*) FILTER (WHERE score IS NULL) AS unscored
FROM evaluations
WHERE journey_name IS NOT NULL AND {where} AND error IS NULL
GROUP BY ALL
"""


@dataclass(frozen=True)
class EvaluatorSummary:
    """One evaluator's scores over a stage's visits: the fail rate is of the ``scored`` ones only."""

    evaluator: str
    mean_score: float | None
    fail_rate: Rate
    #: Visits the evaluator looked at but could not score (no evidence, unsupported language).
    unscored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "mean_score": self.mean_score,
            "fail_rate": self.fail_rate.value,
            "scored": self.fail_rate.n,
            "unscored": self.unscored,
            "fail_rate_ci": [self.fail_rate.low, self.fail_rate.high],
        }


@dataclass(frozen=True)
class StageFunnel:
    """One stage's row of the funnel."""

    stage: str
    in_map: bool
    entered: int
    completed: int
    open: int
    reentered: int
    visits: int
    completion: Rate
    conversion: Rate | None
    reentry: Rate
    median_seconds: float | None
    p90_seconds: float | None
    evaluators: tuple[EvaluatorSummary, ...] = ()
    feedback: StageFeedback | None = None

    @property
    def dropped(self) -> int:
        return self.entered - self.completed - self.open

    def as_dict(self) -> dict[str, Any]:
        """The docs/contracts.md record first, then intervals and the extras."""
        return {
            "stage": self.stage,
            "entered": self.entered,
            "completed": self.completed,
            "completion_rate": self.completion.value,
            "conversion_from_previous": self.conversion.value if self.conversion else None,
            "dropped": self.dropped,
            "reentered": self.reentered,
            "reentry_rate": self.reentry.value,
            "visits": self.visits,
            "open": self.open,
            "in_map": self.in_map,
            "completion_rate_ci": [self.completion.low, self.completion.high],
            "conversion_from_previous_ci": [self.conversion.low, self.conversion.high] if self.conversion else None,
            "reentry_rate_ci": [self.reentry.low, self.reentry.high],
            "median_time_in_stage_s": self.median_seconds,
            "p90_time_in_stage_s": self.p90_seconds,
            "evaluators": [e.as_dict() for e in self.evaluators],
            **(self.feedback.as_dict() if self.feedback is not None else {}),
        }


@dataclass(frozen=True)
class JourneyFunnel:
    """The funnel of one journey type."""

    journey: str
    total: int
    order: str  # "map" or "inferred"
    stages: tuple[StageFunnel, ...]
    unmapped_stages: tuple[str, ...] = ()

    def stage(self, name: str) -> StageFunnel:
        return next(s for s in self.stages if s.stage == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "total": self.total,
            "order": self.order,
            "unmapped_stages": list(self.unmapped_stages),
            "stages": [s.as_dict() for s in self.stages],
        }


@dataclass(frozen=True)
class FunnelReport:
    """Funnels of every journey type that matched the filters; ``note`` says why it is empty."""

    filters: Filters
    journeys: tuple[JourneyFunnel, ...] = ()
    note: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def journey(self, name: str) -> JourneyFunnel:
        return next(j for j in self.journeys if j.journey == name)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"journeys": [j.as_dict() for j in self.journeys], "filters": self.filters.as_dict()}
        if self.note:
            result["note"] = self.note
        if self.warnings:
            result["warnings"] = list(self.warnings)
        return result


_FIRST_POSITIONS = """
WITH v AS (
    SELECT journey_name, stage, journey_id, position, visit = 1 AND last_of_stage AS single
    FROM stage_visits WHERE journey_name IS NOT NULL AND {where}
)
SELECT journey_name, stage, avg(first_position) FROM (
    SELECT journey_name, stage, position AS first_position FROM v WHERE single
    UNION ALL
    SELECT journey_name, stage, min(position) AS first_position FROM v WHERE NOT single
    GROUP BY journey_name, stage, journey_id
) GROUP BY ALL
"""

# A journey's first visit to a stage (``visit = 1``) holds its first position there: when the filter keeps
# whole journeys, no grouping by journey is needed (seconds at a million journeys otherwise).
_FIRST_POSITIONS_FAST = """
SELECT journey_name, stage, avg(position) FROM stage_visits
WHERE journey_name IS NOT NULL AND visit = 1 AND {where} GROUP BY ALL
"""


def stage_orders(
    warehouse: Warehouse, filters: Filters | None = None, journey_map: JourneyMap | None = None
) -> dict[str, list[tuple[str, bool]]]:
    """Each journey type's ``(stage, in_map)`` in funnel order (map order, else inferred), unmapped ones last."""
    journey_map = journey_map if journey_map is not None else warehouse.journey_map
    filters = filters or Filters()
    where, params = filters.where()
    sql = _FIRST_POSITIONS_FAST if filters.keeps_whole_journeys else _FIRST_POSITIONS
    observed: dict[str, dict[str, float]] = {}
    for journey, stage, position in warehouse.query(sql.format(where=where), params):
        observed.setdefault(journey, {})[stage] = position
    return {j: _stage_order(j, stages, journey_map)[0] for j, stages in observed.items()}


def _stage_order(
    journey: str, observed: dict[str, float], journey_map: JourneyMap
) -> tuple[list[tuple[str, bool]], str, list[str]]:
    mapped = journey_map.journeys.get(journey)
    if mapped and mapped.stages:
        unmapped = sorted((s for s in observed if s not in mapped.stages), key=lambda s: (observed[s], s))
        return [(s, True) for s in mapped.stages] + [(s, False) for s in unmapped], "map", unmapped
    inferred = sorted(observed, key=lambda s: (observed[s], s))
    return [(s, True) for s in inferred], "inferred", []


def funnel(
    warehouse: Warehouse,
    filters: Filters | None = None,
    journey_map: JourneyMap | None = None,
    *,
    evaluators: bool = True,
) -> FunnelReport:
    """The per-stage funnel of every journey type matching ``filters``.

    ``evaluators=False`` leaves out the per-stage evaluator summaries (empty ``evaluators``): joining every
    score to its visit is most of a funnel's cost on a large warehouse, and a comparison does not show them.
    """
    filters = filters or Filters()
    journey_map = journey_map if journey_map is not None else warehouse.journey_map
    where, params = filters.where()
    per_stage, totals_sql = (_PER_STAGE_FAST, _TOTALS_FAST) if filters.keeps_whole_journeys else (_PER_STAGE, _TOTALS)
    rows = warehouse.query(per_stage.format(where=where), params)
    if not rows:
        return FunnelReport(filters, note=f"no stage visits match {filters.describe()}")
    totals = dict(warehouse.query(totals_sql.format(where=where), params))
    evaluations: dict[tuple[str, str], list[EvaluatorSummary]] = {}
    evals_sql, (where_e, params_e) = (
        (_EVALS_FAST, (where, params)) if filters.keeps_whole_journeys else (_EVALS, filters.where("v"))
    )
    summaries = warehouse.query(evals_sql.format(where=where_e), params_e) if evaluators else []
    for journey, stage, evaluator, mean, scored, failed, unscored in summaries:
        evaluations.setdefault((journey, stage), []).append(
            EvaluatorSummary(evaluator, mean, rate(failed, scored), unscored)
        )
    by_journey: dict[str, dict[str, tuple[Any, ...]]] = {}
    for row in rows:
        by_journey.setdefault(row[0], {})[row[1]] = row
    feedback = feedback_by_stage(warehouse, filters, {(r[0], r[1]): int(r[6]) for r in rows})
    journeys = []
    warnings = []
    for journey in sorted(by_journey):
        stats = by_journey[journey]
        order, how, unmapped = _stage_order(journey, {s: r[9] for s, r in stats.items()}, journey_map)
        if unmapped:
            warnings.append(f"journey {journey}: stages not in the journey map: {', '.join(unmapped)}")
        stages = []
        previous_entered: int | None = None
        for stage, in_map in order:
            row = stats.get(stage)
            entered, completed, open_, reentered, visits = (row[2], row[3], row[4], row[5], row[6]) if row else (0, 0, 0, 0, 0)
            stages.append(
                StageFunnel(
                    stage=stage,
                    in_map=in_map,
                    entered=entered,
                    completed=completed,
                    open=open_,
                    reentered=reentered,
                    visits=visits,
                    completion=rate(completed, entered),
                    conversion=ratio(entered, previous_entered) if previous_entered is not None and in_map else None,
                    reentry=rate(reentered, entered),
                    median_seconds=row[7] if row else None,
                    p90_seconds=row[8] if row else None,
                    evaluators=tuple(sorted(evaluations.get((journey, stage), []), key=lambda e: e.evaluator)),
                    feedback=feedback.get((journey, stage)),
                )
            )
            if in_map:
                previous_entered = entered
        journeys.append(JourneyFunnel(journey, int(totals.get(journey, 0)), how, tuple(stages), tuple(unmapped)))
    return FunnelReport(filters, tuple(journeys), warnings=tuple(warnings))


def routing_filters(warehouse: Warehouse) -> list[Filters]:
    """The filters ``/v1/route`` reads: each journey type, and each journey type and cohort."""
    pairs = warehouse.query(
        "SELECT DISTINCT journey_name, cohort FROM stage_visits WHERE journey_name IS NOT NULL ORDER BY ALL"
    )
    names = sorted({name for name, _ in pairs})
    return [Filters(journey=n) for n in names] + [Filters(journey=n, cohort=c) for n, c in pairs if c]

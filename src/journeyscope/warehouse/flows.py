"""How journeys really move: transitions, re-entry, channel mix, hand-offs that lose context.

Journeys are not the straight line a funnel draws. This module reads
``stage_visits`` (and ``evaluations`` when present) in DuckDB SQL and returns:

- the **transition graph**: stage → next stage counts per journey type,
  backtracks marked, and how journeys end (``(completed)``, ``(exit)``,
  ``(in progress)``);
- **journey completion** by cohort: a journey is complete when its last stage
  (in funnel order) has a ``completed`` visit;
- **channel-mix lift**: completion of journeys by their channel sequence against
  the journey type's overall rate;
- **retention between stages**: context-retention scores of visits by the stage
  pair (previous stage → this stage) where the hand-off happened.

Journey-level figures count the journeys that have at least one visit passing
the :class:`Filters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journeyscope import conventions as cv
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport, funnel, stage_orders
from journeyscope.warehouse.stats import Difference, Rate, difference, rate
from journeyscope.warehouse.store import Warehouse

RETENTION = cv.RETENTION_EVALUATOR

# The stage each visit led to is stored with it (``next_stage``), so the graph's stage-to-stage links are one
# GROUP BY. A filter that keeps whole journeys (type, cohort) applies to the visits directly; a channel or
# time filter selects the journeys with a matching visit and then counts all their steps. Where journeys end
# (completed, exit, in progress) is not counted here but taken from the funnel: one definition per figure.
_TRANSITION_COUNT = """
SELECT v.journey_name, v.stage AS from_stage, v.next_stage AS to_stage, count(*) AS journeys
FROM stage_visits v
"""
_TRANSITIONS_WHOLE = (
    _TRANSITION_COUNT
    + "WHERE v.journey_name IS NOT NULL AND v.next_stage IS NOT NULL AND {where} "
    + "GROUP BY ALL ORDER BY 1, 4 DESC, 2, 3"
)
_TRANSITIONS_MATCHED = (
    _TRANSITION_COUNT
    + "SEMI JOIN (SELECT journey_id FROM stage_visits WHERE journey_name IS NOT NULL AND {where}) m USING (journey_id) "
    + "WHERE v.journey_name IS NOT NULL AND v.next_stage IS NOT NULL GROUP BY ALL ORDER BY 1, 4 DESC, 2, 3"
)

#: Where the graph's end links go: the funnel's ``completed`` (at a journey type's last stage),
#: ``dropped`` and ``open`` figures of each stage.
COMPLETED, EXIT, IN_PROGRESS = "(completed)", "(exit)", "(in progress)"

# Each visit with the stage before it (a window over the journeys' visits, carrying the visit's own key
# for the join with its scores).
_RETENTION_PAIRS = f"""
WITH pairs AS (
    SELECT v.journey_id, v.journey_name, v.stage, v.visit,
           lag(v.stage) OVER (PARTITION BY v.journey_id ORDER BY v.position) AS from_stage
    FROM {{visits}} v
    WHERE v.journey_name IS NOT NULL AND {{where}}
)
SELECT p.journey_name, p.from_stage, p.stage, avg(e.score), count(*),
       count(*) FILTER (WHERE e.passed = false)
FROM pairs p
JOIN evaluations e ON e.journey_id = p.journey_id AND e.stage = p.stage AND e.visit = p.visit
WHERE e.evaluator = '{RETENTION}' AND e.score IS NOT NULL AND e.error IS NULL AND p.from_stage IS NOT NULL
GROUP BY ALL ORDER BY 1, 4, 2, 3
"""


@dataclass(frozen=True)
class Transition:
    """``journeys`` journeys went from ``source`` straight to ``target``."""

    journey: str
    source: str
    target: str
    journeys: int
    backtrack: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "from": self.source,
            "to": self.target,
            "journeys": self.journeys,
            "backtrack": self.backtrack,
        }


def transitions(warehouse: Warehouse, filters: Filters | None = None) -> list[Transition]:
    """The stage-to-stage graph, with its ends, of the journeys matching ``filters``.

    Links between stages count the steps journeys took (a journey that went back and forth counts
    each time). The ends are the funnel's figures, so every page shows one number for them:
    ``(exit)`` from a stage is its ``dropped``, ``(in progress)`` its ``open``, and ``(completed)``
    from the last stage of the journey type its ``completed``.
    """
    filters = filters or Filters()
    where, params = filters.where()
    report = funnel(warehouse, filters, evaluators=False)
    orders = {j.journey: [s.stage for s in j.stages] for j in report.journeys}
    result = []
    sql = (_TRANSITIONS_WHOLE if filters.keeps_whole_journeys else _TRANSITIONS_MATCHED).format(where=where)
    for journey, source, target, count in warehouse.query(sql, params):
        order = orders.get(journey, [])
        backtrack = source in order and target in order and order.index(target) < order.index(source)
        result.append(Transition(journey, source, target, int(count), backtrack))
    for j in report.journeys:
        mapped = [s for s in j.stages if s.in_map]
        last = mapped[-1].stage if mapped else None
        for s in j.stages:
            completed = s.completed if s.stage == last else 0
            ends = ((COMPLETED, completed), (EXIT, s.dropped), (IN_PROGRESS, s.open))
            result.extend(Transition(j.journey, s.stage, target, n, False) for target, n in ends if n)
    return result


@dataclass(frozen=True)
class Lift:
    """Completion of journeys with one channel sequence against their journey type overall."""

    journey: str
    channels: str
    completion: Rate
    overall: Rate
    difference: Difference

    @property
    def lift(self) -> float | None:
        if self.completion.value is None or not self.overall.value:
            return None
        return self.completion.value / self.overall.value

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "channels": self.channels,
            "journeys": self.completion.n,
            "completion_rate": self.completion.value,
            "completion_rate_ci": [self.completion.low, self.completion.high],
            "overall_rate": self.overall.value,
            "lift": self.lift,
            "difference": self.difference.value,
            "difference_ci": [self.difference.low, self.difference.high],
        }


@dataclass(frozen=True)
class JourneyOutcomes:
    """Journey-level completion overall, by cohort, and by channel sequence."""

    overall: dict[str, Rate]
    by_cohort: dict[tuple[str, str | None], Rate]
    channel_mix: list[Lift]

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": {j: r.as_dict() for j, r in self.overall.items()},
            "by_cohort": [
                {"journey": j, "cohort": c, **r.as_dict()} for (j, c), r in sorted(self.by_cohort.items(), key=str)
            ],
            "channel_mix": [lift.as_dict() for lift in self.channel_mix],
        }


def _finals_sql(orders: dict[str, list[tuple[str, bool]]]) -> tuple[str, list[str]]:
    """A VALUES list of each journey type's last stage (the last one the map places)."""
    params: list[str] = []
    for journey, stages in orders.items():
        placed = [stage for stage, in_map in stages if in_map]
        params += [journey, placed[-1]]
    return ", ".join("(?, ?)" for _ in range(len(params) // 2)) or "(NULL, NULL)", params


# Every visit carries its journey's facts: one position-0 visit per journey, the channel sequence
# (``channel_path``), and, on the last visit to the journey type's final stage, whether any visit there
# completed. So completion by cohort and by channel sequence is one GROUP BY over the visits, never a
# grouping by journey. A filter that keeps whole journeys (type, cohort) applies to the visits directly;
# a channel or time filter selects the journeys with a matching visit, then counts their visits.
_COMPLETION = """
WITH finals(journey_name, final_stage) AS (SELECT * FROM (VALUES {finals}))
SELECT v.journey_name, v.cohort, {channels} AS channels, {level} AS level,
       count(*) FILTER (WHERE v.stage = f.final_stage AND v.last_of_stage AND v.stage_completed) AS completed,
       count(*) FILTER (WHERE v.position = 0) AS journeys
FROM {visits} v LEFT JOIN finals f USING (journey_name)
WHERE v.journey_name IS NOT NULL AND (v.position = 0 OR v.last_of_stage AND v.stage_completed) AND {where}
GROUP BY GROUPING SETS ((v.journey_name), (v.journey_name, v.cohort){mix})
"""
# All visits of the journeys with a visit passing the filter (no DISTINCT needed: a semi join keeps each
# visit once however many of its journey's visits matched).
_MATCHING_VISITS = """(
    SELECT * FROM stage_visits
    SEMI JOIN (SELECT journey_id FROM stage_visits WHERE journey_name IS NOT NULL AND {where}) m USING (journey_id)
)"""


def journey_outcomes(
    warehouse: Warehouse,
    filters: Filters | None = None,
    min_journeys: int = 1,
    *,
    channel_mix: bool = True,
    orders: dict[str, list[tuple[str, bool]]] | None = None,
) -> JourneyOutcomes:
    """Whole-journey completion by journey type, cohort and (unless ``channel_mix=False``) channel sequence.

    ``orders``: the :func:`stage_orders` of ``filters`` when the caller has them already (a funnel of the
    same filters holds them), which saves a pass over the visits.
    """
    filters = filters or Filters()
    where, params = filters.where()
    if orders is None:
        orders = stage_orders(warehouse, filters)
    finals, final_params = _finals_sql(orders)
    # grouping(cohort, channels): 2 = cohort rolled up, 1 = channels rolled up, 3 = both.
    if channel_mix:
        grouped = {
            "channels": "v.channel_path",
            "level": "grouping(v.cohort, v.channel_path)",
            "mix": ", (v.journey_name, v.channel_path)",
        }
    else:
        grouped = {"channels": "NULL", "level": "grouping(v.cohort) * 2 + 1", "mix": ""}
    if filters.keeps_whole_journeys:
        sql = _COMPLETION.format(finals=finals, visits="stage_visits", where=where, **grouped)
    else:
        visits = _MATCHING_VISITS.format(where=where)
        sql = _COMPLETION.format(finals=finals, visits=visits, where="TRUE", **grouped)
    rows = warehouse.query(sql, final_params + params)
    overall = {j: rate(int(k), int(n)) for j, _, _, level, k, n in rows if level == 3}
    by_cohort = {(j, c): rate(int(k), int(n)) for j, c, _, level, k, n in rows if level == 1}
    mix = []
    for journey, _, channels, level, k, n in rows:
        if level == 2 and n >= min_journeys:
            here, everyone = rate(int(k), int(n)), overall[journey]
            rest = rate(everyone.k - here.k, everyone.n - here.n)
            mix.append(Lift(journey, channels or "?", here, everyone, difference(rest, here)))
    mix.sort(key=lambda m: (m.journey, -m.completion.n, m.channels))
    return JourneyOutcomes(overall, by_cohort, mix)


@dataclass(frozen=True)
class HandOff:
    """Context retention of visits entered from ``source`` into ``target``."""

    journey: str
    source: str
    target: str
    mean_score: float
    fail_rate: Rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "from": self.source,
            "to": self.target,
            "mean_retention": self.mean_score,
            "visits": self.fail_rate.n,
            "fail_rate": self.fail_rate.value,
            "fail_rate_ci": [self.fail_rate.low, self.fail_rate.high],
        }


def retention_between_stages(warehouse: Warehouse, filters: Filters | None = None) -> list[HandOff]:
    """Context-retention scores per stage pair, worst first (ties by stage pair); empty before anything is evaluated."""
    filters = filters or Filters()
    where, params = filters.where()
    if filters.keeps_whole_journeys:
        sql = _RETENTION_PAIRS.format(visits="stage_visits", where=where)
    else:
        sql = _RETENTION_PAIRS.format(visits=_MATCHING_VISITS.format(where=where), where="TRUE")
    rows = warehouse.query(sql, params)
    return [HandOff(j, s, t, float(mean), rate(int(failed), int(n))) for j, s, t, mean, n, failed in rows]


def reentry_ranking(report: FunnelReport, min_entered: int = 1) -> list[dict[str, Any]]:
    """Stages ranked by re-entry rate: the stages customers restart most (docs/contracts.md)."""
    rows = [
        {
            "journey": j.journey,
            "stage": s.stage,
            "reentered": s.reentered,
            "entered": s.entered,
            "reentry_rate": s.reentry.value,
            "reentry_rate_ci": [s.reentry.low, s.reentry.high],
        }
        for j in report.journeys
        for s in j.stages
        if s.entered >= min_entered
    ]
    rows.sort(key=lambda r: (-(r["reentry_rate"] or 0.0), -r["entered"], r["journey"], r["stage"]))
    return rows

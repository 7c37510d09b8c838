"""Reading evaluator results back: the failing visits worst first, and score distributions.

The dashboard's stage view and the eval API (``/v1/evaluations/failing``,
``/v1/evaluations/distribution``) both call these, so they answer the same.
Everything is aggregated or limited in DuckDB: a distribution is one row per
(evaluator, bin), never the scores themselves, and the failing list stops at
``limit`` rows, so both stay cheap on millions of visits.

Both take the analytics :class:`Filters` (journey type, cohort, channel, time
window) over the scored visits' ``stage_visits`` rows, plus a stage and an
evaluator. A warehouse without the ``evaluations`` table, or with nothing
scored yet, gives empty results, not an error: evaluating is a separate step.
"""

from __future__ import annotations

import json
from typing import Any

from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import OUTCOME_AT

from journeyscope.errors import InvalidInputError

__all__ = ["DEFAULT_BINS", "MAX_FAILING", "cited_turns", "failing_visits", "score_distribution"]

DEFAULT_BINS = 10
MAX_FAILING = 1000

#: Evidence keys whose value names turns of the visit: an index, a list of indexes, or ``[index, seconds]`` pairs.
_TURN_KEYS = (
    "turn",
    "turns",
    "repeats",
    "marked_turns",
    "slow_replies",
    "silences",
    "pauses",
    "clarifications",
    "rejected_turn",
)


def cited_turns(evidence: dict[str, Any] | None) -> list[int]:
    """The turn indexes (within the visit) an evaluator's evidence points at, sorted.

    Evaluators record the turns that decided their verdict under a few keys
    (``turn``, ``repeats``, ``slow_replies`` as ``[index, seconds]``...); the
    dashboard highlights exactly these turns in the transcript.
    """
    if not evidence:
        return []
    found: set[int] = set()
    for key in _TURN_KEYS:
        value = evidence.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, list) and item and isinstance(item[0], int) and not isinstance(item[0], bool):
                found.add(item[0])
            elif isinstance(item, int) and not isinstance(item, bool):
                found.add(item)
    return sorted(i for i in found if i >= 0)


def _evidence(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _where(filters: Filters | None, stage: str | None, evaluator: str | None) -> tuple[str, list[Any], bool]:
    """The condition over ``e`` (and ``v``), its parameters, and whether the visits need joining to filter.

    A filter that keeps or drops whole journeys is checked on the journey type and cohort every
    evaluation carries (:mod:`journeyscope.warehouse.journey_facts`); a NULL type there means what it
    means on the visit (no visit, or one without a type), so both leave the same rows out.
    """
    filters = filters or Filters()
    alias = "e" if filters.keeps_whole_journeys else "v"
    where, params = filters.where(alias)
    where = f"{alias}.journey_name IS NOT NULL AND {where}"
    if stage is not None:
        where += " AND e.stage = ?"
        params.append(stage)
    if evaluator is not None:
        where += " AND e.evaluator = ?"
        params.append(evaluator)
    return where, params, alias == "v"


_FAILING = f"""
SELECT e.journey_id, v.journey_name, e.stage, e.visit, e.evaluator, e.score, e.label, e.reason, e.evidence,
       e.engine, e.version, v.customer_id, v.cohort, v.channel, v.started_at, v.turns,
       {OUTCOME_AT} AS outcome
FROM evaluations e
JOIN stage_visits v USING (journey_id, stage, visit)
WHERE e.passed = false AND e.error IS NULL AND {{where}}
ORDER BY e.score ASC NULLS LAST, v.started_at DESC, e.journey_id, e.evaluator
LIMIT ?
"""


def failing_visits(
    warehouse: Warehouse,
    filters: Filters | None = None,
    *,
    stage: str | None = None,
    evaluator: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Failed evaluations of the matching visits, lowest score first (then most recent).

    One row per failed (visit, evaluator) with the reason and the turns its
    evidence cites, so a reader can go straight to the conversation.
    """
    if not 1 <= limit <= MAX_FAILING:
        raise InvalidInputError(f"limit must be between 1 and {MAX_FAILING}, got {limit}")
    where, params, _ = _where(filters, stage, evaluator)  # the join stays: the rows show their visits
    rows = warehouse.query(_FAILING.format(where=where), [warehouse.clock(), *params, limit])
    out = []
    for (
        jid,
        jname,
        st,
        visit,
        ev,
        score,
        label,
        reason,
        evidence,
        engine,
        version,
        customer,
        cohort,
        channel,
        started,
        turns,
        outcome,
    ) in rows:
        parsed = _evidence(evidence)
        out.append(
            {
                "journey_id": jid,
                "journey": jname,
                "stage": st,
                "visit": visit,
                "evaluator": ev,
                "score": score,
                "label": label,
                "reason": reason,
                "evidence": parsed,
                "cited_turns": cited_turns(parsed),
                "engine": engine,
                "version": version,
                "customer_id": customer,
                "cohort": cohort,
                "channel": channel,
                "started_at": _iso(started),
                "turns": turns,
                "outcome": outcome,
            }
        )
    return out


_DISTRIBUTION = """
SELECT e.evaluator,
       CASE WHEN e.score IS NOT NULL THEN CAST(least(floor(e.score * ?), ? - 1) AS INTEGER) END AS bin,
       count(*) AS n,
       count(*) FILTER (WHERE e.passed = false) AS failed,
       sum(e.score) AS total
FROM evaluations e
{join}
WHERE e.error IS NULL AND {where}
GROUP BY ALL
"""
_JOIN_VISITS = "JOIN stage_visits v USING (journey_id, stage, visit)"


def score_distribution(
    warehouse: Warehouse,
    filters: Filters | None = None,
    *,
    stage: str | None = None,
    evaluator: str | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """Per evaluator: counts of scores in ``bins`` equal bins of [0, 1], plus the unscored and failed.

    A bin ``i`` holds scores in ``[i/bins, (i+1)/bins)``; a score of exactly 1
    falls in the last bin. Visits an evaluator could not score (no evidence,
    unsupported language) are counted in ``unscored``; engine errors in
    ``errors``.
    """
    if not 1 <= bins <= 100:
        raise InvalidInputError(f"bins must be between 1 and 100, got {bins}")
    result: dict[str, Any] = {
        "stage": stage,
        "evaluator": evaluator,
        "filters": (filters or Filters()).as_dict(),
        "bins": bins,
        "edges": [i / bins for i in range(bins + 1)],
        "evaluators": [],
    }
    where, params, join = _where(filters, stage, evaluator)
    per: dict[str, dict[str, Any]] = {}
    for name, bin_, n, failed, total in warehouse.query(
        _DISTRIBUTION.format(where=where, join=_JOIN_VISITS if join else ""), [bins, bins, *params]
    ):
        entry = per.setdefault(
            name,
            {"evaluator": name, "counts": [0] * bins, "scored": 0, "unscored": 0, "failed": 0, "_total": 0.0},
        )
        if bin_ is None:
            entry["unscored"] += int(n)
        else:
            entry["counts"][int(bin_)] += int(n)
            entry["scored"] += int(n)
            entry["_total"] += float(total or 0.0)
        entry["failed"] += int(failed)
    for name in sorted(per):
        entry = per[name]
        total = entry.pop("_total")
        # rounded: DuckDB's parallel sums differ in the last bits with the thread count, and the file and the
        # API must give the same figure
        entry["mean_score"] = round(total / entry["scored"], 12) if entry["scored"] else None
        entry["fail_rate"] = entry["failed"] / entry["scored"] if entry["scored"] else None
        result["evaluators"].append(entry)
    return result


def _iso(value: Any) -> str | None:
    """Naive UTC timestamps as ISO 8601 with a ``Z`` (what every journeyscope record uses)."""
    if value is None:
        return None
    return (
        value.isoformat(timespec="milliseconds") + "Z"
        if getattr(value, "tzinfo", None) is None
        else value.isoformat(timespec="milliseconds")
    )

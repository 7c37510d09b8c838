"""One journey, whole: its visits, transcript, scores (with the turns they cite) and routing decisions.

This is the drill-down behind every aggregate: a failing stage is only
convincing once someone reads the conversation that failed. The dashboard's
journey explorer renders the dict :func:`journey_detail` returns, and the eval
API serves the same dict at ``GET /v1/journeys/{journey_id}``, so it holds only
JSON types (times are ISO 8601 UTC strings).

Turn ``index`` is the turn's position within its visit, tool and system turns
included, which is exactly what evaluators cite in their evidence
(:mod:`journeyscope.evaluators.text`), so ``cited_by`` can mark the turns a
score points at. Turns are the evaluators' own transcripts
(:func:`journeyscope.warehouse.transcripts.load_contexts`), so what the
explorer shows is what was scored.

Routing decisions come from table ``route_decisions`` when the routing API has
created it; before that the list is empty and ``route_decisions_recorded`` is
false, which a reader should show as "none recorded", not as an error.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from journeyscope.warehouse.decisions import decisions
from journeyscope.warehouse.evaluation_reads import cited_turns
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.transcripts import load_contexts

from journeyscope.errors import InvalidInputError

__all__ = ["journey_detail", "search_journeys"]

_EVALS = """
SELECT stage, visit, evaluator, score, passed, label, reason, evidence, engine, version, error
FROM evaluations WHERE journey_id = ? ORDER BY stage, visit, evaluator
"""

def _iso(value: Any) -> Any:
    """Warehouse timestamps are naive UTC: give them a ``Z`` so every reader parses them as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec="milliseconds") + "Z"
        return value.isoformat(timespec="milliseconds")
    return value


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, str) and key in ("signals", "evidence", "attributes"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = _iso(value)
    return out


def journey_detail(warehouse: Warehouse, journey_id: str) -> dict[str, Any] | None:
    """Everything recorded about ``journey_id``, or None when the warehouse has no visit of it."""
    if not isinstance(journey_id, str) or not journey_id.strip():
        raise InvalidInputError("journey id must be a non-empty string")
    visits = warehouse.stage_visits(journey_id)
    if not visits:
        return None
    cur = warehouse.cursor()
    try:
        contexts = load_contexts(cur, [journey_id], warehouse.clock())
    finally:
        cur.close()
    evaluations: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (
        stage,
        visit,
        ev,
        score,
        passed,
        label,
        reason,
        evidence,
        engine,
        version,
        error,
    ) in warehouse.query(_EVALS, [journey_id]):
        parsed = json.loads(evidence) if isinstance(evidence, str) else (evidence or {})
        evaluations.setdefault((stage, visit), []).append(
            {
                "evaluator": ev,
                "score": score,
                "passed": passed,
                "label": label,
                "reason": reason,
                "evidence": parsed,
                "cited_turns": cited_turns(parsed if isinstance(parsed, dict) else {}),
                "engine": engine,
                "version": version,
                "error": error,
            }
        )
    # The evaluators' own transcripts: turn i here is turn i of their evidence.
    transcript: dict[int, list[dict[str, Any]]] = {
        key.position: [
            {
                "index": i,
                "role": t.role,
                "text": t.text,
                "name": t.name,
                "stage": t.stage,
                "channel": t.channel,
                "ts": _iso(t.ts),
                "cited_by": [],
            }
            for i, t in enumerate(ctx.visit.turns)
        ]
        for key, ctx in contexts.items()
    }
    out_visits = []
    for v in visits:
        scores = evaluations.get((v["stage"], v["visit"]), [])
        turns = transcript.get(v["position"], [])
        for score in scores:
            for i in score["cited_turns"]:
                if 0 <= i < len(turns):
                    turns[i]["cited_by"].append(score["evaluator"])
        out_visits.append(
            {
                "position": v["position"],
                "stage": v["stage"],
                "visit": v["visit"],
                "channel": v["channel"],
                "channels": list(v["channels"] or []),
                "started_at": _iso(v["started_at"]),
                "ended_at": _iso(v["ended_at"]),
                "outcome": v["outcome"],
                "outcome_source": v["outcome_source"],
                "turns": v["turns"],
                "spans": v["spans"],
                "evaluations": scores,
                "transcript": turns,
            }
        )
    first, last = visits[0], visits[-1]
    channel_path: list[str] = []
    for v in visits:
        if v["channel"] and (not channel_path or channel_path[-1] != v["channel"]):
            channel_path.append(v["channel"])
    routes = sorted(decisions(warehouse, journey_id, limit=1000), key=lambda r: str(r.get("decided_at") or ""))
    return {
        "journey_id": journey_id,
        "customer_id": first["customer_id"],
        "journey": first["journey_name"],
        "cohort": first["cohort"],
        "started_at": _iso(first["started_at"]),
        "ended_at": _iso(max(v["ended_at"] for v in visits)),
        "last_stage": last["stage"],
        "last_outcome": last["outcome"],
        "channel_path": channel_path,
        "stages": [v["stage"] for v in visits],
        "visits": out_visits,
        "evaluated": any(v["evaluations"] for v in out_visits),
        "route_decisions": routes,
    }


# Newest matching visits first (a top-k, not a sort of every journey), then the few journeys they
# belong to, aggregated whole: a picker must answer at once on a million journeys.
_SEARCH = """
WITH recent AS (
    SELECT journey_id, started_at FROM stage_visits
    WHERE {matches} AND {where}
    ORDER BY journey_id = ? DESC, started_at DESC
    LIMIT ?
),
picked AS (
    SELECT journey_id, bool_or(journey_id = ?) AS exact, max(started_at) AS last_at
    FROM recent GROUP BY journey_id ORDER BY exact DESC, last_at DESC LIMIT ?
)
SELECT v.journey_id, any_value(v.journey_name), any_value(v.cohort), any_value(v.customer_id),
       min(v.started_at), count(*), string_agg(v.stage, ' → ' ORDER BY v.position)
FROM stage_visits v JOIN picked p USING (journey_id)
GROUP BY v.journey_id
ORDER BY any_value(p.exact) DESC, any_value(p.last_at) DESC
"""


_MATCHES = "(journey_id ILIKE ? ESCAPE '\\' OR customer_id ILIKE ? ESCAPE '\\')"


def search_journeys(
    warehouse: Warehouse, query: str = "", filters: Filters | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Journeys whose id or customer id contains ``query`` (an exact id first, then most recently active).

    Each journey is shown whole (all its visits), whichever of its visits matched ``filters``.
    """
    if not 1 <= limit <= 500:
        raise InvalidInputError(f"limit must be between 1 and 500, got {limit}")
    query = (query or "").strip()
    pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where, params = (filters or Filters()).where()
    # An empty query matches every id: no pattern to test on every visit.
    matches, patterns = ("TRUE", []) if not query else (_MATCHES, [pattern, pattern])
    rows = warehouse.query(
        _SEARCH.format(matches=matches, where=where), [*patterns, *params, query, limit * 20, query, limit]
    )
    return [
        {
            "journey_id": j,
            "journey": name,
            "cohort": cohort,
            "customer_id": customer,
            "started_at": _iso(started),
            "visits": visits,
            "path": path,
        }
        for j, name, cohort, customer, started, visits, path in rows
    ]

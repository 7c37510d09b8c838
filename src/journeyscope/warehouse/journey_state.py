"""The live state of one journey, as an orchestrator needs it to decide the next step.

Where the journey is (current stage, channel, last activity), how it got there
(its visits with outcomes and what the customer reported about them), what the
evaluators last said, and the journey-level signals the routing policies read
(re-entries, context-retention and resolution failures, silence, channel
switches, and the customer's own CSAT and effort answers).

Reading and rendering are split: :func:`journey_rows` reads the stored rows of
many journeys in two queries, and :func:`render_state` turns one journey's rows
into its state *as of a given moment*. The parts that move with the clock (an
open visit whose idle timeout has passed reads as ``abandoned``; the silence so
far) are computed at rendering, so the server can keep the rows of live journeys
in memory, re-read them only when the writer says a journey changed, and still
answer ``/v1/route`` with the state as of the request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from journeyscope import conventions as cv
from journeyscope.warehouse.visits import outcome_at
from journeyscope.warehouse.store import Warehouse

RETENTION = cv.RETENTION_EVALUATOR
RESOLUTION = cv.RESOLUTION_EVALUATOR

_VISITS = """
SELECT journey_id, stage, visit, started_at, ended_at, outcome, epoch_ns(open_until), turns, channel, channels,
       journey_name, customer_id, cohort, csat, ces, nps, feedback_at
FROM stage_visits WHERE journey_id IN ({wanted}) ORDER BY journey_id, position
"""

_EVALS = """
SELECT journey_id, stage, visit, evaluator, score, passed, label, reason, error, evaluated_at
FROM evaluations WHERE journey_id IN ({wanted}) ORDER BY journey_id, evaluated_at, evaluator, engine
"""

#: Up to this many journeys are looked up through the journey_id index (about a millisecond each at a
#: million journeys); more are joined in one scan, which costs the same for ten journeys as for ten thousand.
_INDEX_LOOKUPS = 64


@dataclass
class JourneyRows:
    """One journey's stored visits and evaluations, as read (clock-independent)."""

    visits: list[tuple[Any, ...]] = field(default_factory=list)
    evaluations: list[tuple[Any, ...]] = field(default_factory=list)
    #: The clock-independent part of the rendered state, built on first use (rows held in memory are
    #: rendered on every request; the timestamps' text alone would cost more than the rest).
    template: dict[str, Any] | None = field(default=None, repr=False, compare=False)


def recent_journeys(warehouse: Warehouse, limit: int) -> list[str]:
    """The ``limit`` journeys with the most recent stage activity, most recent first."""
    rows = warehouse.query(
        "SELECT journey_id FROM stage_visits GROUP BY journey_id ORDER BY max(ended_at) DESC LIMIT ?", [limit])
    return [r[0] for r in rows]


def journey_rows(warehouse: Warehouse, journey_ids: Iterable[str]) -> dict[str, JourneyRows]:
    """The rows of every journey in ``journey_ids`` that has visits (two queries, whatever the count)."""
    ids = sorted(set(journey_ids))
    out: dict[str, JourneyRows] = {}
    if not ids:
        return out
    cur = warehouse.cursor()
    try:
        if len(ids) <= _INDEX_LOOKUPS:
            wanted, params = ", ".join("?" * len(ids)), ids
        else:
            cur.register("js_wanted", pa.table({"journey_id": pa.array(ids, pa.string())}))
            wanted, params = "SELECT journey_id FROM js_wanted", []
        for row in cur.execute(_VISITS.format(wanted=wanted), params).fetchall():
            out.setdefault(row[0], JourneyRows()).visits.append(row[1:])
        for row in cur.execute(_EVALS.format(wanted=wanted), params).fetchall():
            if row[0] in out:
                out[row[0]].evaluations.append(row[1:])
    finally:
        cur.close()
    for rows in out.values():
        # Scores written together share evaluated_at: the later visit's is the latest, whatever the scan's order.
        position = {(v[0], v[1]): i for i, v in enumerate(rows.visits)}
        rows.evaluations.sort(key=lambda e: (e[-1], position.get((e[0], e[1]), -1)))
    return out


def journey_state(warehouse: Warehouse, journey_id: str, now_ns: int | None = None) -> dict[str, Any] | None:
    """The journey's state as a plain dict, or ``None`` when the warehouse has no such journey."""
    rows = journey_rows(warehouse, [journey_id]).get(journey_id)
    return None if rows is None else render_state(journey_id, rows, now_ns)


def render_state(journey_id: str, rows: JourneyRows, now_ns: int | None = None) -> dict[str, Any]:
    """One journey's state as of ``now_ns`` (default: now) from its stored rows.

    The parts that do not move with the clock are shared between calls on the same rows: treat
    the answer as read-only.
    """
    now_ns = now_ns if now_ns is not None else time.time_ns()
    template = rows.template
    if template is None:
        template = rows.template = _template(journey_id, rows)
    signals = {**template["signals"], "silence_seconds": max(0.0, (now_ns - template["_last_ns"]) / 1e9)}
    state = {k: v for k, v in template.items() if k != "_last_ns"}
    state["signals"] = signals
    visits = rows.visits
    if any(v[4] == "open" for v in visits):
        state["visits"] = [
            {**shown, "outcome": _outcome_at(v, now_ns)} if v[4] == "open" else shown
            for v, shown in zip(visits, template["visits"], strict=True)
        ]
        state["current_outcome"] = _outcome_at(visits[-1], now_ns)
    return state


def _template(journey_id: str, rows: JourneyRows) -> dict[str, Any]:
    visits = rows.visits
    current = visits[-1]
    latest: dict[str, dict[str, Any]] = {}
    failures = {RETENTION: 0, RESOLUTION: 0}
    for stage, visit, evaluator, score, passed, label, reason, error, evaluated_at in rows.evaluations:
        latest[evaluator] = {
            "stage": stage, "visit": visit, "score": score, "passed": passed, "label": label,
            "reason": reason, "error": error, "evaluated_at": _iso(evaluated_at),
        }
        if evaluator in failures and passed is False:
            failures[evaluator] += 1
    channels = [v[7] for v in visits]
    switches = sum(1 for a, b in zip(channels, channels[1:]) if a and b and a != b)
    switches += sum(max(0, len(v[8] or []) - 1) for v in visits)
    last_activity = max(v[3] for v in visits)
    return {
        "journey_id": journey_id,
        "customer_id": current[10],
        "journey": current[9],
        "cohort": current[11],
        "current_stage": current[0],
        "current_visit": current[1],
        "current_outcome": current[4],
        "channel": current[7],
        "last_activity": _iso(last_activity),
        "visits": [
            {
                "stage": v[0], "visit": v[1], "started_at": _iso(v[2]), "ended_at": _iso(v[3]),
                "outcome": v[4], "turns": v[6], "channel": v[7],
                **({"feedback": {"csat": v[12], "ces": v[13], "nps": v[14], "at": _iso(v[15])}}
                   if v[15] is not None else {}),
            }
            for v in visits
        ],
        "latest_scores": latest,
        "signals": {
            "visits": len(visits),
            "reentries": sum(1 for v in visits if v[1] >= 2),
            "stage_reentries": max(0, current[1] - 1),
            "retention_failures": failures[RETENTION],
            "resolution_failures": failures[RESOLUTION],
            "silence_seconds": 0.0,
            "channel_switches": switches,
            **_reported(visits),
        },
        "_last_ns": _epoch_ns(last_activity),
    }


def _reported(visits: list[tuple[Any, ...]]) -> dict[str, float]:
    """The customer's own answers as journey signals (none until they answer): latest and worst CSAT and effort."""
    answered = sorted((v for v in visits if v[15] is not None), key=lambda v: v[15])
    out: dict[str, float] = {}
    csat = [v[12] for v in answered if v[12] is not None]
    ces = [v[13] for v in answered if v[13] is not None]
    if csat:
        out["csat_last"], out["csat_min"] = csat[-1], min(csat)
    if ces:
        out["ces_last"], out["ces_max"] = ces[-1], max(ces)
    return out


def _outcome_at(visit: tuple[Any, ...], now_ns: int) -> str:
    return outcome_at(visit[4], visit[5], now_ns)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def _epoch_ns(value: datetime) -> int:
    return int(value.replace(tzinfo=timezone.utc).timestamp() * 1e9)

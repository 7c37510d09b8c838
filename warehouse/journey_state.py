"""The live state of one journey, as an orchestrator needs it to decide the next step.

Where the journey is (current stage, channel, last activity), how it got there
(its visits with outcomes), what the evaluators last said, and the journey-level
friction signals the routing policies read (re-entries, context-retention and
resolution failures, silence, channel switches). Point lookups by journey id,
kept cheap: the API answers ``/v1/route`` from this on every turn.
"""

from __future__ import annotations

import time
from datetime import timezone
from typing import Any

from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import OUTCOME_AT

RETENTION = "customer_agent_context_retention"
RESOLUTION = "conversation_resolution"

_VISITS = f"""
SELECT stage, visit, position, started_at, ended_at, {OUTCOME_AT} AS outcome, turns, channel, channels,
       journey_name, customer_id, cohort
FROM stage_visits WHERE journey_id = ? ORDER BY position
"""

_EVALS = """
SELECT stage, visit, evaluator, score, passed, label, reason, error, evaluated_at
FROM evaluations WHERE journey_id = ? ORDER BY evaluated_at
"""


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


def journey_state(warehouse: Warehouse, journey_id: str, now_ns: int | None = None) -> dict[str, Any] | None:
    """The journey's state as a plain dict, or ``None`` when the warehouse has no such journey."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    visits = warehouse.query(_VISITS, [now_ns, journey_id])
    if not visits:
        return None
    evaluations = warehouse.query(_EVALS, [journey_id])
    current = visits[-1]
    latest: dict[str, dict[str, Any]] = {}
    failures = {RETENTION: 0, RESOLUTION: 0}
    for stage, visit, evaluator, score, passed, label, reason, error, evaluated_at in evaluations:
        latest[evaluator] = {
            "stage": stage, "visit": visit, "score": score, "passed": passed, "label": label,
            "reason": reason, "error": error, "evaluated_at": _iso(evaluated_at),
        }
        if evaluator in failures and passed is False:
            failures[evaluator] += 1
    channels = [v[7] for v in visits]
    switches = sum(1 for a, b in zip(channels, channels[1:]) if a and b and a != b)
    switches += sum(max(0, len(v[8] or []) - 1) for v in visits)
    last_activity = max(v[4] for v in visits)
    signals = {
        "visits": len(visits),
        "reentries": sum(1 for v in visits if v[1] >= 2),
        "stage_reentries": max(0, current[1] - 1),
        "retention_failures": failures[RETENTION],
        "resolution_failures": failures[RESOLUTION],
        "silence_seconds": max(0.0, (now_ns - _epoch_ns(last_activity)) / 1e9),
        "channel_switches": switches,
    }
    return {
        "journey_id": journey_id,
        "customer_id": current[10],
        "journey": current[9],
        "cohort": current[11],
        "current_stage": current[0],
        "current_visit": current[1],
        "current_outcome": current[5],
        "channel": current[7],
        "last_activity": _iso(last_activity),
        "visits": [
            {
                "stage": v[0], "visit": v[1], "started_at": _iso(v[3]), "ended_at": _iso(v[4]),
                "outcome": v[5], "turns": v[6], "channel": v[7],
            }
            for v in visits
        ],
        "latest_scores": latest,
        "signals": signals,
    }


def _epoch_ns(value: Any) -> int:
    return int(value.replace(tzinfo=timezone.utc).timestamp() * 1e9)


"""Routing decisions, read back: they are ``journey.route`` spans (docs/contracts.md), so the log is a query.

Keeping decisions as spans means they are redacted, exported and erased with
the rest of the journey, and need no table of their own. The server writes
them (:mod:`journeyscope.server.decisions`); the API, the dashboard and the
``route-decisions`` export read them here.
"""

from __future__ import annotations

import json
from typing import Any

from journeyscope.warehouse.store import Warehouse

#: Span attribute names of a decision.
DECISION_PREFIX = "route."

_COLUMNS = """
    attributes->>'route.decision_id' AS decision_id, journey_id, attributes->>'route.stage' AS stage,
    attributes->>'route.action' AS action, attributes->>'route.mode' AS mode,
    (attributes->>'route.confidence')::DOUBLE AS confidence, attributes->>'route.reason' AS reason,
    attributes->>'route.policy_version' AS policy_version, attributes->>'route.requested_by' AS requested_by,
    strftime(start_time, '%Y-%m-%dT%H:%M:%S.%fZ') AS decided_at
"""

#: ``journeyscope export route-decisions``: every decision with the inputs and rules behind it.
ROUTE_DECISIONS_EXPORT = f"""
    SELECT {_COLUMNS}, customer_id, journey_name, cohort,
           attributes->>'route.fired' AS fired, attributes->>'route.signals' AS inputs
    FROM spans WHERE name = 'journey.route' ORDER BY start_time
"""


def decisions(warehouse: Warehouse, journey_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Logged decisions, newest first (optionally of one journey)."""
    where, params = ("AND journey_id = ?", [journey_id]) if journey_id else ("", [])
    cur = warehouse.cursor()
    try:
        result = cur.execute(
            f"SELECT {_COLUMNS} FROM spans WHERE name = 'journey.route' {where} ORDER BY start_time DESC LIMIT ?",
            [*params, limit],
        )
        names = [d[0] for d in result.description]
        return [dict(zip(names, row)) for row in result.fetchall()]
    finally:
        cur.close()


def decision_attributes(decision: dict[str, Any]) -> dict[str, Any]:
    """A routing decision as ``journey.route`` span attributes."""
    return {
        "route.decision_id": decision["decision_id"],
        "route.stage": decision.get("stage") or "",
        "route.action": decision["action"],
        "route.mode": decision["mode"],
        "route.confidence": decision["confidence"],
        "route.reason": decision["reason"],
        "route.policy_version": decision["policy_version"],
        "route.requested_by": decision.get("requested_by") or "anonymous",
        "route.fired": json.dumps(decision["fired"]),
        "route.signals": json.dumps(decision["signals"]),
    }

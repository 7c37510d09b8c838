"""Routing decisions: their one shape, and the log read back.

:class:`Decision` is what the decider (:mod:`journeyscope.server.routing`)
returns, what ``POST /v1/route`` answers (its response model) and what the
client (:mod:`journeyscope.client`) hands an orchestrator: one definition, so
a field added to a decision reaches every caller.

Logged decisions are ``journey.route`` spans (docs/contracts.md), so the log is
a query. Keeping decisions as spans means they are redacted, exported and
erased with the rest of the journey, and need no table of their own. The
server writes them (:mod:`journeyscope.server.decisions`); the API, the
dashboard and the ``route-decisions`` export read them here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from journeyscope.warehouse.store import Warehouse

#: What a decision may recommend, mildest first (a stronger action wins when rules disagree).
Action = Literal["continue", "clarify", "human_handoff", "escalate"]
ACTIONS: tuple[str, ...] = get_args(Action)
#: ``act``: the orchestrator may act; ``recommend``: a human decides (a high-risk stage).
Mode = Literal["act", "recommend"]


@dataclass(frozen=True)
class Fired:
    """One rule that fired, and why."""

    rule: str
    action: Action
    reason: str
    confidence: float
    signal: str
    value: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "reason": self.reason, "confidence": self.confidence,
                "signal": self.signal, "value": self.value}


@dataclass(frozen=True)
class Decision:
    """The recommendation, how sure it is, and everything that produced it.

    ``requested_by`` and ``logged`` are filled in by the server when it answers (who asked; whether the
    decision reached the log).
    """

    decision_id: str
    journey_id: str
    stage: str | None
    action: Action
    mode: Mode
    confidence: float
    reason: str
    fired: tuple[Fired, ...]
    policy_version: str
    signals: dict[str, Any] = field(default_factory=dict)
    requested_by: str | None = None
    logged: bool | None = None

    @property
    def needs_human(self) -> bool:
        """Hand to a person: a hand-off or escalation, or any action on a recommend-only stage."""
        return self.action in ("human_handoff", "escalate") or self.mode == "recommend"

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``POST /v1/route`` (``requested_by`` and ``logged`` once the server has set them)."""
        answer = {
            "decision_id": self.decision_id,
            "journey_id": self.journey_id,
            "stage": self.stage,
            "action": self.action,
            "mode": self.mode,
            "confidence": self.confidence,
            "reason": self.reason,
            "fired": [f.as_dict() for f in self.fired],
            "policy_version": self.policy_version,
            "signals": self.signals,
        }
        if self.requested_by is not None:
            answer["requested_by"] = self.requested_by
        if self.logged is not None:
            answer["logged"] = self.logged
        return answer

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """A decision from its JSON (unknown keys, from a newer server, are left out)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["fired"] = tuple(Fired(**{k: f[k] for k in _FIRED if k in f}) for f in data.get("fired", ()))
        return cls(**values)


_FIRED = ("rule", "action", "reason", "confidence", "signal", "value")


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

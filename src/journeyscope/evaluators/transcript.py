"""What an evaluator reads: one stage visit's turns, with the journey's earlier visits.

Evaluators are pure functions of these objects. They never see DuckDB, HTTP or
OpenTelemetry types, so they can be tested, benchmarked and reused on any
contact-centre transcript, whatever produced it (the warehouse builds them from
spans; the STAR dev script builds them from import files through the warehouse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Turn:
    """One conversation turn.

    ``role`` is ``customer``, ``agent``, ``system`` or ``tool``; a tool turn's
    ``text`` is the tool call or its result, kept as context (evaluators must not
    mistake it for something the customer or agent said). ``ts`` is ``None`` when
    the source had no usable timestamp.
    """

    role: str
    text: str
    ts: datetime | None = None
    stage: str | None = None
    channel: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StageVisit:
    """A maximal run of a journey's turns in one stage (docs/contracts.md, Stage visits).

    ``visit`` counts visits to this stage within the journey (1 = first entry,
    2 and more = re-entry). ``outcome`` is the visit outcome as the warehouse
    derived it (``completed``, ``abandoned``, ``escalated``, ``failed``, ``open``)
    or ``None`` when unknown; it is context, not ground truth.
    """

    journey_id: str
    stage: str
    visit: int
    turns: tuple[Turn, ...]
    customer_id: str | None = None
    journey_name: str | None = None
    channel: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class VisitContext:
    """The visit to score and everything the journey did before it, oldest first."""

    visit: StageVisit
    history: tuple[StageVisit, ...] = field(default_factory=tuple)

    @property
    def earlier_turns(self) -> tuple[Turn, ...]:
        """All turns of earlier visits, in journey order."""
        return tuple(t for v in self.history for t in v.turns)

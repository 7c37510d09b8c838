"""Writing routing decisions: a ``journey.route`` span through the same write door as every span.

So orchestrator behaviour is observable like any other step (docs/contracts.md); see
:mod:`journeyscope.warehouse.decisions` for reading them back.

Decisions are gathered for a few milliseconds and handed to the write door as one
batch (:class:`DecisionLog`): at hundreds of routing calls a second, a write
transaction per decision would cost more than the decisions themselves. The
answer to ``/v1/route`` does not wait for the commit, nor for its span to be
built (encoding the attributes costs more than deciding; :meth:`DecisionLog.flush`
does it, on the project's timer thread); a decision the log cannot take (its buffer
full because the writer refuses work) is reported as not logged.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from journeyscope import conventions as cv
from journeyscope.warehouse import feed
from journeyscope.warehouse.decisions import decision_attributes
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.writer import Overloaded, Writer

logger = logging.getLogger(__name__)

def add_decision(rows: SpanRows, decision: dict[str, Any], state: dict[str, Any], now_ns: int) -> None:
    """Append the ``journey.route`` span of one decision, tagged with the journey like its other spans.

    Its stage goes in ``route.stage``, not ``journey.stage``: asking for a route is not activity in
    the stage, so it must neither extend a visit nor reset the journey's silence.
    """
    attributes: dict[str, Any] = {
        cv.JOURNEY_ID: state["journey_id"],
        cv.CUSTOMER_ID: state["customer_id"],
        **({cv.JOURNEY_NAME: state["journey"]} if state.get("journey") else {}),
        **({cv.JOURNEY_CHANNEL: state["channel"]} if state.get("channel") else {}),
        **({cv.JOURNEY_COHORT: state["cohort"]} if state.get("cohort") else {}),
        **decision_attributes(decision),
    }
    rows.add(
        trace_id=os.urandom(16).hex(),
        span_id=decision["decision_id"][:16],
        parent_span_id=None,
        name=cv.ROUTE_SPAN,
        start_ns=now_ns,
        end_ns=now_ns,
        attributes=attributes,
        kind="server",
        status_code="unset",
        scope_name="journeyscope.server",
    )


def decision_rows(decision: dict[str, Any], state: dict[str, Any], now_ns: int) -> SpanRows:
    """The ``journey.route`` span of one decision as a batch of its own."""
    rows = SpanRows()
    add_decision(rows, decision, state, now_ns)
    return rows


class DecisionLog:
    """Decisions buffered in memory and handed to the write door in batches (:meth:`flush`, which the
    project's timer thread calls every ``flush_s``).

    A refused batch (the writer's queue is full) stays in the buffer and is
    offered again; only when the buffer itself is full (``max_pending``) is a new
    decision refused, and then :meth:`log` says so.
    """

    def __init__(self, writer: Writer, *, flush_s: float = 0.1, max_pending: int = 50_000) -> None:
        self.writer = writer
        self.flush_s = flush_s
        self.max_pending = max_pending
        self.refused = 0  #: decisions the full buffer could not take
        self._pending: list[tuple[dict[str, Any], dict[str, Any], int]] = []  # (decision, state, now_ns)
        self._lock = threading.Lock()  # the buffer
        self._handing = threading.Lock()  # one hand-over at a time: a flush returns once what it saw is handed over

    def log(self, decision: dict[str, Any], state: dict[str, Any], now_ns: int) -> bool:
        """Buffer one decision; ``False`` (and an error in the log) if it cannot be taken.

        The span is built from ``decision`` and ``state`` when the buffer is flushed, so what it records
        must not change after this call.
        """
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.refused += 1
                logger.error("journeyscope: decision %s not logged: %d decisions wait for the writer",
                             decision["decision_id"], len(self._pending))
                return False
            self._pending.append((decision, state, now_ns))
        return True

    def flush(self) -> bool:
        """Hand the buffered decisions to the writer; ``False`` if it refused them (they stay buffered).

        Serialised, so a caller's flush (the project's, before a read that must see every decision) waits for
        a hand-over the timer thread has begun instead of finding the buffer empty while those decisions are
        not yet with the writer.
        """
        with self._handing:
            return self._hand_over()

    def _hand_over(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return True
        rows = SpanRows()
        for decision, state, now_ns in pending:
            add_decision(rows, decision, state, now_ns)
        try:
            self.writer.ingest(rows, kind=feed.EVENTS)
        except Overloaded as exc:
            logger.warning("journeyscope: %d decisions wait: %s", len(pending), exc)
            with self._lock:
                self._pending[:0] = pending
            return False
        return True

    def close(self) -> None:
        """Hand over what is buffered (before the writer shuts down)."""
        self.flush()

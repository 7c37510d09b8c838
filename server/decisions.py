"""Writing routing decisions: a ``journey.route`` span through the same writer as every span.

So orchestrator behaviour is observable like any other step (DESIGN.md); see
:mod:`journeyscope.warehouse.decisions` for reading them back.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from journeyscope.instrument import conventions as cv
from journeyscope.server.writer import BatchWriter, Overloaded
from journeyscope.warehouse.decisions import decision_attributes
from journeyscope.warehouse.rows import SpanRows

logger = logging.getLogger(__name__)

def decision_rows(decision: dict[str, Any], state: dict[str, Any], now_ns: int) -> SpanRows:
    """The ``journey.route`` span of one decision, tagged with the journey like its other spans.

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
    rows = SpanRows()
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
    return rows


def log_decision(writer: BatchWriter, decision: dict[str, Any], state: dict[str, Any], now_ns: int) -> bool:
    """Queue the decision's span for the writer; ``False`` (and an error in the log) if it was refused.

    The answer does not wait for the commit: an orchestrator routing on every
    turn must not pay a disk write per decision. The writer commits queued
    decisions with the next group commit, within milliseconds.
    """
    try:
        writer.submit(decision_rows(decision, state, now_ns).to_table())
    except Overloaded as exc:
        logger.error("journeyscope: decision %s not logged: %s", decision["decision_id"], exc)
        return False
    return True

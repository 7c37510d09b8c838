"""Record what was said, how a stage ended and what the customer reported, as spans of the journey.

A turn is a short span ``journey.turn`` carrying its role and text
(docs/contracts.md). Recording turns as spans, not logs, keeps one pipeline: they are
exported, received, redacted and stored like every other span, and the
warehouse rebuilds transcripts from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from journeyscope import __version__
from journeyscope.errors import InvalidJourneyError
from journeyscope import conventions as cv
from journeyscope.instrument.context import JourneyState, current_journey

_SCOPE = "journeyscope.instrument"


def _tracer(tracer: trace.Tracer | None) -> trace.Tracer:
    return tracer if tracer is not None else trace.get_tracer(_SCOPE, __version__)


def _require_journey(what: str) -> JourneyState:
    state = current_journey()
    if state is None:
        raise InvalidJourneyError(f"{what} called outside a journey context: the span would carry no journey.id")
    return state


def record_turn(
    role: str,
    text: str,
    *,
    name: str | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
    tracer: trace.Tracer | None = None,
) -> None:
    """Record one conversation turn in the current journey stage.

    ``start_time``/``end_time`` are nanoseconds since the epoch, for replaying
    recorded conversations; by default the turn is stamped now. ``name`` names
    the tool for ``role="tool"`` turns.
    """
    _require_journey("record_turn()")
    if not isinstance(text, str):
        raise InvalidJourneyError(f"turn text must be a string, got {type(text).__name__}")
    attrs: dict[str, AttributeValue] = dict(attributes or {})
    attrs[cv.TURN_ROLE] = cv.normalize_role(role)
    attrs[cv.TURN_TEXT] = text
    if name is not None:
        attrs[cv.TURN_NAME] = name
    span = _tracer(tracer).start_span(cv.TURN_SPAN, attributes=attrs, start_time=start_time)
    span.end(end_time=end_time if end_time is not None else start_time)


def record_outcome(
    outcome: str,
    *,
    timestamp: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    tracer: trace.Tracer | None = None,
) -> None:
    """Record the explicit outcome of the current stage visit.

    Adds the ``journey.stage.outcome`` event to the current span when one is
    recording; otherwise emits a short span of that name carrying the event, so
    the outcome is never lost for lack of a parent.
    """
    _require_journey("record_outcome()")
    event_attrs: dict[str, AttributeValue] = dict(attributes or {})
    event_attrs[cv.OUTCOME_ATTRIBUTE] = cv.normalize_outcome(outcome)
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(cv.OUTCOME_EVENT, event_attrs, timestamp=timestamp)
        return
    span = _tracer(tracer).start_span(cv.OUTCOME_SPAN, start_time=timestamp)
    span.add_event(cv.OUTCOME_EVENT, event_attrs, timestamp=timestamp)
    span.end(end_time=timestamp)


def record_feedback(
    *,
    csat: float | None = None,
    ces: float | None = None,
    nps: float | None = None,
    comment: str | None = None,
    stage: str | None = None,
    timestamp: int | None = None,
    attributes: Mapping[str, Any] | None = None,
    tracer: trace.Tracer | None = None,
) -> None:
    """Record what the customer reported about a stage: CSAT (1-5), effort (CES, 1-7), NPS (0-10), a comment.

    The feedback is about the current stage unless ``stage`` names another (a survey sent after the
    customer moved on); the stage always travels on the event as ``journey.stage``, so the warehouse
    attaches it to the right visit whatever span carries it. Like :func:`record_outcome`, the event
    goes on the current span when one is recording, else on a short span of its own, which never
    starts or breaks a stage visit. Scores are checked here, so a mistake fails at the call site.
    """
    state = _require_journey("record_feedback()")
    about = cv.normalize_stage(stage) if stage is not None else state.stage
    if about is None:
        raise InvalidJourneyError("record_feedback() needs a stage: call it inside a stage or pass stage=")
    event_attrs: dict[str, AttributeValue] = dict(attributes or {})
    event_attrs[cv.JOURNEY_STAGE] = about
    for measure, value in (("csat", csat), ("ces", ces), ("nps", nps)):
        if value is not None:
            score = cv.feedback_score(measure, value)
            event_attrs[cv.FEEDBACK_SCALES[measure][0]] = int(score) if score.is_integer() else score
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidJourneyError(f"feedback comment must be a string, got {type(comment).__name__}")
        event_attrs[cv.FEEDBACK_COMMENT] = comment
    if len(event_attrs) == 1 + len(attributes or {}):
        raise InvalidJourneyError("record_feedback() needs at least one of csat, ces, nps or comment")
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(cv.FEEDBACK_EVENT, event_attrs, timestamp=timestamp)
        return
    span = _tracer(tracer).start_span(cv.FEEDBACK_SPAN, attributes={cv.JOURNEY_STAGE: about}, start_time=timestamp)
    span.add_event(cv.FEEDBACK_EVENT, event_attrs, timestamp=timestamp)
    span.end(end_time=timestamp)

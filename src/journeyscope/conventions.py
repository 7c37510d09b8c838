"""Journey semantic conventions: the attribute names and their allowed values.

These names are the contract between an instrumented agent, the warehouse and
every downstream reader (docs/contracts.md, "Journey semantic conventions"). They are
also the W3C baggage keys under which a journey travels between processes, so a
downstream service stamps the same journey on its spans.
"""

from __future__ import annotations

from typing import Final

from journeyscope.errors import InvalidJourneyError

CUSTOMER_ID: Final = "customer.id"
JOURNEY_ID: Final = "journey.id"
JOURNEY_NAME: Final = "journey.name"
JOURNEY_STAGE: Final = "journey.stage"
JOURNEY_CHANNEL: Final = "journey.channel"
JOURNEY_COHORT: Final = "journey.cohort"
CUSTOMER_CONSENT: Final = "customer.consent"

#: Attributes stamped on every span inside a journey context and carried as baggage.
#: Only these travel: baggage leaves the process in headers, so nothing else is put there.
JOURNEY_KEYS: Final = (
    CUSTOMER_ID,
    JOURNEY_ID,
    JOURNEY_NAME,
    JOURNEY_STAGE,
    JOURNEY_CHANNEL,
    JOURNEY_COHORT,
    CUSTOMER_CONSENT,
)

TURN_SPAN: Final = "journey.turn"
TURN_ROLE: Final = "journey.turn.role"
TURN_TEXT: Final = "journey.turn.text"
TURN_NAME: Final = "journey.turn.name"
TURN_ROLES: Final = frozenset({"customer", "agent", "system", "tool"})

OUTCOME_EVENT: Final = "journey.stage.outcome"
OUTCOME_ATTRIBUTE: Final = "journey.stage.outcome"
OUTCOME_SPAN: Final = "journey.stage.outcome"
OUTCOMES: Final = frozenset({"completed", "abandoned", "escalated", "failed"})

#: Customer-reported signals (docs/contracts.md): an event on the span of the stage they are about (or naming it in
#: ``journey.stage``), or a stand-alone span of that name carrying the event.
FEEDBACK_EVENT: Final = "journey.feedback"
FEEDBACK_SPAN: Final = "journey.feedback"
FEEDBACK_COMMENT: Final = "journey.feedback.comment"
#: Why a value of a feedback event was not kept (set at ingest; the rest of the span is kept).
FEEDBACK_REJECTED: Final = "journey.feedback.rejected"
#: Each score's attribute and its scale (inclusive): CSAT 1-5, customer effort 1-7, NPS 0-10.
FEEDBACK_SCALES: Final = {
    "csat": ("journey.feedback.csat", 1, 5),
    "ces": ("journey.feedback.ces", 1, 7),
    "nps": ("journey.feedback.nps", 0, 10),
}
#: NPS categories: promoters answer 9-10, detractors 0-6 (Reichheld's definition).
NPS_PROMOTER_MIN: Final = 9
NPS_DETRACTOR_MAX: Final = 6

#: The built-in evaluators' names: journeyscope.evaluators registers its evaluators under these, and every other
#: layer (journey states, flows, stage signals, the dashboard, the CLI) names them from here.
RESOLUTION_EVALUATOR: Final = "conversation_resolution"
RETENTION_EVALUATOR: Final = "customer_agent_context_retention"
QUALITY_EVALUATOR: Final = "customer_agent_conversation_quality"
#: The prefix tables and charts drop from evaluator names where room is short (a legend says so).
EVALUATOR_PREFIX: Final = "customer_agent_"
#: Every friction signal's name starts with this (journeyscope.evaluators.friction).
FRICTION_PREFIX: Final = "friction_"

ROUTE_SPAN: Final = "journey.route"
#: A monitor's alert firing or resolving (journeyscope.warehouse.monitors); its attributes are ``alert.*``.
ALERT_SPAN: Final = "journey.alert"
#: Attributes of a ``journey.route`` span that the server builds from numbers, policy names and its
#: own ids (the decision's inputs and output); ``route.requested_by`` comes from the caller, so it is
#: not one of them.
ROUTE_GENERATED: Final = frozenset(
    f"route.{k}" for k in ("decision_id", "stage", "action", "mode", "confidence", "reason", "policy_version",
                           "fired", "signals")
)

#: Channels journeyscope knows by name. Others are rejected by the instrumentation
#: (a typo would split a channel in two on every chart) unless registered with
#: :func:`register_channel`; ingest from foreign SDKs keeps them as sent.
KNOWN_CHANNELS: set[str] = {
    "chat",
    "email",
    "voice",
    "web",
    "sms",
    "whatsapp",
    "app",
    "messenger",
    "social",
    "in-person",
}

#: Spellings that mean a known channel; applied after lower-casing.
CHANNEL_ALIASES: Final = {
    "phone": "voice",
    "call": "voice",
    "telephone": "voice",
    "e-mail": "email",
    "mail": "email",
    "webchat": "chat",
    "live-chat": "chat",
    "livechat": "chat",
    "text": "sms",
    "mobile-app": "app",
    "in-app": "app",
    "wa": "whatsapp",
}

# W3C baggage values are limited in size (the whole header to 8192 bytes); a
# journey attribute longer than this is almost surely a mistake (a transcript
# passed as a stage name), so it is refused rather than silently truncated.
MAX_VALUE_LENGTH: Final = 256


def register_channel(name: str) -> str:
    """Allow a channel that is not in :data:`KNOWN_CHANNELS` and return its normal form."""
    channel = _text("journey.channel", name)
    KNOWN_CHANNELS.add(channel.lower())
    return channel.lower()


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidJourneyError(
            f"{key} must be a string, got {type(value).__name__} {value!r}"
        )
    text = value.strip()
    if not text:
        raise InvalidJourneyError(f"{key} must not be empty")
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidJourneyError(
            f"{key} is {len(text)} characters long; at most {MAX_VALUE_LENGTH} are allowed"
        )
    return text


def normalize_id(key: str, value: object) -> str:
    """An id (customer, journey) as stored: a non-empty string, surrounding blanks removed."""
    return _text(key, value)


def normalize_stage(value: object) -> str:
    """A stage name as stored: non-empty string, surrounding blanks removed, case kept."""
    return _text(JOURNEY_STAGE, value)


def normalize_channel(value: object) -> str:
    """A channel in its canonical lower-case spelling; unknown channels are an error.

    ``"WhatsApp"`` becomes ``"whatsapp"`` and ``"phone"`` becomes ``"voice"``;
    ``"chta"`` raises, naming the channels that are known.
    """
    channel = _text(JOURNEY_CHANNEL, value).lower()
    channel = CHANNEL_ALIASES.get(channel, channel)
    if channel not in KNOWN_CHANNELS:
        known = ", ".join(sorted(KNOWN_CHANNELS))
        raise InvalidJourneyError(
            f"unknown journey.channel {value!r}; known channels: {known} "
            "(call journeyscope.instrument.register_channel() to add one)"
        )
    return channel


def _one_of(key: str, value: object, allowed: frozenset[str], what: str) -> str:
    word = _text(key, value).lower()
    if word not in allowed:
        raise InvalidJourneyError(f"unknown {what} {value!r}; expected one of {', '.join(sorted(allowed))}")
    return word


def normalize_outcome(value: object) -> str:
    """An explicit stage outcome, one of :data:`OUTCOMES`."""
    return _one_of(OUTCOME_ATTRIBUTE, value, OUTCOMES, "stage outcome")


def normalize_role(value: object) -> str:
    """A conversation turn's role, one of :data:`TURN_ROLES`."""
    return _one_of(TURN_ROLE, value, TURN_ROLES, "turn role")


def feedback_score(measure: str, value: object) -> float:
    """A customer-reported score on its scale (:data:`FEEDBACK_SCALES`), or InvalidJourneyError saying why not.

    Numbers, and text that reads as one (a survey form posts text), are accepted; booleans, other text and
    anything outside the scale are not: a 9 on a 1-5 CSAT scale is a mistake to report, not a score to clip.
    """
    key, low, high = FEEDBACK_SCALES[measure]
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or number != number or number in (float("inf"), float("-inf")):
        raise InvalidJourneyError(f"{key} must be a number from {low} to {high}, got {value!r}")
    if not low <= number <= high:
        raise InvalidJourneyError(f"{key} {value!r} is outside its scale {low}-{high}")
    return number


def clean_feedback(attributes: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """A ``journey.feedback`` event's attributes with only valid scores kept, and why the others were not.

    The one rule every write path applies (instrumentation, OTLP, import): the event and the span are kept,
    an out-of-range or non-numeric score is left out and named in :data:`FEEDBACK_REJECTED`.
    """
    kept = dict(attributes)
    problems: list[str] = []
    for measure, (key, _low, _high) in FEEDBACK_SCALES.items():
        if key not in kept:
            continue
        try:
            score = feedback_score(measure, kept[key])
        except InvalidJourneyError as exc:
            del kept[key]
            problems.append(str(exc))
        else:
            kept[key] = int(score) if score.is_integer() else score
    if problems:
        kept[FEEDBACK_REJECTED] = "; ".join(problems)
    return kept, problems

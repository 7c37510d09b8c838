"""Span rows: the one columnar shape every write path produces before ingest.

The OTLP decoder, the in-process exporter and the JSONL importer each turn
their input into a :class:`SpanRows` batch (one Python list per column, then
one Arrow table), so validation, redaction and stage-visit upkeep happen in one
place: :meth:`journeyscope.warehouse.Warehouse.ingest`.

The journey columns are lifted out of the attributes here, including the
aliases other conventions use (docs/contracts.md: ``session.id`` and
``gen_ai.conversation.id`` for ``journey.id``, ``user.id`` for ``customer.id``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa
from journeyscope import conventions as cv
from journeyscope.warehouse.turns import extract_turns

logger = logging.getLogger(__name__)

TURN_TYPE = pa.struct([("role", pa.string()), ("text", pa.string()), ("name", pa.string())])

#: Column order of the ``spans`` table (``seq`` and ``ingested_at`` are added at ingest).
SPAN_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_span_id", pa.string()),
        ("name", pa.string()),
        ("kind", pa.string()),
        ("start_time", pa.timestamp("ns")),
        ("end_time", pa.timestamp("ns")),
        ("status_code", pa.string()),
        ("status_message", pa.string()),
        ("customer_id", pa.string()),
        ("journey_id", pa.string()),
        ("journey_name", pa.string()),
        ("stage", pa.string()),
        ("channel", pa.string()),
        ("cohort", pa.string()),
        ("consent", pa.string()),
        ("outcome", pa.string()),
        ("turns", pa.list_(TURN_TYPE)),
        ("service_name", pa.string()),
        ("scope_name", pa.string()),
        ("attributes", pa.string()),
        ("events", pa.string()),
        ("links", pa.string()),
        ("resource", pa.string()),
    ]
)

#: The one rule of journey-attribute lifting: each journey column of :data:`SPAN_SCHEMA`, in order, with the span
#: attributes it is taken from (the first present and non-empty wins; foreign SDKs' session and user ids count).
#: :func:`journey_columns` applies it in Python; the compiled decoder is given these keys
#: (``otlp.rules_arguments``), and ``tests/test_otlp_decode.py`` checks that both decode every span alike.
LIFTED: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("customer_id", (cv.CUSTOMER_ID, "user.id")),
    ("journey_id", (cv.JOURNEY_ID, "session.id", "gen_ai.conversation.id")),
    ("journey_name", (cv.JOURNEY_NAME,)),
    ("stage", (cv.JOURNEY_STAGE,)),
    ("channel", (cv.JOURNEY_CHANNEL,)),
    ("cohort", (cv.JOURNEY_COHORT,)),
    ("consent", (cv.CUSTOMER_CONSENT,)),
)
_KEYS = dict(LIFTED)
_CUSTOMER_KEYS, _JOURNEY_KEYS = _KEYS["customer_id"], _KEYS["journey_id"]
_OTHER_KEYS = tuple(keys for _column, keys in LIFTED[2:])

_HEX = frozenset("0123456789abcdef")

#: Why a span is refused for its ids: the API finds journeys and customers by ids of at most this length.
LONG_CUSTOMER_ID = f"customer id longer than {cv.MAX_VALUE_LENGTH} characters"
LONG_JOURNEY_ID = f"journey id longer than {cv.MAX_VALUE_LENGTH} characters"


_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=lambda v: _json_default(v)
)
try:  # the C encoder, built once: ``JSONEncoder.encode`` would build a new one for every span
    from json.encoder import c_make_encoder as _c_make_encoder
    from json.encoder import encode_basestring as _encode_basestring

    # markers=None: no cycle check (a shared markers dict keeps stale ids after an error); span values
    # come from protobuf, JSON or the SDK's attribute checks, none of which can make a cycle.
    _c_encode = _c_make_encoder(
        None, _encoder.default, _encode_basestring, None, ":", ",", False, False, False
    ) if _c_make_encoder is not None else None
except ImportError:  # pragma: no cover - CPython always has it
    _c_encode = None


def _encode(value: Any) -> str:
    if _c_encode is None or isinstance(value, str):  # pragma: no cover
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


def _finite(value: Any) -> Any:
    """``NaN``/``Infinity`` are not JSON (DuckDB would refuse the whole batch): stored as text."""
    if isinstance(value, float) and value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    try:
        return _encode(value)
    except ValueError:
        return _encode(_finite(value))


def json_text(value: Any) -> str:
    """Compact JSON text of attributes/events as stored (bytes as hex, non-finite floats as text)."""
    return _dumps(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (tuple, list, set, frozenset)):
        return list(value)
    return str(value)


def _first(attributes: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return str(value)
    return None


def journey_columns(attributes: Mapping[str, Any]) -> tuple[str | None, ...]:
    """A span's journey columns, in :data:`LIFTED` order, as text (the channel in its canonical spelling)."""
    customer_id, journey_id, name, stage, channel, cohort, consent = (
        _first(attributes, _CUSTOMER_KEYS), _first(attributes, _JOURNEY_KEYS),
        *(_first(attributes, keys) for keys in _OTHER_KEYS),
    )
    return customer_id, journey_id, name, stage, _channel(channel), cohort, consent


def long_id(attributes: Mapping[str, Any]) -> str | None:
    """Why a span's customer or journey id cannot be stored (longer than the limit), or ``None``."""
    customer, journey = _first(attributes, _CUSTOMER_KEYS), _first(attributes, _JOURNEY_KEYS)
    if customer is not None and len(customer) > cv.MAX_VALUE_LENGTH:
        return LONG_CUSTOMER_ID
    if journey is not None and len(journey) > cv.MAX_VALUE_LENGTH:
        return LONG_JOURNEY_ID
    return None


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _channel(value: Any) -> str | None:
    """Foreign SDKs may spell channels their own way: fold case and known aliases, keep the rest."""
    text = _opt_str(value)
    if text is None:
        return None
    folded = text.strip().lower()
    return cv.CHANNEL_ALIASES.get(folded, folded)


def valid_hex_id(value: str, length: int) -> bool:
    """A lowercase hex id of ``length`` characters that is not all zeros (W3C trace context)."""
    return len(value) == length and set(value) <= _HEX and value.strip("0") != ""


def explicit_outcome(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The last ``journey.stage.outcome`` event's outcome, if it names a known one."""
    outcome = None
    for event in events:
        if event.get("name") == cv.OUTCOME_EVENT:
            value = str((event.get("attributes") or {}).get(cv.OUTCOME_ATTRIBUTE, "")).strip().lower()
            if value in cv.OUTCOMES:
                outcome = value
    return outcome


def checked_events(events: Sequence[Mapping[str, Any]], span_id: str) -> Sequence[Mapping[str, Any]]:
    """``events`` with each ``journey.feedback`` event's invalid scores left out (:func:`conventions.clean_feedback`).

    The span and the event are kept; what was left out is named on the event (``journey.feedback.rejected``)
    and logged, the way every write path (OTLP, the in-process exporter, import) reports a value it refused.
    """
    if not any(e.get("name") == cv.FEEDBACK_EVENT for e in events):
        return events
    out = []
    for event in events:
        if event.get("name") == cv.FEEDBACK_EVENT:
            attributes, problems = cv.clean_feedback(dict(event.get("attributes") or {}))
            if problems:
                logger.warning("span %s: journey.feedback value left out: %s", span_id, "; ".join(problems))
                event = {**event, "attributes": attributes}
        out.append(event)
    return out


@dataclass
class SpanRows:
    """An append-only columnar batch of spans in :data:`SPAN_SCHEMA` order."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in SPAN_SCHEMA.names})

    def __len__(self) -> int:
        return len(self.columns["span_id"])

    def extend(self, other: SpanRows) -> None:
        """Append every span of ``other`` (same columns, in order)."""
        for name, values in other.columns.items():
            self.columns[name].extend(values)

    def add(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        start_ns: int,
        end_ns: int | None,
        attributes: Mapping[str, Any],
        events: Sequence[Mapping[str, Any]] = (),
        links: Sequence[Mapping[str, Any]] = (),
        resource: Mapping[str, Any] | None = None,
        kind: str | None = None,
        status_code: str | None = None,
        status_message: str | None = None,
        scope_name: str | None = None,
    ) -> None:
        """Append one span; ids are lowercase hex, times nanoseconds since the epoch (UTC)."""
        resource = resource or {}
        self.add_fast(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_span_id,
            name=name,
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=attributes,
            events=events,
            links=links,
            kind=kind,
            status_code=status_code,
            status_message=status_message,
            scope_name=scope_name,
            service_name=_opt_str(resource.get("service.name")),
            resource_json=json_text(dict(resource)) if resource else None,
        )

    def add_fast(
        self,
        *,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None,
        name: str,
        start_ns: int,
        end_ns: int | None,
        attributes: Mapping[str, Any],
        events: Sequence[Mapping[str, Any]],
        links: Sequence[Mapping[str, Any]],
        kind: str | None,
        status_code: str | None,
        status_message: str | None,
        scope_name: str | None,
        service_name: str | None,
        resource_json: str | None,
    ) -> None:
        """:meth:`add` for decoders that serialise a resource once for all its spans.

        The OTLP receiver's hot loop: a resource is shared by hundreds of spans,
        so its JSON text and service name are computed once per resource, not per span.
        """
        c = self.columns
        c["trace_id"].append(trace_id)
        c["span_id"].append(span_id)
        c["parent_span_id"].append(parent_span_id or None)
        c["name"].append(name)
        c["kind"].append(kind)
        c["start_time"].append(start_ns)
        c["end_time"].append(end_ns)
        c["status_code"].append(status_code)
        c["status_message"].append(status_message or None)
        for (column, _keys), value in zip(LIFTED, journey_columns(attributes)):
            c[column].append(value)
        if events:
            events = checked_events(events, span_id)
        c["outcome"].append(explicit_outcome(events) if events else None)
        c["turns"].append(extract_turns(name, attributes) or None)
        c["service_name"].append(service_name)
        c["scope_name"].append(scope_name)
        c["attributes"].append(_dumps(attributes if type(attributes) is dict else dict(attributes)))
        c["events"].append(_dumps(list(events)) if events else None)
        c["links"].append(_dumps(list(links)) if links else None)
        c["resource"].append(resource_json)

    def to_table(self) -> pa.Table:
        """The batch as one Arrow table (columnar, ready for a single DuckDB insert)."""
        return pa.table(
            {name: pa.array(self.columns[name], type=SPAN_SCHEMA.field(name).type) for name in SPAN_SCHEMA.names},
            schema=SPAN_SCHEMA,
        )

"""OTLP log payloads (protobuf or OTLP/JSON) decoded into the rows of ``log_records``.

Some instrumentations put the conversation in log records rather than on the span: the official
OpenTelemetry OpenAI instrumentation, with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``,
sends one record per message (``gen_ai.user.message``, ``gen_ai.choice``, ...), or in its newer
``event_only`` mode one ``gen_ai.client.inference.operation.details`` record per call. Each record carries
the trace and span ids of its model call's span, so its turns belong to that span's journey.

**The rule for log records** (one, documented in the README):

- a GenAI record (its event name, from ``event_name`` or the ``event.name`` attribute, is one of
  :data:`~journeyscope.warehouse.turns.GENAI_EVENTS`) with valid trace and span ids is stored, with the
  turns read from it (:func:`~journeyscope.warehouse.turns.log_record_turns`);
- a GenAI record without them cannot be placed in a journey: it is refused and counted in the
  response's ``partial_success`` (``rejected_log_records``), the rest of the batch is kept;
- every other record is accepted and dropped: journeyscope keeps conversations, not logs.

Records are kept apart from spans and joined to them by ``(trace_id, span_id)`` when transcripts and
visits are built (:mod:`~journeyscope.warehouse.foreign_turns`), so a record stored before its span
takes its place once the span arrives, and one stored after it re-derives its journey's visits.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, NamedTuple

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from journeyscope.errors import InvalidInputError
from journeyscope.warehouse.otlp import (
    attribute_values, parse_json, parse_protobuf, resource_values, response_body, value_of,
)
from journeyscope.warehouse.rows import TURN_TYPE, json_text
from journeyscope.warehouse.turns import log_record_turns

__all__ = ["LOG_SCHEMA", "DecodedLogs", "decode_logs", "decode_logs_request", "encode_logs_response"]

#: Column order of a decoded batch (``seq`` and ``ingested_at`` are added at ingest).
LOG_SCHEMA = pa.schema([
    ("record_id", pa.string()),
    ("trace_id", pa.string()),
    ("span_id", pa.string()),
    ("name", pa.string()),
    ("time", pa.timestamp("ns")),
    ("side", pa.string()),
    ("turns", pa.list_(TURN_TYPE)),
    ("severity", pa.string()),
    ("attributes", pa.string()),
    ("body", pa.string()),
    ("resource", pa.string()),
    ("scope_name", pa.string()),
])
_NO_IDS = "GenAI log record without its span's trace_id (16 bytes) and span_id (8 bytes)"
_MAX_NS = 2**63 - 1


class DecodedLogs(NamedTuple):
    """The GenAI records of one request as a table, how many were refused, the first reason."""

    table: pa.Table
    rejected: int = 0
    error_message: str = ""


def decode_logs_request(request: ExportLogsServiceRequest) -> DecodedLogs:
    """Walk every log record of a parsed request, keeping the GenAI ones (the module's rule)."""
    rows: list[tuple[Any, ...]] = []
    rejected, error_message = 0, ""
    for resource_logs in request.resource_logs:
        _, resource_json = resource_values(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope_name = scope_logs.scope.name or None
            for record in scope_logs.log_records:
                attributes = attribute_values(record.attributes)
                body = value_of(record.body) if record.HasField("body") else None
                found = log_record_turns(record.event_name or None, attributes, body)
                if found is None:
                    continue  # not a GenAI record: dropped, by the rule
                trace_id, span_id = record.trace_id, record.span_id
                if len(trace_id) != 16 or not any(trace_id) or len(span_id) != 8 or not any(span_id):
                    rejected += 1
                    error_message = error_message or _NO_IDS
                    continue
                turns, side = found
                at = record.time_unix_nano or record.observed_time_unix_nano or time.time_ns()
                digest = hashlib.md5(record.SerializeToString(deterministic=True))
                digest.update(f"\0{resource_json}\0{scope_name}".encode())
                rows.append((
                    digest.hexdigest(), trace_id.hex(), span_id.hex(),
                    record.event_name or str(attributes.get("event.name")), min(at, _MAX_NS), side,
                    turns or None, record.severity_text or None, json_text(attributes),
                    None if body is None else json_text(body), resource_json, scope_name,
                ))
    columns = list(zip(*rows)) if rows else [()] * len(LOG_SCHEMA)
    try:
        table = pa.table([pa.array(list(c), f.type) for c, f in zip(columns, LOG_SCHEMA)], schema=LOG_SCHEMA)
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:  # arrow refused a value
        raise InvalidInputError(f"unreadable log record values: {exc}") from None
    return DecodedLogs(table, rejected, error_message)


def decode_logs(body: bytes, as_json: bool = False) -> DecodedLogs:
    """A binary (``application/x-protobuf``) or OTLP/JSON ``ExportLogsServiceRequest``, decoded."""
    parse = parse_json if as_json else parse_protobuf
    return decode_logs_request(parse(body, ExportLogsServiceRequest()))


def encode_logs_response(rejected: int = 0, error_message: str = "", *, as_json: bool = False) -> bytes:
    """The OTLP ``ExportLogsServiceResponse``, carrying ``partial_success`` when records were refused."""
    return response_body(ExportLogsServiceResponse(), rejected, error_message, as_json=as_json)

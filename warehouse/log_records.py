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
import json
import time
from typing import Any, NamedTuple

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from journeyscope.errors import InvalidInputError
from journeyscope.warehouse.otlp import attribute_values, fix_json_ids, resource_values, value_of
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
    request = ExportLogsServiceRequest()
    if not as_json:
        try:
            request.ParseFromString(body)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"body is not an OTLP ExportLogsServiceRequest: {exc}") from None
        return decode_logs_request(request)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("body is not an OTLP/JSON ExportLogsServiceRequest: expected a JSON object")
    try:
        fix_json_ids(document)
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"body is not an OTLP/JSON ExportLogsServiceRequest: {text}") from None
    return decode_logs_request(request)


def encode_logs_response(rejected: int = 0, error_message: str = "", *, as_json: bool = False) -> bytes:
    """The OTLP ``ExportLogsServiceResponse``, carrying ``partial_success`` when records were refused."""
    response = ExportLogsServiceResponse()
    if rejected or error_message:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=rejected, error_message=error_message)
        )
    if as_json:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()

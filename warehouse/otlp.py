"""OTLP trace payloads (protobuf or OTLP/JSON) decoded into :class:`SpanRows`.

Shared by the HTTP and the gRPC receiver, so both validate alike. The payload
is parsed by protobuf's C implementation (upb) into one
``ExportTraceServiceRequest``; OTLP/JSON is parsed into the *same* message
(after turning its hex ids into the base64 protobuf's JSON mapping expects), so
there is one span walk to keep correct and fast, not two.

Invalid spans (ids of the wrong length, all-zero ids, a missing start time) are
rejected one by one and counted, the valid spans of the batch are kept: the
receiver reports the count through OTLP ``partial_success`` (OTLP spec,
"Partial Success"). A payload that is not an OTLP message at all raises
:class:`~journeyscope.errors.InvalidInputError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from journeyscope.errors import InvalidInputError
from journeyscope.instrument import conventions as cv
from journeyscope.warehouse.rows import SpanRows, explicit_outcome, json_text
from journeyscope.warehouse.rows import _channel as channel
from journeyscope.warehouse.rows import _lift as lift
from journeyscope.warehouse.rows import _opt_str as opt_str
from journeyscope.warehouse.turns import extract_turns

__all__ = ["DecodedBatch", "decode_json", "decode_protobuf", "decode_request", "encode_response"]

_KINDS = (None, "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
#: OTLP times are unsigned 64-bit; stored times are signed 64-bit nanoseconds (up to the year 2262).
_MAX_NS = 2**63 - 1
#: OTLP/JSON fields that hold ids as hex (protobuf's JSON mapping wants base64 for bytes).
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_CUSTOMER_ID, _JOURNEY_ID, _JOURNEY_NAME, _JOURNEY_STAGE = cv.CUSTOMER_ID, cv.JOURNEY_ID, cv.JOURNEY_NAME, cv.JOURNEY_STAGE
_JOURNEY_CHANNEL, _JOURNEY_COHORT, _CUSTOMER_CONSENT = cv.JOURNEY_CHANNEL, cv.JOURNEY_COHORT, cv.CUSTOMER_CONSENT
_TURN_ROLE, _TURN_TEXT, _TURN_NAME, _TURN_ROLES = cv.TURN_ROLE, cv.TURN_TEXT, cv.TURN_NAME, cv.TURN_ROLES


@dataclass
class DecodedBatch:
    """The valid spans of one request, and how many spans were refused (with the first reason)."""

    rows: SpanRows = field(default_factory=SpanRows)
    rejected: int = 0
    error_message: str = ""

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if not self.error_message:
            self.error_message = reason


def _value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as the plain Python value it carries."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


def _attributes(kvs: Any) -> dict[str, Any]:
    # The common case (a non-empty string) in one attribute read, no WhichOneof dispatch; a comprehension,
    # since each upb field read is the cost here (about a microsecond per attribute).
    return {kv.key: v.string_value or _value(v) for kv in kvs for v in (kv.value,)}


def decode_request(request: ExportTraceServiceRequest) -> DecodedBatch:
    """Walk every span of a parsed request into columnar rows, rejecting invalid spans.

    The receiver's hot loop (it runs on the event loop for every span): the
    column lists are bound once per request, resource and scope work is done
    once per resource/scope, and the per-span journey lifting of
    :meth:`SpanRows.add_fast` is inlined here (same rules, see ``rows.py``).
    """
    batch = DecodedBatch()
    c = batch.rows.columns
    trace_ids, span_ids, parents, names, kinds = (
        c["trace_id"].append, c["span_id"].append, c["parent_span_id"].append, c["name"].append, c["kind"].append)
    starts, ends, status_codes, status_messages = (
        c["start_time"].append, c["end_time"].append, c["status_code"].append, c["status_message"].append)
    customers, journeys, journey_names, stages, channels, cohorts, consents, outcomes, turns_col = (
        c["customer_id"].append, c["journey_id"].append, c["journey_name"].append, c["stage"].append,
        c["channel"].append, c["cohort"].append, c["consent"].append, c["outcome"].append, c["turns"].append)
    services, scopes, attributes_col, events_col, links_col, resources = (
        c["service_name"].append, c["scope_name"].append, c["attributes"].append, c["events"].append,
        c["links"].append, c["resource"].append)
    reject = batch.reject
    kinds_by_number, status_by_number = _KINDS, _STATUS
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        resource_json = json_text(resource) if resource else None
        service = resource.get("service.name")
        service_name = str(service) if service not in (None, "") else None
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name or None
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    reject("invalid trace_id: expected 16 bytes, not all zero")
                    continue
                if len(span_id) != 8 or span_id == _ZERO_SPAN:
                    reject("invalid span_id: expected 8 bytes, not all zero")
                    continue
                if parent and len(parent) != 8:
                    reject("invalid parent_span_id: expected 8 bytes or empty")
                    continue
                start = span.start_time_unix_nano
                if not start:
                    reject("missing start_time_unix_nano")
                    continue
                end = span.end_time_unix_nano
                if start > _MAX_NS or end > _MAX_NS:
                    reject("span time out of range: after the year 2262")
                    continue
                name = span.name
                attributes = _attributes(span.attributes)
                get = attributes.get
                if span.events:
                    events = [
                        {"name": e.name, "time": e.time_unix_nano, "attributes": _attributes(e.attributes)}
                        for e in span.events
                    ]
                    outcomes(explicit_outcome(events))
                    events_col(json_text(events))
                else:
                    outcomes(None)
                    events_col(None)
                if span.links:
                    links_col(json_text([
                        {"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                         "attributes": _attributes(ln.attributes)}
                        for ln in span.links
                    ]))
                else:
                    links_col(None)
                status = span.status
                code = status.code
                kind = span.kind
                trace_ids(trace_id.hex())
                span_ids(span_id.hex())
                parents(parent.hex() if parent and parent != _ZERO_SPAN else None)
                names(name)
                kinds(kinds_by_number[kind] if 0 <= kind < 6 else None)
                starts(start)
                ends(end or None)
                status_codes(status_by_number[code] if 0 <= code < 3 else None)
                status_messages(status.message or None)
                value = get(_CUSTOMER_ID)
                customers(value if type(value) is str and value else lift(attributes, "customer_id"))
                value = get(_JOURNEY_ID)
                journeys(value if type(value) is str and value else lift(attributes, "journey_id"))
                value = get(_JOURNEY_NAME)
                journey_names(value if type(value) is str and value else opt_str(value))
                value = get(_JOURNEY_STAGE)
                stages(value if type(value) is str and value else opt_str(value))
                value = get(_JOURNEY_CHANNEL)
                channels(channel(value) if value is not None else None)
                value = get(_JOURNEY_COHORT)
                cohorts(None if value is None else opt_str(value))
                value = get(_CUSTOMER_CONSENT)
                consents(None if value is None else opt_str(value))
                role = get(_TURN_ROLE)
                text = get(_TURN_TEXT)
                if type(role) is str and role in _TURN_ROLES and text is not None:
                    # journeyscope's own turn span: extract_turns' first rule, without the call
                    turn_name = get(_TURN_NAME)
                    turns_col([{"role": role, "text": text if type(text) is str else str(text),
                                "name": None if turn_name in (None, "") else str(turn_name)}])
                elif type(role) in (list, dict):
                    turns_col(None)  # an array or map names no role: no turn (and unhashable for extract_turns)
                else:
                    turns_col(extract_turns(name, attributes) or None)
                services(service_name)
                scopes(scope_name)
                attributes_col(json_text(attributes))
                resources(resource_json)
    return batch


def decode_protobuf(body: bytes) -> DecodedBatch:
    """A binary ``ExportTraceServiceRequest`` (OTLP/HTTP ``application/x-protobuf``)."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"body is not an OTLP ExportTraceServiceRequest: {exc}") from None
    return decode_request(request)


def _hex_to_b64(value: Any) -> Any:
    """One OTLP/JSON id: hex in, base64 out; an unreadable id becomes empty, so its span is rejected."""
    if not isinstance(value, str):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return ""
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(node: Any) -> None:
    """Rewrite hex ids in place, wherever they occur (spans, links)."""
    if isinstance(node, dict):
        for key in _ID_KEYS:
            if key in node:
                node[key] = _hex_to_b64(node[key])
        for value in node.values():
            if isinstance(value, (dict, list)):
                _fix_ids(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _fix_ids(item)


def decode_json(body: bytes) -> DecodedBatch:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, string 64-bit ints, enum numbers)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError("body is not an OTLP/JSON ExportTraceServiceRequest: expected a JSON object")
    try:
        _fix_ids(document)
        request = json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError, binascii.Error) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(f"body is not an OTLP/JSON ExportTraceServiceRequest: {text}") from None
    return decode_request(request)


def encode_response(rejected: int = 0, error_message: str = "", *, as_json: bool = False) -> bytes:
    """The OTLP ``ExportTraceServiceResponse``, carrying ``partial_success`` when spans were refused."""
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=error_message)
        )
    if as_json:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()

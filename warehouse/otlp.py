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
from journeyscope.warehouse.rows import SpanRows, json_text

__all__ = ["DecodedBatch", "decode_json", "decode_protobuf", "decode_request", "encode_response"]

_KINDS = (None, "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
#: OTLP/JSON fields that hold ids as hex (protobuf's JSON mapping wants base64 for bytes).
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


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
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        # The common case (a non-empty string) in one attribute read, no WhichOneof dispatch.
        text = v.string_value
        out[kv.key] = text if text else _value(v)
    return out


def decode_request(request: ExportTraceServiceRequest) -> DecodedBatch:
    """Walk every span of a parsed request into columnar rows, rejecting invalid spans."""
    batch = DecodedBatch()
    rows = batch.rows
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
                    batch.reject("invalid trace_id: expected 16 bytes, not all zero")
                    continue
                if len(span_id) != 8 or span_id == _ZERO_SPAN:
                    batch.reject("invalid span_id: expected 8 bytes, not all zero")
                    continue
                if parent and len(parent) != 8:
                    batch.reject("invalid parent_span_id: expected 8 bytes or empty")
                    continue
                start = span.start_time_unix_nano
                if not start:
                    batch.reject("missing start_time_unix_nano")
                    continue
                end = span.end_time_unix_nano
                events = [
                    {"name": e.name, "time": e.time_unix_nano, "attributes": _attributes(e.attributes)}
                    for e in span.events
                ]
                links = [
                    {"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(), "attributes": _attributes(ln.attributes)}
                    for ln in span.links
                ]
                status = span.status
                kind = span.kind
                rows.add_fast(
                    trace_id=trace_id.hex(),
                    span_id=span_id.hex(),
                    parent_span_id=parent.hex() if parent and parent != _ZERO_SPAN else None,
                    name=span.name,
                    start_ns=start,
                    end_ns=end or None,
                    attributes=_attributes(span.attributes),
                    events=events,
                    links=links,
                    kind=_KINDS[kind] if 0 <= kind < len(_KINDS) else None,
                    status_code=_STATUS[status.code] if 0 <= status.code < len(_STATUS) else None,
                    status_message=status.message or None,
                    scope_name=scope_name,
                    service_name=service_name,
                    resource_json=resource_json,
                )
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

"""OTLP trace payloads (protobuf or OTLP/JSON) decoded into :class:`SpanRows` or straight into a table.

Shared by the HTTP and the gRPC receiver, so both validate alike. The payload
is parsed by protobuf's C implementation (upb) into one
``ExportTraceServiceRequest``; OTLP/JSON is parsed into the *same* message
(after turning its hex ids into the base64 protobuf's JSON mapping expects), so
there is one span walk to keep correct, :func:`span_values`, not two.

Protobuf bodies bound for storage go through :func:`decode_protobuf_table`,
which uses the optional compiled decoder (``_otlp_decode.c``, about ten times
faster, and without the GIL) when it is built and ``JOURNEYSCOPE_PURE_PYTHON``
is not set. It gives exactly the Python decoder's table: it leaves every body
with anything unusual to the Python decoder, and calls :func:`span_values` for
the rare spans it does not write itself.

Invalid spans (ids of the wrong length, all-zero ids, a missing start time, a
customer or journey id over the length limit, a span upb cannot read) are
rejected one by one and counted, the valid spans of the batch are kept: the
receiver reports the count through OTLP ``partial_success`` (OTLP spec,
"Partial Success"). When upb refuses a whole body for one span (invalid UTF-8,
nesting past its depth limit), the body is split on the wire
(:mod:`journeyscope.warehouse.otlp_wire`) and each span parsed alone. A payload
that is not an OTLP message at all, or whose containers came with the wrong
wire type, raises :class:`~journeyscope.errors.InvalidInputError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from journeyscope import settings
from journeyscope.errors import InvalidInputError
from journeyscope import conventions as cv
from journeyscope.warehouse.db_errors import first_line
from journeyscope.warehouse.rows import (
    LONG_CUSTOMER_ID,
    LONG_JOURNEY_ID,
    LIFTED,
    SPAN_SCHEMA,
    TURN_TYPE,
    SpanRows,
    checked_events,
    explicit_outcome,
    journey_columns,
    json_text,
)
from journeyscope.warehouse.otlp_wire import ResourcePart, check_structure, split_request
from journeyscope.warehouse.turns import TURN_KEYS, TURN_PREFIXES, extract_turns

__all__ = [
    "ACCELERATED", "REJECTIONS", "SPAN_VALUE_COLUMNS", "DecodedBatch", "DecodedTable", "attribute_values",
    "batch_table", "decode_json", "decode_protobuf", "decode_protobuf_table", "decode_request", "encode_response",
    "fix_json_ids", "parse_json", "parse_protobuf", "resource_values", "response_body", "rules_arguments", "span_values",
    "value_of",
]

logger = logging.getLogger(__name__)

_KINDS = (None, "internal", "server", "client", "producer", "consumer")
_STATUS = ("unset", "ok", "error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
#: OTLP times are unsigned 64-bit; stored times are signed 64-bit nanoseconds (up to the year 2262).
_MAX_NS = 2**63 - 1
#: Why a span is refused, in the order :func:`span_values` checks (the compiled decoder names them by index).
REJECTIONS = (
    "invalid trace_id: expected 16 bytes, not all zero",
    "invalid span_id: expected 8 bytes, not all zero",
    "invalid parent_span_id: expected 8 bytes or empty",
    "missing start_time_unix_nano",
    "span time out of range: after the year 2262",
    LONG_CUSTOMER_ID,
    LONG_JOURNEY_ID,
)
_BAD_TRACE_ID, _BAD_SPAN_ID, _BAD_PARENT, _NO_START, _OUT_OF_RANGE, _LONG_CUSTOMER, _LONG_JOURNEY = REJECTIONS
#: The longest customer or journey id stored: the API finds every stored id by the same limit.
_MAX_ID = cv.MAX_VALUE_LENGTH
#: The columns of a :func:`span_values` row: all but the resource's and the scope's.
SPAN_VALUE_COLUMNS = (*SPAN_SCHEMA.names[:18], "attributes", "events", "links")
#: OTLP/JSON fields that hold ids as hex (protobuf's JSON mapping wants base64 for bytes).
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_TURN_ROLE, _TURN_TEXT, _TURN_NAME, _TURN_ROLES = cv.TURN_ROLE, cv.TURN_TEXT, cv.TURN_NAME, cv.TURN_ROLES
_SERVICE_NAME = "service.name"


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


class DecodedTable(NamedTuple):
    """The valid spans of one request as an Arrow table, how many spans were refused, the first reason."""

    table: pa.Table
    rejected: int = 0
    error_message: str = ""


def value_of(v: Any) -> Any:
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
        return [value_of(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


def attribute_values(kvs: Any) -> dict[str, Any]:
    # The common case (a non-empty string) in one attribute read, no WhichOneof dispatch; a comprehension,
    # since each upb field read is the cost here (about a microsecond per attribute).
    return {kv.key: v.string_value or value_of(v) for kv in kvs for v in (kv.value,)}


def resource_values(resource: Resource) -> tuple[str | None, str | None]:
    """The service name and the JSON text of a resource (its spans share both)."""
    attributes = attribute_values(resource.attributes)
    service = attributes.get(_SERVICE_NAME)
    service_name = str(service) if service not in (None, "") else None
    return service_name, (json_text(attributes) if attributes else None)


def span_values(span: Span) -> tuple[Any, ...] | str:
    """A span's row in :data:`SPAN_VALUE_COLUMNS` order, or why it is refused (one of :data:`REJECTIONS`).

    The one implementation of the span rules: the Python decoder calls it for
    every span, the compiled one (``_otlp_decode.c``) for the few spans it does
    not write itself (events, links, map values, foreign turn conventions...),
    so both decode alike by construction. It is the receiver's hot loop in the
    Python decoder: the per-span journey lifting of :meth:`SpanRows.add_fast`
    is inlined here (same rules, see ``rows.py``).
    """
    trace_id = span.trace_id
    span_id = span.span_id
    parent = span.parent_span_id
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return _BAD_TRACE_ID
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return _BAD_SPAN_ID
    if parent and len(parent) != 8:
        return _BAD_PARENT
    start = span.start_time_unix_nano
    if not start:
        return _NO_START
    end = span.end_time_unix_nano
    if start > _MAX_NS or end > _MAX_NS:
        return _OUT_OF_RANGE
    name = span.name
    attributes = attribute_values(span.attributes)
    get = attributes.get
    if span.events:
        events = checked_events(
            [{"name": e.name, "time": e.time_unix_nano, "attributes": attribute_values(e.attributes)} for e in span.events],
            span_id.hex(),
        )
        outcome = explicit_outcome(events)
        events_json = json_text(events)
    else:
        outcome = events_json = None
    links_json = json_text([
        {"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(), "attributes": attribute_values(ln.attributes)}
        for ln in span.links
    ]) if span.links else None
    status = span.status
    code = status.code
    kind = span.kind
    journey = journey_columns(attributes)
    customer_id, journey_id = journey[0], journey[1]
    if customer_id is not None and len(customer_id) > _MAX_ID:
        return _LONG_CUSTOMER
    if journey_id is not None and len(journey_id) > _MAX_ID:
        return _LONG_JOURNEY
    role = get(_TURN_ROLE)
    text = get(_TURN_TEXT)
    if type(role) is str and role in _TURN_ROLES and text is not None:
        # journeyscope's own turn span: extract_turns' first rule, without the call
        turn_name = get(_TURN_NAME)
        turns = [{"role": role, "text": text if type(text) is str else str(text),
                  "name": None if turn_name in (None, "") else str(turn_name)}]
    elif type(role) in (list, dict):
        turns = None  # an array or map names no role: no turn (and unhashable for extract_turns)
    else:
        turns = extract_turns(name, attributes) or None
    return (
        trace_id.hex(), span_id.hex(), parent.hex() if parent and parent != _ZERO_SPAN else None, name,
        _KINDS[kind] if 0 <= kind < len(_KINDS) else None, start, end or None,
        _STATUS[code] if 0 <= code < len(_STATUS) else None, status.message or None,
        *journey, outcome, turns,
        json_text(attributes), events_json, links_json,
    )


def decode_request(request: ExportTraceServiceRequest, refused: dict[int, str] | None = None) -> DecodedBatch:
    """Walk every span of a parsed request into columnar rows, rejecting invalid spans.

    Resource and scope work is done once per resource/scope; the rows are
    gathered as tuples and turned into columns once, at the end. ``refused``:
    spans already refused, by their index in the request, with the reason
    (placeholders of spans that could not be read).
    """
    batch = DecodedBatch()
    rows: list[tuple[Any, ...]] = []
    add = rows.append
    reject = batch.reject
    services: list[str | None] = []
    scopes: list[str | None] = []
    resources: list[str | None] = []
    index = 0
    for resource_spans in request.resource_spans:
        service_name, resource_json = resource_values(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name or None
            before = len(rows)
            for span in scope_spans.spans:
                values = refused.get(index, None) if refused else None
                index += 1
                if values is None:
                    values = span_values(span)
                if type(values) is str:
                    reject(values)
                else:
                    add(values)
            added = len(rows) - before
            services += [service_name] * added
            scopes += [scope_name] * added
            resources += [resource_json] * added
    columns = batch.rows.columns
    for name, column in zip(SPAN_VALUE_COLUMNS, zip(*rows)):
        columns[name] += column
    columns["service_name"] += services
    columns["scope_name"] += scopes
    columns["resource"] += resources
    return batch


def parse_protobuf(body: bytes, message: Message) -> Message:
    """A binary OTLP body parsed into ``message``, an empty request of the signal's type;
    :class:`InvalidInputError` naming that type when the body is not one."""
    try:
        message.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"body is not an OTLP {type(message).__name__}: {exc}") from None
    return message


def decode_protobuf(body: bytes) -> DecodedBatch:
    """A binary ``ExportTraceServiceRequest`` (OTLP/HTTP ``application/x-protobuf``), decoded in Python.

    A body upb refuses as a whole (a string with invalid UTF-8, a value nested too deep) is decoded
    span by span instead, so only the spans that cannot be read are refused.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError):
        return _decode_parts(split_request(body))  # split_request refuses what is not a request at all
    check_structure(request)  # upb reads a container field of the wrong wire type as nothing: refuse it
    return decode_request(request)


def _unreadable(what: str, exc: Exception) -> str:
    """Why a piece upb refused is refused: its last words, without the message type."""
    return f"unreadable {what}: {str(exc).rpartition(': ')[2] or type(exc).__name__}"


def _decode_parts(parts: list[ResourcePart]) -> DecodedBatch:
    """:func:`decode_request` over a request split on the wire: each resource, scope and span parsed alone."""
    request = ExportTraceServiceRequest()
    refused: dict[int, str] = {}  # span index in the rebuilt request -> why it is refused
    index = 0
    for part in parts:
        resource_spans = request.resource_spans.add()
        try:
            resource_spans.resource.ParseFromString(part.resource)
            resource_error = None
        except (DecodeError, ValueError, RuntimeError) as exc:
            resource_error = _unreadable("resource", exc)
        for scope_part in part.scopes:
            scope_spans = resource_spans.scope_spans.add()
            try:
                scope_spans.scope.ParseFromString(scope_part.scope)
                scope_error = None
            except (DecodeError, ValueError, RuntimeError) as exc:
                scope_error = _unreadable("instrumentation scope", exc)
            for raw in scope_part.spans:
                span = scope_spans.spans.add()
                try:
                    span.ParseFromString(raw)
                except (DecodeError, ValueError, RuntimeError) as exc:
                    refused[index] = _unreadable("span", exc)
                else:
                    if resource_error or scope_error:
                        refused[index] = resource_error or scope_error
                index += 1
    return decode_request(request, refused=refused)


def batch_table(batch: DecodedBatch) -> DecodedTable:
    """A decoded batch as one Arrow table (raises :class:`InvalidInputError` if Arrow refuses a value)."""
    try:
        table = batch.rows.to_table()
    except (ValueError, TypeError, OverflowError, UnicodeError) as exc:  # arrow refused a value
        raise InvalidInputError(f"unreadable span values: {exc}") from None
    return DecodedTable(table, batch.rejected, batch.error_message)


def decode_protobuf_table(body: bytes, *, rules: Any = None) -> DecodedTable:
    """A binary ``ExportTraceServiceRequest`` straight to an Arrow table: what the receiver stores.

    Decoded by the compiled decoder when it is built (it gives back the GIL
    while it works, so threads decode in parallel with the event loop), else,
    or when the body has anything unusual, by the Python decoder: the result
    is the same either way. Raises :class:`InvalidInputError` for a body that
    is not an OTLP request. ``rules``: other ``_otlp_decode.Rules`` than this
    module's (tests count what they leave to Python).
    """
    rules = rules or _RULES
    if rules is not None:
        decoded = rules.decode(body if type(body) is bytes else bytes(body))
        if decoded is not None:
            rows, rejected, error_message, columns = decoded
            return DecodedTable(_table(rows, columns), rejected, error_message)
    return batch_table(decode_protobuf(body))


def _buffers(parts: tuple[Any, ...]) -> list[pa.Buffer | None]:
    """The compiled decoder's buffers (objects that own their memory) as Arrow buffers, without a copy."""
    return [None if part is None else pa.py_buffer(part) for part in parts]


def _table(rows: int, columns: tuple[tuple[Any, ...], ...]) -> pa.Table:
    """The compiled decoder's column buffers (Arrow layout, :data:`SPAN_SCHEMA` order) as a table."""
    arrays = []
    for column, parts in zip(SPAN_SCHEMA, columns):
        if column.name == "turns":
            validity, offsets, turns, *fields = parts
            children = [pa.Array.from_buffers(pa.string(), turns, _buffers(f)) for f in fields]
            turn = pa.Array.from_buffers(TURN_TYPE, turns, [None], children=children)
            lists = _buffers((validity, offsets))
            arrays.append(pa.Array.from_buffers(column.type, rows, lists, children=[turn]))
        else:
            arrays.append(pa.Array.from_buffers(column.type, rows, _buffers(parts)))
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


def _hex_to_b64(value: Any) -> Any:
    """One OTLP/JSON id: hex in, base64 out; an unreadable id becomes empty, so its span is rejected."""
    if not isinstance(value, str):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return ""
    return base64.b64encode(raw).decode("ascii")


def fix_json_ids(node: Any) -> None:
    """Rewrite OTLP/JSON's hex ids in place, wherever they occur (spans, links, log records)."""
    if isinstance(node, dict):
        for key in _ID_KEYS:
            if key in node:
                node[key] = _hex_to_b64(node[key])
        for value in node.values():
            if isinstance(value, (dict, list)):
                fix_json_ids(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                fix_json_ids(item)


def _json_document(body: bytes, kind: str) -> dict[str, Any]:
    """The JSON object of an OTLP/JSON body, its hex ids rewritten for protobuf's JSON mapping."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInputError(f"body is not an OTLP/JSON {kind}: expected a JSON object")
    fix_json_ids(document)
    return document


def decode_json(body: bytes) -> DecodedBatch:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, string 64-bit ints, enum numbers).

    A span protobuf's JSON mapping refuses (a field of the wrong type, an unreadable value) is refused
    alone; the request's own structure (lists of resource spans, scope spans, spans) must hold.
    """
    document = _json_document(body, "ExportTraceServiceRequest")
    try:
        request = json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except _JSON_ERRORS as exc:
        request, refused = _json_parts(document, exc)
        return decode_request(request, refused=refused)
    return decode_request(request)


_JSON_ERRORS = (json_format.ParseError, ValueError, TypeError, RecursionError, binascii.Error)


_json_error = first_line


def _json_list(node: dict[str, Any], *names: str) -> list[Any]:
    """The list under the first of ``names`` in ``node`` (``[]`` when absent); ``None`` when not a list."""
    for name in names:
        if name in node:
            value = node[name]
            if value is None:
                return []
            if isinstance(value, list) and all(isinstance(item, dict) for item in value):
                return value
            raise InvalidInputError(
                f"body is not an OTLP/JSON ExportTraceServiceRequest: {name} must be a list of objects"
            )
    return []


def _json_parts(document: dict[str, Any], whole: BaseException) -> tuple[ExportTraceServiceRequest, dict[int, str]]:
    """The request rebuilt one resource, scope and span at a time, and the spans that could not be read."""
    request = ExportTraceServiceRequest()
    refused: dict[int, str] = {}
    index = 0

    def parse(node: Any, message: Any) -> str | None:
        try:
            json_format.ParseDict(node, message, ignore_unknown_fields=True)
        except _JSON_ERRORS as exc:
            return _json_error(exc)
        return None

    for rs_node in _json_list(document, "resourceSpans", "resource_spans"):
        resource_spans = request.resource_spans.add()
        resource_node = rs_node.get("resource")
        resource_error = parse(resource_node, resource_spans.resource) if resource_node is not None else None
        for ss_node in _json_list(rs_node, "scopeSpans", "scope_spans"):
            scope_spans = resource_spans.scope_spans.add()
            scope_node = ss_node.get("scope")
            scope_error = parse(scope_node, scope_spans.scope) if scope_node is not None else None
            for span_node in _json_list(ss_node, "spans"):
                error = parse(span_node, scope_spans.spans.add())
                if error or resource_error or scope_error:
                    what = "span" if error else "resource" if resource_error else "instrumentation scope"
                    refused[index] = f"unreadable {what}: {error or resource_error or scope_error}"
                index += 1
    if not refused:  # the whole failed and no piece did: something outside the spans is wrong
        raise InvalidInputError(f"body is not an OTLP/JSON ExportTraceServiceRequest: {_json_error(whole)}")
    return request, refused


def parse_json(body: bytes, message: Message) -> Message:
    """An OTLP/JSON body (hex ids, string 64-bit ints, enum numbers) parsed whole into ``message``, an empty
    request of another signal's type (traces: :func:`decode_json`, which salvages span by span);
    :class:`InvalidInputError` naming that type when the body is not one."""
    kind = type(message).__name__
    document = _json_document(body, kind)
    try:
        return json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except _JSON_ERRORS as exc:
        raise InvalidInputError(f"body is not an OTLP/JSON {kind}: {_json_error(exc)}") from None


def response_body(response: Message, rejected: int = 0, error_message: str = "", *, as_json: bool = False) -> bytes:
    """An OTLP export response (an empty one of the signal's type given), with ``partial_success`` (its
    ``rejected_*`` count and the reason) when items were refused, in the request's encoding."""
    if rejected or error_message:
        partial = response.partial_success  # type: ignore[attr-defined]
        count = next(f.name for f in partial.DESCRIPTOR.fields if f.name.startswith("rejected_"))
        setattr(partial, count, rejected)
        partial.error_message = error_message
    if as_json:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()


def encode_response(rejected: int = 0, error_message: str = "", *, as_json: bool = False) -> bytes:
    """The OTLP ``ExportTraceServiceResponse``, carrying ``partial_success`` when spans were refused."""
    return response_body(ExportTraceServiceResponse(), rejected, error_message, as_json=as_json)


def _span_values_of(raw: bytes) -> tuple[Any, ...] | str:
    return span_values(Span.FromString(raw))


def _resource_values_of(raw: bytes) -> tuple[str | None, str | None]:
    return resource_values(Resource.FromString(raw))


#: How each protobuf field type is laid out on the wire (every type not named here is a varint).
_WIRE_LAYOUT = {
    FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_MESSAGE: "message", FieldDescriptor.TYPE_GROUP: "group",
    FieldDescriptor.TYPE_DOUBLE: "fixed64", FieldDescriptor.TYPE_FIXED64: "fixed64",
    FieldDescriptor.TYPE_SFIXED64: "fixed64", FieldDescriptor.TYPE_FLOAT: "fixed32",
    FieldDescriptor.TYPE_FIXED32: "fixed32", FieldDescriptor.TYPE_SFIXED32: "fixed32",
}


def _same_wire_fields(messages: dict[str, tuple[tuple[int, str, str, bool], ...]]) -> bool:
    """Whether the installed OTLP protos have exactly the fields the compiled decoder was written for.

    A field it does not know is stepped over, as upb steps over unknown fields;
    a field a newer opentelemetry-proto added would be read by upb, so the
    decoder is only used when the two agree.
    """
    pool = ExportTraceServiceRequest.DESCRIPTOR.file.pool
    for name, fields in messages.items():
        try:
            descriptor = pool.FindMessageTypeByName(name)
        except KeyError:
            return False
        installed = {
            (f.number, f.name, _WIRE_LAYOUT.get(f.type, "varint"),
             f.is_repeated if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED)
            for f in descriptor.fields
        }
        if installed != set(fields):
            return False
    return True


def rules_arguments() -> dict[str, Any]:
    """What the compiled decoder is told of journeyscope's conventions (``_otlp_decode.Rules``' arguments)."""
    return {
        "span": _span_values_of,
        "resource": _resource_values_of,
        "reasons": REJECTIONS,
        "kinds": _KINDS,
        "statuses": _STATUS,
        # the journey columns, in rows.SPAN_SCHEMA order, each with the keys it is lifted from, first first
        "lifted": tuple(keys for _column, keys in LIFTED),
        "channel_aliases": dict(cv.CHANNEL_ALIASES),
        "turn_keys": (_TURN_ROLE, _TURN_TEXT, _TURN_NAME),
        "turn_span": cv.TURN_SPAN,
        "turn_roles": sorted(_TURN_ROLES),
        # a span holding one of these keys is left to span_values (turns.extract_turns' other rules)
        "turn_sources": TURN_KEYS,
        "turn_prefixes": TURN_PREFIXES,
        "service_key": _SERVICE_NAME,
        "max_id_length": _MAX_ID,
    }


def _compiled_rules() -> Any:
    """The compiled decoder, set up with this module's rules; ``None`` to decode in Python (not built,
    turned off with ``JOURNEYSCOPE_PURE_PYTHON=1``, or built for other protos or another span schema)."""
    if settings.load().pure_python:
        return None
    try:
        from journeyscope.warehouse import _otlp_decode
    except ImportError:
        return None
    if _otlp_decode.COLUMNS != tuple(SPAN_SCHEMA.names) or not _same_wire_fields(_otlp_decode.MESSAGES):
        logger.warning("journeyscope: the compiled OTLP decoder does not match the installed OTLP protos "
                       "or the span schema (rebuild it); decoding in Python")
        return None
    return _otlp_decode.Rules(**rules_arguments())


_RULES = _compiled_rules()
#: Whether :func:`decode_protobuf_table` uses the compiled decoder.
ACCELERATED = _RULES is not None

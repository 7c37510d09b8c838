"""The container levels of an OTLP trace request, read off the wire: resources, scopes and each span's bytes.

Two jobs upb does not do for the receiver:

- **Structure.** upb keeps a field sent with the wrong wire type aside as an unknown field, so a body whose
  ``resource_spans`` are varints parses as an empty request: the sender would be told all is well and
  nothing stored. :func:`check_structure` (on a parsed request, from its unknown fields) and
  :func:`split_request` (on the wire) refuse such a body: a wrong wire type on ``resource_spans``,
  ``resource``, ``scope_spans``, ``scope`` or ``spans``.
- **Salvage.** upb refuses a whole message for one string with invalid UTF-8 or one value nested past its
  depth limit. With the request split here, every span is parsed on its own, so one bad span is refused
  and its valid siblings are kept (:func:`journeyscope.warehouse.otlp.decode_protobuf`).

Only the container levels are walked; what is inside a span is left to upb.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from journeyscope.errors import InvalidInputError

__all__ = ["ResourcePart", "ScopePart", "check_structure", "split_request"]

_VARINT, _FIXED64, _LEN, _GROUP_START, _GROUP_END, _FIXED32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {_VARINT: "varint", _FIXED64: "64-bit", _LEN: "length-delimited", _GROUP_START: "group start",
               _GROUP_END: "group end", _FIXED32: "32-bit"}
_NOT_OTLP = "body is not an OTLP ExportTraceServiceRequest"
#: The container fields, by number, of a request, a ResourceSpans and a ScopeSpans (all messages).
_REQUEST = {1: "resource_spans"}
_RESOURCE_SPANS = {1: "resource", 2: "scope_spans"}
_SCOPE_SPANS = {1: "scope", 2: "spans"}


class _Malformed(Exception):
    pass


@dataclass
class ScopePart:
    """One ``ScopeSpans``: its scope's bytes (occurrences merged, as upb merges them) and each span's bytes."""

    scope: bytes = b""
    spans: list[bytes] = field(default_factory=list)


@dataclass
class ResourcePart:
    """One ``ResourceSpans``: its resource's bytes and its scopes."""

    resource: bytes = b""
    scopes: list[ScopePart] = field(default_factory=list)


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(number, wire type, start, stop)`` of each field of the message in ``data[pos:end]``."""
    while pos < end:
        tag, pos = _varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed("field number 0")
        start, pos = _skip(data, pos, end, number, wire)
        if pos > end:
            raise _Malformed("a field runs past the end of its message")
        yield number, wire, start, pos


def _skip(data: bytes, pos: int, end: int, number: int, wire: int) -> tuple[int, int]:
    """Start and end of the value of field ``number`` of wire type ``wire``, its tag ending at ``pos``."""
    start = pos
    if wire == _VARINT:
        _, pos = _varint(data, pos, end)
    elif wire == _FIXED64:
        pos += 8
    elif wire == _FIXED32:
        pos += 4
    elif wire == _LEN:
        length, start = _varint(data, pos, end)
        pos = start + length
    elif wire == _GROUP_START:
        pos = _group_end(data, pos, end, number)
    else:
        raise _Malformed(f"wire type {wire}")
    return start, pos


def _group_end(data: bytes, pos: int, end: int, number: int) -> int:
    """Where the group started at ``pos`` ends (after its end tag); nested groups are counted."""
    depth = 1
    while True:
        tag, pos = _varint(data, pos, end)
        wire = tag & 7
        if wire == _GROUP_END:
            depth -= 1
            if depth == 0:
                if tag >> 3 != number:
                    raise _Malformed("unmatched end of group")
                return pos
        elif wire == _GROUP_START:
            depth += 1
        else:
            _, pos = _skip(data, pos, end, tag >> 3, wire)
        if pos > end:
            raise _Malformed("a group runs past the end of its message")


def _wrong_wire_type(where: str, name: str, wire: int) -> InvalidInputError:
    return InvalidInputError(
        f"{_NOT_OTLP}: {where}{name} has wire type {_WIRE_NAMES.get(wire, wire)}, expected length-delimited"
    )


def _messages(data: bytes, pos: int, end: int, where: str, names: dict[int, str]) -> list[tuple[int, int, int]]:
    """The message fields among ``names`` (by number) of one message, checked to be length-delimited."""
    found = []
    for number, wire, start, stop in _fields(data, pos, end):
        name = names.get(number)
        if name is None:
            continue
        if wire != _LEN:
            raise _wrong_wire_type(where, name, wire)
        found.append((number, start, stop))
    return found


def _check_known(message: Message, where: str, names: dict[int, str]) -> None:
    for unknown in UnknownFieldSet(message):
        name = names.get(unknown.field_number)
        if name is not None:  # a field upb knows, kept aside: it came with another wire type
            raise _wrong_wire_type(where, name, unknown.wire_type)


def check_structure(request: Message) -> None:
    """Refuse a parsed ``ExportTraceServiceRequest`` whose container fields came with a wrong wire type.

    Reads the unknown fields of the container messages only (a few per request), not of the spans.
    """
    _check_known(request, "", _REQUEST)
    for resource_spans in request.resource_spans:  # type: ignore[attr-defined]
        _check_known(resource_spans, "resource_spans.", _RESOURCE_SPANS)
        for scope_spans in resource_spans.scope_spans:
            _check_known(scope_spans, "scope_spans.", _SCOPE_SPANS)


def split_request(body: bytes) -> list[ResourcePart]:
    """The request's resources, scopes and spans as bytes; :class:`InvalidInputError` for a body whose
    container levels are not an OTLP request (malformed wire data, a wrong wire type)."""
    try:
        parts = []
        for _, rs_start, rs_stop in _messages(body, 0, len(body), "", _REQUEST):
            part = ResourcePart()
            resource = []
            for number, start, stop in _messages(body, rs_start, rs_stop, "resource_spans.", _RESOURCE_SPANS):
                if number == 1:
                    resource.append(body[start:stop])
                    continue
                scope_part = ScopePart()
                scope = []
                for inner, s_start, s_stop in _messages(body, start, stop, "scope_spans.", _SCOPE_SPANS):
                    (scope if inner == 1 else scope_part.spans).append(body[s_start:s_stop])
                scope_part.scope = b"".join(scope)
                part.scopes.append(scope_part)
            part.resource = b"".join(resource)
            parts.append(part)
        return parts
    except _Malformed as exc:
        raise InvalidInputError(f"{_NOT_OTLP}: {exc}") from None

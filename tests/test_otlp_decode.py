"""The compiled OTLP decoder (``_otlp_decode.c``) gives exactly the Python decoder's result, for every body.

Random requests of every shape (attribute values of every kind, nested, duplicated keys, unicode,
journeyscope's and other instrumentations' turns, events, links, invalid ids and times, odd enum numbers,
fields in unusual order, merged messages) and mutated or random bytes are decoded both ways: the same
table (rows, order, values, nulls), rejected count and first reason, or the same exception. The server
decodes protobuf bodies with it in its own process, JSON bodies still in its workers.

``JOURNEYSCOPE_FUZZ_EXAMPLES`` raises the number of examples of each property (a long local fuzz run).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from journeyscope.server.workers import WorkerPool
from journeyscope.settings import load as load_settings
from journeyscope.warehouse import otlp
from journeyscope.warehouse.otlp import batch_table, decode_protobuf, decode_protobuf_table
from receiver_support import journey_spans, make_request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_ingest import build_bodies  # noqa: E402  (the benchmark's own request bodies)

EXAMPLES = int(os.environ.get("JOURNEYSCOPE_FUZZ_EXAMPLES", "0")) or None
PURE = load_settings().pure_python
needs_compiled = pytest.mark.skipif(PURE, reason="JOURNEYSCOPE_PURE_PYTHON asks for the Python decoder")


def examples(default: int) -> Any:
    return settings(max_examples=EXAMPLES or default, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- decoding both ways


def _outcome(decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except Exception as exc:  # noqa: BLE001 - whatever the Python decoder raises, the compiled one must too
        return exc


def assert_same(body: bytes, rules: Any = None) -> Any:
    """Decode ``body`` both ways and compare; the compiled decoder's result (or exception)."""
    expected = _outcome(lambda: batch_table(decode_protobuf(body)))
    got = _outcome(lambda: decode_protobuf_table(body, rules=rules))
    if isinstance(expected, Exception):
        assert type(got) is type(expected) and str(got) == str(expected), (got, expected)
        return got
    assert not isinstance(got, Exception), got
    got.table.validate(full=True)
    for name in expected.table.column_names:  # one column at a time: a readable failure
        assert got.table.column(name).to_pylist() == expected.table.column(name).to_pylist(), name
    assert got.table.equals(expected.table)
    assert (got.rejected, got.error_message) == (expected.rejected, expected.error_message)
    return got


def compiled(body: bytes) -> tuple[Any, ...] | None:
    """The compiled decoder's own answer: None when it left the body to the Python decoder."""
    return otlp._RULES.decode(body) if otlp._RULES is not None else None  # noqa: SLF001


class CountingRules:
    """The module's rules, with a count of the spans and resources the compiled decoder leaves to Python."""

    def __init__(self) -> None:
        from journeyscope.warehouse import _otlp_decode

        self.spans = self.resources = 0
        arguments = otlp.rules_arguments()
        span, resource = arguments["span"], arguments["resource"]

        def count_span(raw: bytes) -> Any:
            self.spans += 1
            return span(raw)

        def count_resource(raw: bytes) -> Any:
            self.resources += 1
            return resource(raw)

        self.rules = _otlp_decode.Rules(**{**arguments, "span": count_span, "resource": count_resource})


# ---------------------------------------------------------------- random requests


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten: most spans must be valid, or the span rules would rarely be compared."""
    return st.integers(0, 9).flatmap(lambda roll: bad if roll == 0 else good)


KEYS = [
    "customer.id", "user.id", "journey.id", "session.id", "gen_ai.conversation.id", "journey.name",
    "journey.stage", "journey.channel", "journey.cohort", "customer.consent", "journey.turn.role",
    "journey.turn.text", "journey.turn.name", "service.name", "llm.input_messages.0.message.role",
    "llm.input_messages.0.message.content", "llm.output_messages.0.message.role",
    "llm.output_messages.0.message.content", "llm.input_messages.1.message.contents.0.text",
    "gen_ai.input.messages", "gen_ai.output.messages", "openinference.span.kind", "input.value",
    "output.value", "gen_ai.request.temperature", "journey.stage.outcome", "", "a", "llm.input_messages",
    "journey.turn",
]
WORDS = [
    "customer", "agent", "system", "tool", "User", "assistant", "human", " agent", "", " ", "chat", "CHAT",
    " PHONE ", "Phone\t", "e-mail", "\x1cweb\x1f", "\x0bsms\x0c", "live-chat", "WA", "İnstagram", "ß", "Ｃhat",
    "\u00a0chat\u2003", "AGENT", "chain", "LLM", "completed", " Escalated ", "failed", "nope", "journey.turn",
    '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]',
    '[{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]', "[[", "{}",
    "\x00", "\x7f", '"\\', "\u2028\u2029", "\U0001f600", "\ud7ff\ue000", "tab\there", "line\nbreak",
]
text = st.sampled_from(WORDS) | st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
key = st.sampled_from(KEYS) | st.text(max_size=6)
#: Ids at the length limit (256 characters) and past it, in one- and two-byte characters.
ids = text | st.sampled_from(["x" * 256, "x" * 257, "é" * 128, "é" * 129, "é" * 256, "é" * 257, "🙂" * 257])
int64 = st.integers(-(2**63), 2**63 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
doubles = st.floats() | st.sampled_from([0.0, -0.0, 1e16, 1e-7, 0.1, 1.5e300, 5e-324, float("-inf")])
nans = st.integers(0, 2**51 - 1).map(lambda m: struct.unpack("<d", struct.pack("<Q", 0xFFF8 << 48 | m))[0])

scalar = st.one_of(
    text.map(lambda t: AnyValue(string_value=t)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    int64.map(lambda i: AnyValue(int_value=i)),
    (doubles | nans).map(lambda d: AnyValue(double_value=d)),
    st.binary(max_size=7).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
    st.integers(0, 3).map(lambda i: AnyValue(string_value_strindex=i)),
)


def _kvlist(items: list[tuple[str, AnyValue]]) -> AnyValue:
    return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in items]))


def _array(values: list[AnyValue]) -> AnyValue:
    return AnyValue(array_value=ArrayValue(values=values))


def _string(text: str) -> AnyValue:
    return AnyValue(string_value=text)


any_value = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=4).map(_array)
    | st.lists(st.tuples(key, children), max_size=3).map(_kvlist),
    max_leaves=8,
)
# Most attributes are strings, as in real traffic; every kind still comes often.
value = st.one_of(text.map(_string), text.map(_string), any_value)
attribute = st.one_of(
    st.builds(lambda k, v: KeyValue(key=k, value=v), key, value),
    key.map(lambda k: KeyValue(key=k)),  # no value at all
)
# Keys no rule looks at, short so that they repeat, with the values the compiled decoder writes itself.
plain_value = st.one_of(scalar, st.lists(scalar, max_size=3).map(_array))
plain_attribute = st.builds(lambda k, v: KeyValue(key=k, value=v), st.text("abc", max_size=3), plain_value)
attributes = st.one_of(
    st.lists(attribute, max_size=8),
    st.lists(plain_attribute, max_size=6),
    st.lists(plain_attribute, min_size=17, max_size=24),  # long lists: the sorted duplicate check
)


@st.composite
def journey_attributes(draw: st.DrawFn) -> list[KeyValue]:
    """journeyscope's own span attributes (its turn span's rule, mostly), a few random ones mixed in."""
    found = [KeyValue(key=k, value=AnyValue(string_value=draw(ids if k.endswith(".id") else text)))
             for k in ("customer.id", "journey.id", "journey.name", "journey.stage", "journey.channel")
             if draw(st.booleans())]
    if draw(st.booleans()):
        role = draw(st.sampled_from(["customer", "agent", "system", "tool"]) | text)
        found.append(KeyValue(key="journey.turn.role", value=AnyValue(string_value=role)))
        if draw(st.integers(0, 4)):
            found.append(KeyValue(key="journey.turn.text", value=AnyValue(string_value=draw(text))))
        if draw(st.booleans()):
            name = st.sampled_from(["", "Ava"]).map(lambda t: AnyValue(string_value=t)) | value
            found.append(KeyValue(key="journey.turn.name", value=draw(name)))
    found += draw(st.lists(attribute | plain_attribute, max_size=3))
    return draw(st.permutations(found))


span_id_bytes = mostly(st.binary(min_size=8, max_size=8).filter(any),
                       st.sampled_from([bytes(8), b"", b"\x01", bytes(range(9))]))
trace_id_bytes = mostly(st.binary(min_size=16, max_size=16).filter(any),
                        st.sampled_from([bytes(16), b"", bytes(range(1, 9))]))
times = mostly(st.integers(1, 2**63 - 1) | st.sampled_from([1, 2**63 - 1, 1_700_000_000_000_000_000]),
               st.sampled_from([0, 2**63, 2**64 - 1]) | st.integers(2**63, 2**64 - 1))
outcome_value = st.one_of(st.sampled_from(["completed", " Abandoned", "ESCALATED", "failed", "later", ""])
                          .map(lambda t: AnyValue(string_value=t)), any_value)
event = st.builds(
    lambda name, time, attrs: Span.Event(name=name, time_unix_nano=time, attributes=attrs),
    st.sampled_from(["journey.stage.outcome", "exception", ""]) | text,
    times,
    st.lists(st.builds(lambda v: KeyValue(key="journey.stage.outcome", value=v), outcome_value), max_size=2)
    | st.lists(attribute, max_size=2),
)
link = st.builds(lambda t, s, attrs: Span.Link(trace_id=t, span_id=s, attributes=attrs), trace_id_bytes,
                 span_id_bytes, st.lists(attribute, max_size=2))


@st.composite
def span(draw: st.DrawFn) -> Span:
    return Span(
        trace_id=draw(trace_id_bytes),
        span_id=draw(span_id_bytes),
        parent_span_id=draw(st.sampled_from([b"", bytes(8)]) | span_id_bytes),
        trace_state=draw(st.sampled_from(["", "k=v"])),
        flags=draw(st.sampled_from([0, 1, 0x301])),
        name=draw(st.sampled_from(["journey.turn", "chat gpt-4o", ""]) | text),
        kind=draw(st.integers(-2, 8) | int32),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(st.just(0) | times),
        attributes=draw(st.one_of(journey_attributes(), attributes)),
        dropped_attributes_count=draw(st.sampled_from([0, 3])),
        events=draw(st.lists(event, max_size=2)) if draw(st.integers(0, 3)) == 0 else [],
        links=draw(st.lists(link, max_size=2)) if draw(st.integers(0, 4)) == 0 else [],
        status=Status(code=draw(st.integers(-1, 4) | int32),
                      message=draw(st.sampled_from(["", "boom"]) | text)),
    )


@st.composite
def request(draw: st.DrawFn) -> ExportTraceServiceRequest:
    resource_spans = []
    for _ in range(draw(st.integers(0, 3))):
        resource = ResourceSpans(
            scope_spans=[
                ScopeSpans(
                    scope=InstrumentationScope(
                        name=draw(st.sampled_from(["", "journeyscope.instrument"]) | text),
                        version=draw(st.sampled_from(["", "0.1"])),
                        attributes=draw(st.lists(attribute, max_size=2)),
                    ),
                    spans=draw(st.lists(span(), max_size=4)),
                )
                for _ in range(draw(st.integers(0, 2)))
            ],
            schema_url=draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.21.0"])),
        )
        if draw(st.integers(0, 4)):
            service = st.builds(lambda v: KeyValue(key="service.name", value=v), value)
            resource.resource.CopyFrom(Resource(attributes=draw(st.lists(service, max_size=1))
                                                + draw(st.lists(attribute, max_size=4))))
        resource_spans.append(resource)
    return ExportTraceServiceRequest(resource_spans=resource_spans)


# ---------------------------------------------------------------- wire-level rewrites


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _fields(message: bytes) -> list[tuple[int, bytes, bytes]]:
    """The top-level fields of a well-formed message: (number, the field's bytes, its payload if any)."""
    fields, at = [], 0
    while at < len(message):
        start = at
        tag, at = _varint(message, at)
        payload = b""
        if tag & 7 == 0:
            _, at = _varint(message, at)
        elif tag & 7 == 1:
            at += 8
        elif tag & 7 == 5:
            at += 4
        else:
            size, at = _varint(message, at)
            payload, at = message[at:at + size], at + size
        fields.append((tag >> 3, message[start:at], payload))
    return fields


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def reversed_fields(body: bytes) -> bytes:
    """The same request with the fields of every ResourceSpans, ScopeSpans and Span in reverse order (a
    resource after its spans, attributes before ids...): valid protobuf, read the same by upb."""

    def scope_spans(payload: bytes) -> bytes:
        return b"".join(_len_field(2, b"".join(f for _, f, _ in reversed(_fields(p)))) if n == 2 else f
                        for n, f, p in reversed(_fields(payload)))

    def resource_spans(payload: bytes) -> bytes:
        fields = reversed(_fields(payload))
        return b"".join(_len_field(2, scope_spans(p)) if n == 2 else f for n, f, p in fields)

    return b"".join(_len_field(1, resource_spans(p)) for _, _, p in _fields(body))


# ---------------------------------------------------------------- the properties


@needs_compiled
def test_the_compiled_decoder_is_built_and_used() -> None:
    # CI has a C compiler: a silently failed build of the optional extension shows up here.
    assert otlp.ACCELERATED, "journeyscope.warehouse._otlp_decode did not build or import (see the pip log)"
    from journeyscope.warehouse import _otlp_decode

    assert Path(_otlp_decode.__file__).suffix in (".so", ".pyd")


def test_pure_python_is_chosen_by_the_environment() -> None:
    code = "from journeyscope.warehouse import otlp; print(otlp.ACCELERATED)"
    env = {**os.environ, "JOURNEYSCOPE_PURE_PYTHON": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@needs_compiled
@examples(500)
@given(request())
def test_random_requests_decode_alike(message: ExportTraceServiceRequest) -> None:
    body = message.SerializeToString()
    assert compiled(body) is not None  # nothing unusual on the wire: the compiled decoder reads it itself
    assert_same(body)


@needs_compiled
@examples(150)
@given(request())
def test_fields_in_any_order_decode_alike(message: ExportTraceServiceRequest) -> None:
    body = reversed_fields(message.SerializeToString())
    assert compiled(body) is not None
    assert_same(body)


@needs_compiled
@examples(150)
@given(request(), st.data())
def test_merged_messages_decode_alike(message: ExportTraceServiceRequest, data: st.DataObject) -> None:
    # Singular fields sent twice (a resource, a scope, a span's fields: each followed by a second one, which
    # protobuf merges into the first): left to upb, whatever the merge makes of them.
    resource = Resource(attributes=data.draw(st.lists(attribute, max_size=3)))
    resource_field = _len_field(1, resource.SerializeToString())
    scope = _len_field(1, InstrumentationScope(name=data.draw(text)).SerializeToString())
    extra = data.draw(span()).SerializeToString()

    def scope_spans(payload: bytes) -> bytes:
        return b"".join(_len_field(2, p + extra) if n == 2 else f for n, f, p in _fields(payload)) + scope

    def resource_spans(payload: bytes) -> bytes:
        fields = _fields(payload)
        return b"".join(_len_field(2, scope_spans(p)) if n == 2 else f for n, f, p in fields) + resource_field

    body = message.SerializeToString()
    assert_same(b"".join(_len_field(1, resource_spans(p)) for _, _, p in _fields(body)))


@examples(300)
@given(request(), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 10**6), st.binary(max_size=6))
def test_mutated_requests_decode_alike_or_fail_alike(
    message: ExportTraceServiceRequest, flips: list[tuple[int, int]], cut: int, inserted: bytes
) -> None:
    body = bytearray(message.SerializeToString())
    if body:
        for index, byte in flips:
            body[index % len(body)] = byte
        at = cut % len(body)
        body[at:at] = inserted
    assert_same(bytes(body[: max(1, cut % (len(body) + 1))]))
    assert_same(bytes(body))


@examples(300)
@given(st.binary(max_size=300))
def test_random_bytes_decode_alike_or_fail_alike(body: bytes) -> None:
    assert_same(body)


def _request_with_span(span_bytes: bytes) -> bytes:
    return _len_field(1, _len_field(2, _len_field(2, span_bytes)))


# A valid span without name, kind and trace_state: the cases below append those, once.
VALID_SPAN = Span(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), start_time_unix_nano=5,
                  attributes=[KeyValue(key="journey.id", value=_string("j"))]).SerializeToString()


def _valid_span_and(*wire: bytes) -> bytes:
    """A request with VALID_SPAN followed by these bytes (more of its fields, as sent on the wire)."""
    return _request_with_span(VALID_SPAN + b"".join(wire))


def _attribute(key: bytes, any_value: bytes) -> bytes:
    """A span's attribute field, its AnyValue given as wire bytes."""
    return _len_field(9, _len_field(1, key) + _len_field(2, any_value))


@pytest.mark.parametrize("body", [
    pytest.param(_valid_span_and(_len_field(5, b"\xed\xa0\x80")), id="surrogate in a string"),
    pytest.param(_valid_span_and(_len_field(5, b"\xc0\x80")), id="overlong UTF-8"),
    pytest.param(_valid_span_and(_len_field(3, b"\xff")), id="invalid UTF-8 in trace_state"),
    pytest.param(_valid_span_and(_len_field(5, b"\xf4\x90\x80\x80")), id="past U+10FFFF"),
    pytest.param(_valid_span_and(_len_field(5, "\U0010ffff\ud7ff".encode())), id="highest code points"),
    pytest.param(_valid_span_and(_len_field(5, b"a\xe2\x82")), id="truncated UTF-8"),
    pytest.param(_valid_span_and(_len_field(5, b"x"), _len_field(5, b"y")), id="name sent twice"),
    pytest.param(_valid_span_and(_len_field(99, b"\xff")), id="unknown field, any bytes"),
    pytest.param(_valid_span_and(b"\x30" + b"\xff" * 9 + b"\x01"), id="kind, a 10-byte varint"),
    pytest.param(_valid_span_and(b"\x30\x81\x80\x80\x80\x10"), id="kind past int32"),
    pytest.param(_valid_span_and(b"\x30" + b"\xff" * 9 + b"\x7f"), id="varint past 64 bits"),
    pytest.param(_valid_span_and(b"\x28\x03"), id="name as a varint"),
    pytest.param(_valid_span_and(b"\x9b\x06\x08\x01\x9c\x06"), id="a group"),
    pytest.param(_valid_span_and(b"\xaa\x80\x80\x80\x00\x01y"), id="overlong tag"),
    pytest.param(_valid_span_and(b"\x2a\x81\x80\x80\x80\x00y"), id="overlong length"),
    pytest.param(_valid_span_and(b"\x00\x01"), id="field number 0"),
    pytest.param(_valid_span_and(_len_field(9, _len_field(2, b"\x0a\x01x\x18\x01"))), id="two oneof members"),
    pytest.param(_valid_span_and(_attribute(b"k", b"\x10\x02")), id="bool as 2"),
    pytest.param(_len_field(1, _len_field(1, _len_field(3, b""))), id="entity_refs"),
    pytest.param(_valid_span_and(_attribute(b"k", b"\x0a" * 3)), id="truncated value"),
    pytest.param(_valid_span_and(_attribute(b"k", b"\x40\x07")), id="string_value_strindex"),
])
def test_unusual_wire_data_decodes_alike_or_fails_alike(body: bytes) -> None:
    assert_same(body)


def _nested(depth: int) -> bytes:
    inner = _len_field(1, b"leaf")
    for _ in range(depth):
        inner = _len_field(5, _len_field(1, inner))  # AnyValue{array_value{values: [inner]}}
    return inner


@pytest.mark.parametrize("depth", [1, 28, 29, 30, 46, 47, 48, 49])
def test_deep_arrays_decode_alike_or_fail_alike(depth: int) -> None:
    # upb refuses messages nested past 100 deep; the compiled decoder leaves anything past 64 to it.
    assert_same(_valid_span_and(_attribute(b"deep", _nested(depth))))


def test_a_deep_gen_ai_message_gives_no_turns_alike() -> None:
    # json.loads raises RecursionError inside span_values: both decoders take it as no turns, not a crash.
    body = _valid_span_and(_attribute(b"gen_ai.input.messages", _len_field(1, b"[" * 100_000)))
    decoded = assert_same(body)
    assert not isinstance(decoded, Exception) and decoded.table.column("turns").to_pylist() == [None]


@needs_compiled
def test_the_benchmark_bodies_decode_alike_and_only_spans_with_events_go_to_python() -> None:
    bodies, _ = build_bodies(6000, 1000, 300, seed=3)
    counting = CountingRules()
    rows = 0
    for body in bodies:
        rows += assert_same(body, counting.rules).table.num_rows
    with_events = sum(1 for body in bodies for rs in ExportTraceServiceRequest.FromString(body).resource_spans
                      for ss in rs.scope_spans for s in ss.spans if s.events)
    assert rows == 6000 and 0 < with_events < 200
    assert (counting.spans, counting.resources) == (with_events, 0)


@needs_compiled
def test_common_attribute_values_are_decoded_without_python() -> None:
    finish = _array([_string("stop"), AnyValue(double_value=1e16), AnyValue(),
                     AnyValue(bytes_value=b"\x00\xff"), _array([AnyValue(bool_value=True)])])
    attributes = [
        KeyValue(key="journey.channel", value=_string(" Phone\t")),
        KeyValue(key="journey.turn.role", value=_string("agent")),
        KeyValue(key="journey.turn.text", value=_string('say "hi"\n\x01')),
        KeyValue(key="gen_ai.request.temperature", value=AnyValue(double_value=0.1)),
        KeyValue(key="ratio", value=AnyValue(double_value=float("nan"))),
        KeyValue(key="tokens", value=AnyValue(int_value=-(2**63))),
        KeyValue(key="finish", value=finish),
        KeyValue(key="nothing"),
    ]
    spans = [Span(trace_id=bytes(range(1, 17)), span_id=bytes([i + 1] * 8), name="journey.turn",
                  start_time_unix_nano=10 + i, attributes=attributes) for i in range(3)]
    resource = Resource(attributes=[KeyValue(key="service.name", value=_string("svc")),
                                    KeyValue(key="weight", value=AnyValue(double_value=2.5))])
    body = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    ).SerializeToString()
    counting = CountingRules()
    got = assert_same(body, counting.rules)
    assert (counting.spans, counting.resources) == (0, 0)
    assert got.table.column("channel").to_pylist() == ["voice"] * 3
    assert got.table.column("attributes")[0].as_py().endswith(
        '"ratio":"nan","tokens":-9223372036854775808,'
        '"finish":["stop",1e+16,null,"AP8=",[true]],"nothing":null}'
    )


@needs_compiled
def test_threads_decode_at_once_with_the_same_results() -> None:
    bodies = build_bodies(4000, 500, 800, seed=5)[0]
    bodies += [reversed_fields(body) for body in bodies[:2]] + [b"\x0a\x05junk", VALID_SPAN]
    expected = [_outcome(lambda b=b: decode_protobuf_table(b)) for b in bodies]
    failures: list[str] = []

    def work() -> None:
        for _ in range(5):
            for body, want in zip(bodies, expected):
                got = _outcome(lambda b=body: decode_protobuf_table(b))
                if isinstance(want, Exception):
                    same = type(got) is type(want)
                else:
                    same = not isinstance(got, Exception) and got.table.equals(want.table)
                if not same:
                    failures.append(repr(got))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@needs_compiled
def test_the_server_decodes_protobuf_in_process_and_json_in_its_workers() -> None:
    message = make_request(journey_spans("j-pool", 300, trace=9))
    body = message.SerializeToString()
    document = json_format.MessageToDict(message)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:  # OTLP/JSON ids are hex
                span[key] = base64.b64decode(span[key]).hex()
    pool = WorkerPool(1, inline_below=1024)
    try:
        threaded = asyncio.run(pool.decode(body, as_json=False))  # in a thread of this process
        in_place = pool.decode_sync(body)  # on the caller's thread (the gRPC receiver's)
        assert pool.offloaded == 0
        from_json = pool.decode_sync(json.dumps(document).encode(), as_json=True)
        assert pool.offloaded == 1
    finally:
        pool.close()
    expected = batch_table(decode_protobuf(body)).table
    assert threaded.table.equals(expected) and in_place.table.equals(expected)
    assert from_json.table.equals(expected)


# ---------------------------------------------------------------- one bad span costs only itself


def _request_of(*spans: bytes, resource: bytes = b"") -> bytes:
    """A request of one resource and scope holding these span messages (wire bytes, however odd)."""
    scope_spans = b"".join(_len_field(2, raw) for raw in spans)
    return _len_field(1, (_len_field(1, resource) if resource else b"") + _len_field(2, scope_spans))


def _valid_spans(n: int, journey: str = "j-ok") -> list[bytes]:
    return [raw.SerializeToString() for raw in journey_spans(journey, n, trace=77)]


def _kvlist_nested(depth: int) -> bytes:
    """An AnyValue holding ``depth`` nested kvlists, as wire bytes (protobuf would refuse to build it)."""
    inner = _len_field(1, b"leaf")
    for _ in range(depth):
        inner = _len_field(6, _len_field(1, _len_field(1, b"k") + _len_field(2, inner)))
    return inner


def _span_with(*attributes: KeyValue, span_id: int = 99) -> bytes:
    return Span(trace_id=bytes(range(1, 17)), span_id=span_id.to_bytes(8, "big"), start_time_unix_nano=5,
                name="odd", attributes=list(attributes)).SerializeToString()


def test_a_span_with_invalid_utf8_is_refused_alone() -> None:
    bad = _span_with(span_id=99).replace(b"odd", b"od\xff")
    decoded = assert_same(_request_of(*_valid_spans(5), bad))
    assert decoded.table.num_rows == 5 and decoded.rejected == 1
    assert decoded.error_message == "unreadable span: String field had bad UTF-8"


def test_a_resource_with_invalid_utf8_costs_its_own_spans_only() -> None:
    bad_resource = Resource(attributes=[KeyValue(key="service.name", value=_string("svc"))]).SerializeToString()
    body = _request_of(*_valid_spans(2, "j-a"), resource=bad_resource.replace(b"svc", b"sv\xff")) + _request_of(
        *_valid_spans(3, "j-b"))
    decoded = assert_same(body)
    assert decoded.table.column("journey_id").to_pylist() == ["j-b"] * 3 and decoded.rejected == 2
    assert decoded.error_message.startswith("unreadable resource")


@pytest.mark.parametrize("depth, kept", [(32, 6), (40, 5)])
def test_a_deeply_nested_value_costs_at_most_its_span(depth: int, kept: int) -> None:
    # upb refuses a message nested past 100 deep: 32 kvlist levels under a request, not under a span alone
    deep = _span_with() + _attribute(b"deep", _kvlist_nested(depth))
    decoded = assert_same(_request_of(*_valid_spans(5), deep))
    assert decoded.table.num_rows == kept and decoded.rejected == 6 - kept


@pytest.mark.parametrize("body, where", [
    pytest.param(b"\x08\x01" + _request_of(*_valid_spans(1)), "resource_spans", id="resource_spans varint"),
    pytest.param(_len_field(1, b"\x10\x05"), "resource_spans.scope_spans", id="scope_spans varint"),
    pytest.param(_len_field(1, b"\x09" + bytes(8)), "resource_spans.resource", id="resource fixed64"),
    pytest.param(_len_field(1, _len_field(2, b"\x15" + bytes(4))), "scope_spans.spans", id="spans fixed32"),
    pytest.param(_len_field(1, _len_field(2, b"\x08\x07")), "scope_spans.scope", id="scope varint"),
])
def test_a_container_field_of_the_wrong_wire_type_is_a_bad_body(body: bytes, where: str) -> None:
    refused = assert_same(body)
    assert isinstance(refused, otlp.InvalidInputError) and where in str(refused)


ID_CASES = [("journey.id", "x" * 256, True), ("journey.id", "x" * 257, False), ("journey.id", "é" * 256, True),
            ("journey.id", "é" * 257, False), ("session.id", "s" * 257, False), ("customer.id", "c" * 257, False),
            ("user.id", "🙂" * 256, True)]


@pytest.mark.parametrize("key, value, stored", ID_CASES)
def test_ids_over_the_limit_are_refused_per_span(key: str, value: str, stored: bool) -> None:
    odd = _span_with(KeyValue(key=key, value=_string(value)))
    decoded = assert_same(_request_of(*_valid_spans(2), odd))
    assert (decoded.table.num_rows, decoded.rejected) == ((3, 0) if stored else (2, 1))
    if not stored:
        assert decoded.error_message == f"{key.split('.')[0].replace('user', 'customer').replace('session', 'journey')}" \
            " id longer than 256 characters"


@needs_compiled
def test_only_spans_whose_id_may_be_too_long_go_to_python() -> None:
    counting = CountingRules()
    ids = ["x" * 256, "é" * 128, "é" * 129, "x" * 257]  # bytes: 256, 256, 258, 257
    body = _request_of(*(_span_with(KeyValue(key="journey.id", value=_string(i)), span_id=n + 1)
                         for n, i in enumerate(ids)))
    assert_same(body, counting.rules)
    assert counting.spans == 2


def _json_span(span_id: str, **fields: Any) -> dict[str, Any]:
    return {"traceId": "ab" * 16, "spanId": span_id, "name": "turn", "startTimeUnixNano": "5",
            "attributes": [{"key": "journey.id", "value": {"stringValue": "j-json"}}], **fields}


def test_a_json_span_of_the_wrong_shape_is_refused_alone() -> None:
    spans = [_json_span(f"{i:016x}") for i in range(1, 4)] + [_json_span("00000000000000ff", startTimeUnixNano="soon")]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    decoded = batch_table(otlp.decode_json(body))
    assert decoded.table.num_rows == 3 and decoded.rejected == 1
    assert decoded.error_message.startswith("unreadable span")
    with pytest.raises(otlp.InvalidInputError, match="resourceSpans must be a list"):
        otlp.decode_json(json.dumps({"resourceSpans": 5, "x": {"y": 1}}).encode())


@examples(150)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"\x2a\x01\xff", b"\x0a\x03\xff\xfe\xfd"]),
                min_size=1, max_size=3), st.data())
def test_valid_spans_survive_any_bad_siblings(bad: list[bytes], data: st.DataObject) -> None:
    valid = [s.SerializeToString() for s in journey_spans("j-survive", 4, trace=88)]
    spans = list(valid)
    for raw in bad:  # each bad span where the draw puts it
        spans.insert(data.draw(st.integers(0, len(spans))), raw)
    decoded = assert_same(_request_of(*spans))
    assert not isinstance(decoded, Exception), decoded  # what is inside a span never fails the body
    kept = set(decoded.table.column("span_id").to_pylist())
    assert {Span.FromString(raw).span_id.hex() for raw in valid} <= kept
    assert decoded.table.num_rows + decoded.rejected == len(spans)

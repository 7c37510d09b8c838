"""The decoder never crashes on input: arbitrary bytes, mutated valid messages and arbitrary JSON either
decode (and the batch can be stored) or fail with InvalidInputError (the receiver's 400). Protobuf bodies
go through both the Python decoder and the receiver's own path (the compiled decoder when it is built)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyscope.errors import InvalidInputError
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.otlp import DecodedBatch, decode_json, decode_protobuf, decode_protobuf_table
from receiver_support import journey_spans, make_request, make_span

VALID = make_request(
    journey_spans("j-f", 3, trace=3) + [make_span(4, 9, "x", retries=3, ratio=0.5, ok=True)]
).SerializeToString()

_WAREHOUSE = Warehouse(":memory:")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
otlp_keys = st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "name",
                             "startTimeUnixNano", "attributes", "key", "value", "stringValue", "intValue",
                             "kind", "events", "links", "status", "code", "arrayValue", "values"])
otlp_like = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=40) | st.sampled_from(["ab" * 16, "01" * 8, "1544712660000000000", "zz"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(otlp_keys, children, max_size=5),
    max_leaves=40,
)


def _decodes_or_refuses(decode: object, body: bytes) -> None:
    try:
        batch: DecodedBatch = decode(body)  # type: ignore[operator]
    except InvalidInputError:
        return
    table = batch.rows.to_table()
    assert table.num_rows + batch.rejected >= 0
    _WAREHOUSE.ingest(table)


def _protobuf_decodes_or_refuses(body: bytes) -> None:
    _decodes_or_refuses(decode_protobuf, body)
    try:
        decoded = decode_protobuf_table(body)
    except InvalidInputError:
        return
    decoded.table.validate(full=True)
    assert decoded.table.num_rows + decoded.rejected >= 0
    _WAREHOUSE.ingest(decoded.table)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(body: bytes) -> None:
    _protobuf_decodes_or_refuses(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(VALID)))
def test_mutated_valid_protobuf(flips: list[tuple[int, int]], cut: int) -> None:
    body = bytearray(VALID)
    for index, value in flips:
        body[index] = value
    _protobuf_decodes_or_refuses(bytes(body[: max(cut, 1)]))


@settings(max_examples=300, deadline=None)
@given(otlp_like)
def test_otlp_shaped_json(document: object) -> None:
    _decodes_or_refuses(decode_json, json.dumps(document).encode())


@settings(max_examples=150, deadline=None)
@given(json_values, st.binary(max_size=50))
def test_arbitrary_json_and_bytes(document: object, raw: bytes) -> None:
    _decodes_or_refuses(decode_json, json.dumps(document).encode())
    _decodes_or_refuses(decode_json, raw)


any_value = st.one_of(
    st.fixed_dictionaries({"stringValue": st.text(max_size=10)}),
    st.fixed_dictionaries({"intValue": st.integers(-(2**63), 2**63 - 1).map(str)}),
    st.fixed_dictionaries({"doubleValue": st.floats()}),
    st.fixed_dictionaries({"boolValue": st.booleans()}),
    st.fixed_dictionaries({"bytesValue": st.sampled_from(["AAEC", "", "!!"])}),
    st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries(
        {"values": st.lists(st.fixed_dictionaries({"stringValue": st.text(max_size=5)}), max_size=3)})}),
    otlp_like,
)
span_doc = st.fixed_dictionaries(
    {
        "traceId": st.sampled_from(["ab" * 16, "00" * 16, "abc", "", "AB" * 16]) | st.text(max_size=34),
        "spanId": st.sampled_from(["01" * 8, "00" * 8, "0102"]) | st.text(max_size=18),
        "name": st.text(max_size=10),
        "startTimeUnixNano": st.integers(0, 2**64 - 1).map(str) | st.integers(-5, 5),
        "endTimeUnixNano": st.integers(0, 2**64 - 1).map(str),
        "kind": st.integers(-3, 9),
        "attributes": st.lists(st.fixed_dictionaries({"key": st.sampled_from(
            ["journey.id", "journey.stage", "journey.turn.role", "journey.turn.text", "llm.input_messages.0.message.role",
             "gen_ai.input.messages", "input.value", "session.id", "journey.channel"]) | st.text(max_size=8),
            "value": any_value}), max_size=6),
        "events": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["journey.stage.outcome", "x"]),
                                                  "attributes": st.lists(st.fixed_dictionaries({
                                                      "key": st.just("journey.stage.outcome"),
                                                      "value": any_value}), max_size=2)}), max_size=2),
        "status": st.fixed_dictionaries({"code": st.integers(-1, 5)}),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(span_doc, min_size=1, max_size=4))
def test_span_shaped_json(spans: list[dict[str, object]]) -> None:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}
    _decodes_or_refuses(decode_json, json.dumps(document).encode())


def test_genai_messages_nested_past_the_json_parser_are_no_turns_not_a_crash() -> None:
    # The attribute is text the sender chose: JSON nested deeper than the parser's recursion limit.
    span = make_span(1, 1, name="chat", gen_ai__input__messages="[" * 100_000 + "]" * 100_000)
    body = make_request([span]).SerializeToString()
    for decoded in (decode_protobuf(body).rows.to_table(), decode_protobuf_table(body).table):
        assert decoded.num_rows == 1 and decoded.column("turns").to_pylist() == [None]

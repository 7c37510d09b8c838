"""The turn rules (warehouse/turns.py), one case per row of the table, and the rules that look across rows
(warehouse/foreign_turns.py) on a real warehouse: AGENT/CHAIN values only without an LLM span's messages."""

from __future__ import annotations

import json
import time

import pytest

from journeyscope.warehouse import SpanRows, Warehouse
from journeyscope.warehouse.transcripts import load_contexts
from journeyscope.warehouse.turns import extract_turns, log_record_turns


def turns(name: str, attributes: dict) -> list[tuple[str, str, str | None]]:
    return [(t["role"], t["text"], t["name"]) for t in extract_turns(name, attributes)]


def test_own_turn_span() -> None:
    assert turns("journey.turn", {"journey.turn.role": "customer", "journey.turn.text": "hi"}) == [
        ("customer", "hi", None)]


def test_openinference_messages_only_what_is_new_in_the_call() -> None:
    attributes = {
        "openinference.span.kind": "LLM", "input.value": "{}", "input.mime_type": "application/json",
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be kind.",
        "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Hello",
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "lookup",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"q": 1}',
        "llm.input_messages.3.message.role": "tool", "llm.input_messages.3.message.name": "lookup",
        "llm.input_messages.3.message.content": "found",
        "llm.input_messages.10.message.role": "user", "llm.input_messages.10.message.content": "And?",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "Done.",
    }
    # history up to the last assistant message was earlier calls' output; index 10 sorts after 3
    assert turns("llm", attributes) == [("tool", "found", "lookup"), ("customer", "And?", None), ("agent", "Done.", None)]


def test_traceai_flattened_genai_keys_and_its_input_value() -> None:
    attributes = {
        "gen_ai.span.kind": "LLM", "input.value": "Be kind.", "output.value": "Hi!",
        "gen_ai.input.messages.0.message.role": "system", "gen_ai.input.messages.0.message.content": "Be kind.",
        "gen_ai.input.messages.1.message.role": "user", "gen_ai.input.messages.1.message.content": "Hello",
        "gen_ai.output.messages.0.message.role": "assistant", "gen_ai.output.messages.0.message.content": "Hi!",
    }
    assert turns("ChatCompletion", attributes) == [("customer", "Hello", None), ("agent", "Hi!", None)]


@pytest.mark.parametrize("encode", [json.dumps, lambda v: v], ids=["json-text", "structured"])
def test_genai_latest_messages_parts_tool_calls_and_system_instructions(encode) -> None:
    attributes = {
        "gen_ai.system_instructions": encode([{"type": "text", "content": "Be kind."}]),
        "gen_ai.input.messages": encode([
            {"role": "user", "parts": [{"type": "text", "content": "Where is A17?"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "track",
                                             "arguments": {"order": "A17"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"at": "depot"}}]},
        ]),
        "gen_ai.output.messages": encode([{"role": "assistant", "parts": [
            {"type": "text", "content": "At the depot."},
            {"type": "tool_call", "id": "c2", "name": "notify", "arguments": '{"to": "me"}'}]}]),
    }
    assert turns("chat", attributes) == [("tool", '{"at":"depot"}', None), ("agent", "At the depot.", None),
                                         ("tool", '{"to":"me"}', "notify")]


def test_genai_execute_tool_span() -> None:
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "track",
                  "gen_ai.tool.call.arguments": '{"order": "A17"}', "gen_ai.tool.call.result": "at the depot"}
    assert turns("execute_tool track", attributes) == [("tool", '{"order":"A17"}', "track"),
                                                       ("tool", "at the depot", "track")]


def test_agent_and_chain_values_never_json() -> None:
    chain = {"openinference.span.kind": "CHAIN", "input.value": '{"type": "ai"}', "input.mime_type": "application/json",
             "output.value": "Hello there"}
    assert turns("StrOutputParser", chain) == [("agent", "Hello there", None)]
    agent = {"openinference.span.kind": "AGENT", "input.value": "Hi", "output.value": "Hello"}
    assert turns("agent", agent) == [("customer", "Hi", None), ("agent", "Hello", None)]
    assert turns("tool", {"openinference.span.kind": "TOOL", "input.value": "A17", "output.value": "x"}) == []


def test_log_records() -> None:
    assert log_record_turns("gen_ai.user.message", {}, {"content": "Hi"}) == (
        [{"role": "customer", "text": "Hi", "name": None}], "input")
    assert log_record_turns("gen_ai.system.message", {}, {"content": "Be kind."}) == ([], "input")
    choice = {"index": 0, "message": {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "track", "arguments": "{}"}}]}}
    assert log_record_turns(None, {"event.name": "gen_ai.choice"}, choice) == (
        [{"role": "tool", "text": "{}", "name": "track"}], "output")
    # ``id`` is the call's id, not a tool name (as on the message-part path): the result is a tool turn without a name.
    assert log_record_turns("gen_ai.tool.message", {}, {"content": "found", "id": "c1"}) == (
        [{"role": "tool", "text": "found", "name": None}], "input")
    assert log_record_turns("gen_ai.tool.message", {}, {"content": "found", "id": "c1", "name": "track"}) == (
        [{"role": "tool", "text": "found", "name": "track"}], "input")
    details = {"gen_ai.input.messages": ({"role": "user", "parts": ({"type": "text", "content": "Hi"},)},),
               "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "Yo"}]}]}
    assert log_record_turns("gen_ai.client.inference.operation.details", details, None) == (
        [{"role": "customer", "text": "Hi", "name": None}, {"role": "agent", "text": "Yo", "name": None}], "whole")
    assert log_record_turns("http.request", {}, "GET /") is None


def _span(rows: SpanRows, trace: str, span: str, name: str, start: int, **attributes: object) -> None:
    rows.add(trace_id=trace, span_id=span, parent_span_id=None, name=name, start_ns=start, end_ns=start + 10,
             attributes={"journey.id": "j-1", "customer.id": "c-1", "journey.stage": "help", **attributes})


def test_chain_values_are_turns_only_where_no_llm_span_of_the_trace_has_messages(tmp_path) -> None:
    now = time.time_ns()
    rows = SpanRows()
    chain = {"openinference.span.kind": "CHAIN", "input.value": "Hi", "output.value": "Hello"}
    _span(rows, "a" * 32, "1" * 16, "chain", now, **chain)  # alone in its trace: its values are the turns
    _span(rows, "b" * 32, "2" * 16, "chain", now + 100, **{**chain, "input.value": "Again"})
    _span(rows, "b" * 32, "3" * 16, "llm", now + 200, **{
        "openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Again, properly", "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Hello again"})
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.ingest(rows)
        cur = warehouse.cursor()
        (context,) = load_contexts(cur, ["j-1"], warehouse.clock()).values()
        assert [(t.role, t.text) for t in context.visit.turns] == [
            ("customer", "Hi"), ("agent", "Hello"), ("customer", "Again, properly"), ("agent", "Hello again")]
        assert warehouse.stage_visits("j-1")[0]["turns"] == 4


@pytest.mark.parametrize("arrival", [(0, 1, 2, 3), (0, 2, 3, 1), (3, 2, 1, 0)])
def test_a_parent_repeating_its_calls_gives_way_to_them_whatever_the_clocks(tmp_path, arrival) -> None:
    """As the OpenTelemetry JS SDK records an agent: each span starts on the wall clock's whole millisecond
    and ends on a monotonic clock, so the ``invoke_agent`` span can end before its last call does; the spans
    arrive in any order (one export request each)."""
    ms = 1_000_000
    t0 = time.time_ns() // ms * ms
    user = {"role": "user", "parts": [{"type": "text", "content": "My order A17 has not arrived"}]}
    asked = {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "order_status",
                                             "arguments": {"order_id": "A17"}}]}
    result = {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "shipped"}]}
    answer = {"role": "assistant", "parts": [{"type": "text", "content": "It arrives today."}]}
    journey = {"gen_ai.conversation.id": "j-js", "journey.stage": "delivery"}
    trace, agent = "c" * 32, "a" * 16

    def messages(inputs: list, outputs: list) -> dict:
        return {"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(inputs),
                "gen_ai.output.messages": json.dumps(outputs)}

    spans = [  # (span id, parent, name, start, end, attributes)
        ("1" * 16, agent, "chat", t0, t0 + 200_000, messages([user], [asked])),
        ("2" * 16, agent, "execute_tool order_status", t0 + ms, t0 + ms + 110_000, {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_status",
            "gen_ai.tool.call.id": "c1", "gen_ai.tool.call.arguments": '{"order_id": "A17"}',
            "gen_ai.tool.call.result": "shipped"}),
        ("3" * 16, agent, "chat", t0 + ms, t0 + ms + 30_000, messages([user, asked, result], [answer])),
        (agent, None, "invoke_agent support", t0 - ms, t0 + ms - 120_000, {
            "gen_ai.operation.name": "invoke_agent", **messages([user], [answer])}),
    ]
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        for k in arrival:
            span_id, parent, name, start, end, attributes = spans[k]
            rows = SpanRows()
            rows.add(trace_id=trace, span_id=span_id, parent_span_id=parent, name=name, start_ns=start,
                     end_ns=end, attributes={**journey, **attributes})
            warehouse.ingest(rows)
        (context,) = load_contexts(warehouse.cursor(), ["j-js"], warehouse.clock()).values()
        assert [(t.role, t.text) for t in context.visit.turns] == [
            ("customer", "My order A17 has not arrived"), ("tool", '{"order_id":"A17"}'), ("tool", "shipped"),
            ("agent", "It arrives today.")]
        assert warehouse.stage_visits("j-js")[0]["turns"] == 4

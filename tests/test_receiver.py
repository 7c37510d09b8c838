"""The OTLP receiver over real sockets: real OTel SDK exporters (HTTP and gRPC), hand-written OTLP/JSON,
gzip, bad input, partial success, retried batches, OpenInference/GenAI spans."""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from journeyscope.server.run import bind_socket
from journeyscope.server.settings import ServerSettings
from receiver_support import RunningServer, journey_spans, make_request, make_span, no_proxy, running_server

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"), max_body_bytes=1_000_000)) as running:
        yield running


def _journey_provider(exporter: object) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    return provider


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_exporter_spans_are_stored(server: RunningServer, transport: str) -> None:
    exporter = (
        HttpExporter(endpoint=server.traces_url)
        if transport == "http"
        else GrpcExporter(endpoint=server.grpc_target, insecure=True)
    )
    provider = _journey_provider(exporter)
    tracer = provider.get_tracer("tests")
    attrs = {"journey.id": f"j-{transport}", "customer.id": "c-1", "journey.name": "onboarding",
             "journey.stage": "sign-up", "journey.channel": "Phone"}
    with tracer.start_as_current_span("handle", attributes=attrs) as parent:
        with tracer.start_as_current_span("journey.turn", attributes={**attrs, "journey.turn.role": "customer",
                                                                       "journey.turn.text": "hello"}):
            pass
        parent.add_event("journey.stage.outcome", {"journey.stage.outcome": "escalated"})
    provider.shutdown()
    rows = server.query(
        "SELECT name, journey_id, customer_id, stage, channel, kind, service_name, outcome, len(turns), parent_span_id "
        "FROM spans ORDER BY name"
    )
    assert [r[0] for r in rows] == ["handle", "journey.turn"]
    handle, turn = rows
    assert handle[1:8] == (f"j-{transport}", "c-1", "sign-up", "voice", "internal", "agent", "escalated")
    assert turn[8] == 1 and turn[9] is not None
    visits = server.runtime.warehouse.stage_visits()  # type: ignore[union-attr]
    assert [(v["stage"], v["visit"], v["outcome"], v["turns"]) for v in visits] == [("sign-up", 1, "escalated", 1)]


def test_handwritten_otlp_json(server: RunningServer) -> None:
    """OTLP/JSON: hex ids, 64-bit ints as strings, enums as numbers, camelCase keys."""
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-agent"}}]},
            "scopeSpans": [{
                "scope": {"name": "hand"},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "",
                    "name": "journey.turn",
                    "kind": 2,
                    "startTimeUnixNano": "1544712660000000000",
                    "endTimeUnixNano": "1544712661000000000",
                    "attributes": [
                        {"key": "session.id", "value": {"stringValue": "sess-1"}},
                        {"key": "user.id", "value": {"stringValue": "u-1"}},
                        {"key": "journey.stage", "value": {"stringValue": "verify"}},
                        {"key": "journey.turn.role", "value": {"stringValue": "customer"}},
                        {"key": "journey.turn.text", "value": {"stringValue": "my id is 42"}},
                        {"key": "retries", "value": {"intValue": "3"}},
                        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"boolValue": True}]}}},
                    ],
                    "status": {"code": 2, "message": "boom"},
                }],
            }],
        }]
    }
    r = httpx.post(server.traces_url, json=body)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {}
    (row,) = server.query(
        "SELECT trace_id, span_id, kind, status_code, status_message, journey_id, customer_id, "
        "epoch_ns(start_time), attributes->>'$.retries', attributes->'$.tags' FROM spans"
    )
    assert row[:7] == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "server", "error", "boom",
                       "sess-1", "u-1")
    assert row[7] == 1544712660000000000 and row[8] == "3" and json.loads(row[9]) == ["a", True]


def test_gzip_protobuf_and_protobuf_response(server: RunningServer) -> None:
    body = gzip.compress(make_request(journey_spans("j-gz", 5, trace=7)).SerializeToString())
    r = httpx.post(server.traces_url, content=body, headers={**PB, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    response = ExportTraceServiceResponse.FromString(r.content)
    assert not response.HasField("partial_success")
    assert server.query("SELECT count(*) FROM spans WHERE journey_id = 'j-gz'") == [(5,)]


def test_partial_success_keeps_valid_spans(server: RunningServer) -> None:
    spans = journey_spans("j-p", 3, trace=9)
    spans.append(make_span(-1, 99, journey__id="j-p"))          # trace id of 2 bytes
    spans.append(make_span(0, 98, journey__id="j-p"))           # all-zero trace id
    spans.append(make_span(9, 0, journey__id="j-p"))            # all-zero span id
    r = httpx.post(server.traces_url, content=make_request(spans).SerializeToString(), headers=PB)
    assert r.status_code == 200
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 3 and "trace_id" in partial.error_message
    assert server.query("SELECT count(*) FROM spans") == [(3,)]
    # OTLP/JSON: an id that is not hex is refused the same way, the rest kept.
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "zz" * 16, "spanId": "01" * 8, "name": "x", "startTimeUnixNano": "1"},
        {"traceId": "ab" * 16, "spanId": "02" * 8, "name": "y", "startTimeUnixNano": "1"},
    ]}]}]}
    r = httpx.post(server.traces_url, json=doc)
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert server.query("SELECT count(*) FROM spans") == [(4,)]


def test_retried_batch_is_stored_once(server: RunningServer) -> None:
    body = make_request(journey_spans("j-r", 4, trace=11)).SerializeToString()
    for _ in range(3):
        assert httpx.post(server.traces_url, content=body, headers=PB).status_code == 200
    assert server.query("SELECT count(*) FROM spans") == [(4,)]
    stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert stats.spans_stored == 4 and stats.duplicates == 8


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"\xff\xff\xff not protobuf", PB, 400, "not an OTLP"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "not JSON"),
        (b'{"resourceSpans": 7}', {"Content-Type": "application/json"}, 400, "ExportTraceServiceRequest"),
        (b"\x1f\x8b garbage", {**PB, "Content-Encoding": "gzip"}, 400, "gzip"),
        (b"x", {"Content-Type": "text/plain"}, 415, "content type"),
        (b"x", {}, 415, "content type"),
        (b"\0" * 1_000_001, PB, 413, "larger"),
        (gzip.compress(b"\0" * 2_000_000), {**PB, "Content-Encoding": "gzip"}, 413, "larger"),
    ],
)
def test_bad_requests(server: RunningServer, body: bytes, headers: dict[str, str], status: int, reason: str) -> None:
    r = httpx.post(server.traces_url, content=body, headers=headers)
    assert r.status_code == status
    if r.headers["content-type"] == "application/json":
        message = r.json()["message"]
    else:
        message = status_pb2.Status.FromString(r.content).message
    assert reason in message
    # and the receiver still works
    ok = httpx.post(server.traces_url, content=make_request(journey_spans("j-ok", 1, trace=5)).SerializeToString(),
                    headers=PB)
    assert ok.status_code == 200


def test_openinference_agent_and_llm_child_do_not_duplicate_turns(server: RunningServer) -> None:
    """An AGENT span and its child LLM span record the same exchange: the visit counts it once."""
    common = {"session__id": "sess-oi", "user__id": "u-oi", "journey__stage": "support"}
    agent = make_span(21, 1, "agent.run", start_ns=1_000, openinference__span__kind="AGENT",
                      input__value="Where is my parcel?", output__value="It arrives tomorrow.", **common)
    llm = make_span(21, 2, "llm.call", start_ns=2_000, parent=1, openinference__span__kind="LLM", **common, **{
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Be kind.",
        "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "Where is my parcel?",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "It arrives tomorrow.",
    })
    genai = make_span(22, 3, "chat", start_ns=3_000, gen_ai__conversation__id="sess-oi", journey__stage="support",
                      gen_ai__input__messages=json.dumps([{"role": "user", "parts": [{"type": "text",
                                                                                     "content": "Thanks!"}]}]),
                      gen_ai__output__messages=json.dumps([{"role": "assistant", "parts": [
                          {"type": "text", "content": "You're welcome."}]}]))
    r = httpx.post(server.traces_url, content=make_request([agent, llm, genai]).SerializeToString(), headers=PB)
    assert r.status_code == 200
    assert server.query("SELECT DISTINCT journey_id, customer_id FROM spans WHERE span_id <> '0000000000000003'") == [
        ("sess-oi", "u-oi")]
    (visit,) = server.runtime.warehouse.stage_visits("sess-oi")  # type: ignore[union-attr]
    assert visit["turns"] == 4  # parcel question + answer once, then thanks + reply


def test_the_socket_listens_before_the_ready_line_so_early_clients_are_queued_not_refused() -> None:
    """``serve`` prints its ready line during the app's startup, before uvicorn starts accepting: a client
    that connects on reading it must wait in the backlog (before, one of eight senders was refused)."""
    listening = bind_socket("127.0.0.1", 0)
    try:
        clients = [socket.create_connection(listening.getsockname(), timeout=5) for _ in range(8)]
        for client in clients:
            client.close()
    finally:
        listening.close()


def _export_grpc(server: RunningServer, body: bytes) -> ExportTraceServiceResponse:
    with grpc.insecure_channel(server.grpc_target) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                     request_serializer=None,
                                     response_deserializer=ExportTraceServiceResponse.FromString)
        return export(body, timeout=30)


def _five_valid_and_odd_ones(journey: str, trace: int) -> bytes:
    """Five valid spans, one whose name is not UTF-8 and one whose journey id is over the limit, one request."""
    spans = journey_spans(journey, 5, trace=trace)
    spans.append(make_span(trace, 90, "PLACEHOLDER", journey__id=journey))
    spans.append(make_span(trace, 91, journey__id="j" * 257))
    return make_request(spans).SerializeToString().replace(b"PLACEHOLDER", b"PLACEHOLDE\xff")


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_each_bad_span_is_reported_and_its_valid_siblings_kept(server: RunningServer, transport: str) -> None:
    body = _five_valid_and_odd_ones(f"j-siblings-{transport}", trace=40 if transport == "http" else 41)
    if transport == "http":
        answer = httpx.post(server.traces_url, content=body, headers=PB)
        assert answer.status_code == 200, answer.content
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    else:
        partial = _export_grpc(server, body).partial_success
    assert partial.rejected_spans == 2 and "unreadable span" in partial.error_message
    assert server.query("SELECT count(*) FROM spans WHERE journey_id = ?", [f"j-siblings-{transport}"]) == [(5,)]


def test_a_body_of_the_wrong_structure_is_a_400_or_invalid_argument(server: RunningServer) -> None:
    # resource_spans (field 1) sent as a varint: upb would read an empty request, and nothing would be stored
    body = b"\x08\x01" + make_request(journey_spans("j-wire", 1, trace=42)).SerializeToString()
    answer = httpx.post(server.traces_url, content=body, headers=PB)
    assert answer.status_code == 400
    assert "resource_spans has wire type varint" in status_pb2.Status.FromString(answer.content).message
    with pytest.raises(grpc.RpcError) as refused:
        _export_grpc(server, body)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert server.query("SELECT count(*) FROM spans WHERE journey_id = 'j-wire'") == [(0,)]

"""OTLP logs into journeys: GenAI log records become turns of their span's journey, whichever arrives first.

Real OTel SDK log and span exporters (HTTP and gRPC) to the real server; hand-built OTLP/JSON for gzip,
partial success and the records that are dropped.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse.transcripts import load_contexts
from receiver_support import RunningServer, no_proxy, running_server

JOURNEY = {"journey.id": "", "customer.id": "c-logs", "journey.name": "support", "journey.stage": "diagnose"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"), max_body_bytes=1_000_000)) as running:
        yield running


def transcript(server: RunningServer, journey_id: str) -> list[tuple[str, str]]:
    server.flush()
    warehouse = server.runtime.warehouse
    assert warehouse is not None
    cur = warehouse.cursor()
    try:
        contexts = load_contexts(cur, [journey_id], warehouse.clock())
    finally:
        cur.close()
    return [(t.role, t.text) for key in sorted(contexts) for t in contexts[key].visit.turns]


def visit_turns(server: RunningServer, journey_id: str) -> list[int]:
    return [r[0] for r in server.query("SELECT turns FROM stage_visits WHERE journey_id = ? ORDER BY position",
                                       [journey_id])]


def _providers(server: RunningServer, transport: str) -> tuple[TracerProvider, LoggerProvider]:
    if transport == "http":
        spans, logs = (HttpSpanExporter(endpoint=server.traces_url),
                       HttpLogExporter(endpoint=server.base_url + "/v1/logs"))
    else:
        spans, logs = (GrpcSpanExporter(endpoint=server.grpc_target, insecure=True),
                       GrpcLogExporter(endpoint=server.grpc_target, insecure=True))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    return tracer_provider, logger_provider


def _call(tracer: trace.Tracer, logger, journey_id: str, history: list[tuple[str, str]], said: str,
          reply: str, *, logs_after_span: bool) -> None:
    """One model call as the official OpenAI instrumentation records it with message content on: a span, and
    one log record per input message (the history repeated) and one for the choice."""
    span = tracer.start_span("chat stand-in", attributes={**JOURNEY, "journey.id": journey_id,
                                                          "gen_ai.operation.name": "chat"})
    context = trace.set_span_in_context(span)

    def emit() -> None:
        logger.emit(event_name="gen_ai.system.message", body={"content": "You are a support agent."},
                    context=context, attributes={"gen_ai.system": "openai"})
        for role, text in [*history, ("user", said)]:
            logger.emit(event_name=f"gen_ai.{role}.message", body={"content": text}, context=context)
        logger.emit(event_name="gen_ai.choice", context=context,
                    body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}})

    if not logs_after_span:
        emit()  # exported now: the records arrive before their span
    span.end()
    if logs_after_span:
        emit()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_genai_log_records_become_turns_whichever_arrives_first(server: RunningServer, transport: str) -> None:
    tracer_provider, logger_provider = _providers(server, transport)
    tracer, logger = tracer_provider.get_tracer("tests"), logger_provider.get_logger("tests")
    for journey_id, after in ((f"before-{transport}", False), (f"after-{transport}", True)):
        _call(tracer, logger, journey_id, [], "My router keeps dropping", "Let us restart it", logs_after_span=after)
        server.flush()  # the second call's records then find the first call's turns already stored
        _call(tracer, logger, journey_id, [("user", "My router keeps dropping"), ("assistant", "Let us restart it")],
              "Done, still dropping", "I will book an engineer", logs_after_span=after)
    tracer_provider.shutdown()
    logger_provider.shutdown()
    for journey_id in (f"before-{transport}", f"after-{transport}"):
        # exactly once, in order: the second call's repeated history is not a second pair of turns
        assert transcript(server, journey_id) == [
            ("customer", "My router keeps dropping"), ("agent", "Let us restart it"),
            ("customer", "Done, still dropping"), ("agent", "I will book an engineer"),
        ], journey_id
        assert visit_turns(server, journey_id) == [4]
    assert server.query("SELECT count(*) FROM log_records")[0][0] == 2 * (3 + 5)  # two journeys of two calls


def _log_record(trace_id: str, span_id: str, event: str, body: object, *, as_attribute: bool = False) -> dict:
    record: dict = {"timeUnixNano": str(time.time_ns()), "traceId": trace_id, "spanId": span_id,
                    "body": {"kvlistValue": {"values": [{"key": "content", "value": {"stringValue": body}}]}}}
    if as_attribute:
        record["attributes"] = [{"key": "event.name", "value": {"stringValue": event}}]
    else:
        record["eventName"] = event
    return record


def test_otlp_json_gzip_logs_partial_success_and_the_rule_for_other_records(server: RunningServer) -> None:
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    records = [
        _log_record(trace_id, span_id, "gen_ai.user.message", "Where is my parcel? Call me on 07700 900123"),
        {"timeUnixNano": "1", "body": {"stringValue": "GET /health 200"}, "severityText": "INFO"},  # dropped
        _log_record("", "", "gen_ai.user.message", "no span to belong to"),  # refused: no ids
        _log_record(trace_id, span_id, "gen_ai.choice", "It left the depot", as_attribute=True),
    ]
    payload = {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": records}]}]}
    body = gzip.compress(json.dumps(payload).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    for _ in range(2):  # a retried batch is stored once
        response = httpx.post(server.base_url + "/v1/logs", content=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert httpx.post(server.base_url + "/v1/logs", content=b"\x01\x02not protobuf",
                      headers={"Content-Type": "application/x-protobuf"}, timeout=30).status_code == 400
    stored = server.query("SELECT name, side, turns FROM log_records ORDER BY seq")
    assert [(name, side) for name, side, _ in stored] == [("gen_ai.user.message", "input"), ("gen_ai.choice", "output")]
    assert "07700 900123" not in stored[0][2][0]["text"]  # redacted like a span's turns
    assert stored[1][2] == [{"role": "agent", "text": "It left the depot", "name": None}]
    span = {"traceId": trace_id, "spanId": span_id, "name": "chat", "startTimeUnixNano": str(time.time_ns()),
            "endTimeUnixNano": str(time.time_ns() + 1000),
            "attributes": [{"key": k, "value": {"stringValue": v}}
                           for k, v in {**JOURNEY, "journey.id": "j-json"}.items()]}
    spans = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    assert httpx.post(server.traces_url, json=spans, timeout=30).status_code == 200
    turns = transcript(server, "j-json")
    assert [role for role, _ in turns] == ["customer", "agent"] and turns[1][1] == "It left the depot"
    assert visit_turns(server, "j-json") == [2]


def test_forget_and_retention_take_the_log_records_of_a_customers_traces(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from journeyscope.warehouse import SpanRows, Warehouse
    from journeyscope.warehouse.erasure import erase_customer
    from journeyscope.warehouse.log_records import decode_logs
    from journeyscope.warehouse.retention import apply_retention

    now = time.time_ns()
    spans = SpanRows()
    for n, customer in enumerate(("c-gone", "c-kept")):
        spans.add(trace_id=f"{n + 1:032x}", span_id=f"{n + 1:016x}", parent_span_id=None, name="chat", start_ns=now,
                  end_ns=now + 10, attributes={**JOURNEY, "journey.id": f"j-{customer}", "customer.id": customer})
    records = [{"time_unix_nano": now, "trace_id": bytes.fromhex(f"{n:032x}"), "span_id": bytes.fromhex(f"{n:016x}"),
                "event_name": "gen_ai.user.message",
                "body": {"kvlist_value": {"values": [{"key": "content", "value": {"string_value": f"hello {n}"}}]}}}
               for n in (1, 2, 3)]  # the third record's span never comes
    request = ExportLogsServiceRequest(resource_logs=[{"scope_logs": [{"log_records": records}]}])
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        warehouse.ingest(spans)
        warehouse.ingest(warehouse.prepare_logs(decode_logs(request.SerializeToString()).table))
        assert [v["turns"] for v in warehouse.stage_visits()] == [1, 1]
        result = erase_customer(warehouse, "c-gone")
        assert result.rows["log_records"] == 1
        assert warehouse.query("SELECT trace_id FROM log_records ORDER BY trace_id") == [(f"{2:032x}",), (f"{3:032x}",)]
        assert apply_retention(warehouse, 1, now_ns=now + 2 * 10**9).rows["log_records"] == 2
        assert warehouse.query("SELECT count(*) FROM log_records") == [(0,)]

"""Backpressure: a load larger than the write queue, sent by the real OTLP exporters (HTTP and gRPC)
from many threads at once, ends with every span stored; the overflow was refused (503/UNAVAILABLE) and
retried, never dropped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanContext

from journeyscope.server.settings import ServerSettings
from receiver_support import no_proxy, running_server

SENDERS = 8
BATCHES = 3
BATCH = 100


def _spans(sender: int) -> list[list[ReadableSpan]]:
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    tracer = provider.get_tracer("load")
    for i in range(BATCHES * BATCH):
        with tracer.start_as_current_span("journey.turn", attributes={
            "journey.id": f"j-{sender}-{i % 7}", "journey.stage": f"s{i % 3}", "journey.turn.role": "customer",
            "journey.turn.text": f"message {i}"}):
            pass
    spans = list(sink.get_finished_spans())
    provider.shutdown()
    return [spans[b * BATCH:(b + 1) * BATCH] for b in range(BATCHES)]


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_overload_is_refused_and_retried_not_dropped(tmp_path: Path, transport: str) -> None:
    no_proxy()
    # The queue holds two requests' worth of spans, and so does the line waiting for room: with eight senders
    # at once, twice that is in flight, so senders are turned away and retry after the default hints (1-2 s:
    # an exporter has six attempts, so shorter hints would spend them before the queue moves).
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), queue_max_spans=2 * BATCH, write_batch_spans=BATCH)
    loads = [_spans(s) for s in range(SENDERS)]
    results: list[SpanExportResult] = []
    with running_server(settings) as server:
        def send(batches: list[list[ReadableSpan]]) -> None:
            exporter = (HttpExporter(endpoint=server.traces_url, timeout=60) if transport == "http"
                        else GrpcExporter(endpoint=server.grpc_target, insecure=True, timeout=60))
            for batch in batches:
                results.append(exporter.export(batch))
            exporter.shutdown()

        threads = [threading.Thread(target=send, args=(load,)) for load in loads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stored = server.query("SELECT count(*) FROM spans")[0][0]
        stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert results == [SpanExportResult.SUCCESS] * (SENDERS * BATCHES)
    assert stored == SENDERS * BATCHES * BATCH
    assert stats.refused_requests > 0, "the load never exceeded the queue; the test proves nothing"
    assert stats.queued_spans == 0


#: The OTel SDK's BatchSpanProcessor exports at most this many spans per request by default.
SDK_BATCH = 512


def _cheap_spans(sender: int, batches: int) -> list[list[ReadableSpan]]:
    """Spans built directly (no tracer), with two journey attributes: the test is about the receiver."""
    resource = Resource.create({"service.name": f"load-{sender}"})
    out = []
    for b in range(batches):
        batch = []
        for i in range(SDK_BATCH):
            n = (sender * batches + b) * SDK_BATCH + i + 1
            ctx = SpanContext(trace_id=n, span_id=n, is_remote=False)
            batch.append(ReadableSpan(name="turn", context=ctx, resource=resource, start_time=n, end_time=n + 1,
                                      attributes={"journey.id": f"j-{sender}-{i % 50}", "journey.stage": "s"}))
        out.append(batch)
    return out


#: Batches each of the 8 senders exports in the test (the 400k-span run is benchmarks/bench_overload.py).
LOAD_BATCHES = 8


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_four_times_the_queue_with_default_exporter_settings(tmp_path: Path, transport: str) -> None:
    """8 exporters with their default settings (10 s for an export and its retries) against a 2,000-span
    queue: with 512-span batches, twice the queue is in flight at any time, and every span is stored."""
    no_proxy()
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), queue_max_spans=2_000, evaluate_online=False)
    loads = [_cheap_spans(s, LOAD_BATCHES) for s in range(SENDERS)]
    results: list[SpanExportResult] = []
    with running_server(settings) as server:
        def send(batches: list[list[ReadableSpan]]) -> None:
            exporter = (HttpExporter(endpoint=server.traces_url) if transport == "http"
                        else GrpcExporter(endpoint=server.grpc_target, insecure=True))
            for batch in batches:
                results.append(exporter.export(batch))
            exporter.shutdown()

        threads = [threading.Thread(target=send, args=(load,)) for load in loads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        server.flush()
        stored = server.query("SELECT count(*) FROM spans")[0][0]
        stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert results.count(SpanExportResult.SUCCESS) == SENDERS * LOAD_BATCHES, stats
    assert stored == SENDERS * LOAD_BATCHES * SDK_BATCH
    assert stats.refused_requests + stats.requests - stats.transactions > 0

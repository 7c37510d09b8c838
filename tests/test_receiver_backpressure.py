"""Backpressure: a load larger than the write queue, sent by the real OTLP exporters (HTTP and gRPC)
from many threads at once, ends with every span stored; the overflow was refused (503/UNAVAILABLE) and
retried, never dropped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

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
    # The queue holds one request's worth of spans: concurrent senders must be turned away.
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), queue_max_spans=BATCH, write_batch_spans=BATCH,
                              retry_after_s=0.2)
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

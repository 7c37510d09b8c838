"""Backpressure: a load larger than the write queue, sent by the real OTLP exporters (HTTP and gRPC)
from many threads at once, ends with every span stored; the overflow was refused (503/UNAVAILABLE) and
retried, never dropped."""

from __future__ import annotations

import sys
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
from receiver_support import RunningServer, no_proxy, running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_overload import SDK_BATCH, batches as cheap_batches  # noqa: E402  (the benchmark's load, smaller)

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


def _export_all(server: RunningServer, transport: str, loads: list[list[list[ReadableSpan]]],
                **exporter_options: float) -> list[SpanExportResult]:
    """Each load exported by its own exporter on its own thread, batch after batch; every export's result."""
    results: list[SpanExportResult] = []

    def send(batches: list[list[ReadableSpan]]) -> None:
        exporter = (HttpExporter(endpoint=server.traces_url, **exporter_options) if transport == "http"
                    else GrpcExporter(endpoint=server.grpc_target, insecure=True, **exporter_options))
        for batch in batches:
            results.append(exporter.export(batch))
        exporter.shutdown()

    threads = [threading.Thread(target=send, args=(load,)) for load in loads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_overload_is_refused_and_retried_not_dropped(tmp_path: Path, transport: str) -> None:
    no_proxy()
    # The queue holds two requests' worth of spans, and so does the line waiting for room: with eight senders
    # at once, twice that is in flight, so senders are turned away and retry after the hints. These exporters
    # have 60 s for an export (six attempts at most), and the server lets a request wait in line for a sixth.
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), queue_max_spans=2 * BATCH, write_batch_spans=BATCH,
                              queue_wait_s=10.0)
    loads = [_spans(s) for s in range(SENDERS)]
    with running_server(settings) as server:
        results = _export_all(server, transport, loads, timeout=60)
        stored = server.query("SELECT count(*) FROM spans")[0][0]
        stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert results == [SpanExportResult.SUCCESS] * (SENDERS * BATCHES)
    assert stored == SENDERS * BATCHES * BATCH
    assert stats.refused_requests > 0, "the load never exceeded the queue; the test proves nothing"
    assert stats.queued_spans == 0


#: Batches each of the 8 senders exports in the test (the 400k-span run is benchmarks/bench_overload.py).
LOAD_BATCHES = 8


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_four_times_the_queue_with_default_exporter_settings(tmp_path: Path, transport: str) -> None:
    """8 exporters with their default settings (10 s for an export and its retries) against a 2,000-span
    queue: with 512-span batches, twice the queue is in flight at any time, and every span is stored."""
    no_proxy()
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), queue_max_spans=2_000, evaluate_online=False)
    loads = [cheap_batches(s, LOAD_BATCHES, journeys=50) for s in range(SENDERS)]
    with running_server(settings) as server:
        results = _export_all(server, transport, loads)  # the exporters' own default timeout
        server.flush()
        stored = server.query("SELECT count(*) FROM spans")[0][0]
        stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert results.count(SpanExportResult.SUCCESS) == SENDERS * LOAD_BATCHES, stats
    assert stored == SENDERS * LOAD_BATCHES * SDK_BATCH
    assert stats.waited_requests + stats.refused_requests > 0, "the load never exceeded the queue"

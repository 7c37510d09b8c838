"""Backpressure: a load larger than the write queue, sent by the real OTLP exporters (HTTP and gRPC) at
their default settings from many threads at once, ends with every span stored: the overflow waited in line
or was refused (503/UNAVAILABLE) with a hint that fits the exporters' retry budget, and was retried."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from journeyscope.server.settings import ServerSettings
from receiver_support import RunningServer, no_proxy, running_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_overload import SDK_BATCH, batches as cheap_batches  # noqa: E402  (the benchmark's load, smaller)

SENDERS = 8


def _export_all(server: RunningServer, transport: str, loads: list[list[list[ReadableSpan]]]) -> list[SpanExportResult]:
    """Each load exported by its own exporter (default settings) on its own thread, batch after batch."""
    results: list[SpanExportResult] = []

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
    return results


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
        results = _export_all(server, transport, loads)
        server.flush()
        stored = server.query("SELECT count(*) FROM spans")[0][0]
        stats = server.runtime.writer.stats  # type: ignore[union-attr]
    assert results.count(SpanExportResult.SUCCESS) == SENDERS * LOAD_BATCHES, stats
    assert stored == SENDERS * LOAD_BATCHES * SDK_BATCH
    assert stats.waited_requests + stats.refused_requests > 0, "the load never exceeded the queue"

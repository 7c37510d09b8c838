"""The journey crosses a process boundary as W3C baggage: two real processes talking HTTP."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope import instrument
from journeyscope.warehouse import Warehouse

SERVICE = Path(__file__).parent / "support" / "downstream_service.py"


def test_downstream_process_spans_carry_the_same_journey(tmp_path):
    db = tmp_path / "downstream.duckdb"
    proc = subprocess.Popen([sys.executable, str(SERVICE), str(db)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        sink = InMemorySpanExporter()
        tracing = instrument.setup(exporter=sink, provider=TracerProvider(), batch=False, instrument_threads=False)
        with instrument.journey("j-remote", "c-remote", name="support", stage="resolve", channel="chat"):
            with tracing.tracer.start_as_current_span("upstream.call") as span:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=instrument.inject_headers())
                answer = urllib.request.urlopen(request, timeout=10).read().decode()
        upstream_trace = format(span.get_span_context().trace_id, "032x")
        upstream_span = format(span.get_span_context().span_id, "016x")
        tracing.shutdown()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    assert answer == "j-remote"
    with Warehouse(db, read_only=True) as wh:
        rows = wh.query(
            "SELECT name, trace_id, parent_span_id, journey_id, customer_id, journey_name, stage, channel, service_name "
            "FROM spans ORDER BY start_time"
        )
    assert [r[0] for r in rows] == ["downstream.handle", "journey.turn"]
    handle = rows[0]
    assert handle[1] == upstream_trace  # same trace (traceparent)
    assert handle[2] == upstream_span  # child of the upstream call
    for row in rows:
        assert row[3:8] == ("j-remote", "c-remote", "support", "resolve", "chat")
        assert row[8] == "downstream"

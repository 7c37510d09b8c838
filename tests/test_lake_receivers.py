"""Many receivers on one lake, with real processes: two ``journeyscope serve`` on one PostgreSQL catalog and one S3
store, the real OTel OTLP/HTTP exporter sending through a fail-over (what a load balancer does), one receiver
SIGKILLed mid-load. Every span a receiver acknowledged is stored once, the batches the killed one had in flight
are sent again to the other and stored once, and the stage visits derived on the lake are the ones the same spans
give in an embedded file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from journeyscope.warehouse import Warehouse
from support.services import ObjectStore, Postgres, object_store, postgres, services_folder  # noqa: F401

SERVE = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"

# Journeys through the real instrumentation; a fail-over exporter over the real OTLPSpanExporter logs the span ids
# of every batch a receiver acknowledged (200 / OK), and sends a batch that failed to the other receiver (a
# ``grpc://host:port`` URL: the OTLP/gRPC exporter).
SENDER = textwrap.dedent('''
    import sys, os, time
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from journeyscope import instrument

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    urls, acked_path, journeys = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0  # seconds between journeys: a load spread over time
    exporters = [GrpcExporter(endpoint=url.removeprefix("grpc://"), insecure=True, timeout=5)
                 if url.startswith("grpc://") else OTLPSpanExporter(endpoint=url, timeout=5) for url in urls]

    class FailOver(SpanExporter):
        def __init__(self):
            self.turn = 0
            self.log = open(acked_path, "a")

        def export(self, spans):
            for _ in range(40):
                exporter = exporters[self.turn % len(exporters)]
                self.turn += 1
                if exporter.export(spans) == SpanExportResult.SUCCESS:
                    ids = [format(s.context.span_id, "016x") for s in spans]
                    self.log.write("\\n".join(ids) + "\\n"); self.log.flush(); os.fsync(self.log.fileno())
                    return SpanExportResult.SUCCESS
            return SpanExportResult.FAILURE

        def shutdown(self):
            self.log.close()

    tracing = instrument.setup(exporter=FailOver(), set_global=False, max_export_batch_size=200,
                               max_queue_size=1 << 17, instrument_threads=False)
    for j in range(journeys):
        with instrument.journey(f"j-{j}", customer_id=f"c-{j % 97}", name="support", stage="triage",
                                channel="chat") as journey:
            for turn in range(6):
                instrument.record_turn("customer", f"turn {turn} of journey {j}", tracer=tracing.tracer)
            journey.advance("resolve")
            instrument.record_turn("agent", "done", tracer=tracing.tracer)
            instrument.record_outcome("completed", tracer=tracing.tracer)
        time.sleep(pause)
    tracing.shutdown()
''')


def _serve(url: str, prefix: str, env: dict[str, str], *options: str, stderr: Path | None = None,
           grpc: list[int] | None = None) -> tuple[subprocess.Popen[str], int]:
    """A receiver process and its HTTP port (its log to ``stderr`` when given; with ``grpc``, gRPC on a free port
    appended to that list)."""
    proc = _start(url, prefix, env, "serve", "--port", "0", "--grpc-port", "-1" if grpc is None else "0", *options,
                  stderr=stderr)
    port, line = _ready(proc)
    if grpc is not None:
        grpc.append(int(re.search(r"OTLP/gRPC on [^ ]+:(\d+)", line).group(1)))  # type: ignore[union-attr]
    return proc, port


def _start(url: str, prefix: str, env: dict[str, str], command: str, *options: str,
           stderr: Path | None = None) -> subprocess.Popen[str]:
    """``journeyscope COMMAND`` on the lake, its output read by the caller (its log to ``stderr`` when given)."""
    log = open(stderr, "w") if stderr is not None else None  # noqa: SIM115 - the child keeps writing to it
    proc = subprocess.Popen([sys.executable, "-c", SERVE, command, "--db", url, "--data-path", prefix, *options],
                            stdout=subprocess.PIPE, stderr=log, text=True, env={**env, "NO_PROXY": "127.0.0.1"})
    if log is not None:
        log.close()
    return proc


def _port(proc: subprocess.Popen[str]) -> int:
    """The HTTP port of a receiver started by :func:`_start`, once it is ready."""
    return _ready(proc)[0]


def _ready(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """A receiver's HTTP port and the line that announced it."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # DuckDB's progress bar may come first, on a loaded machine
        if match := re.search(r":(\d+)/v1/traces", line):
            return int(match.group(1)), line
        seen.append(line)
    raise AssertionError(f"receiver did not start: {seen!r}")


def _visits(warehouse: Warehouse) -> list[dict[str, Any]]:
    return [{k: v for k, v in v.items() if k not in ("first_seq", "last_seq")} for v in warehouse.stage_visits()]


@pytest.mark.slow
def test_two_receivers_one_killed_mid_load_store_every_acknowledged_span_once(
        postgres: Postgres, object_store: ObjectStore, tmp_path: Path) -> None:
    env = {**os.environ, **object_store.env()}
    url = "ducklake:postgres:" + postgres.conninfo(postgres.new_database())
    prefix = object_store.new_prefix()
    os.environ.update(object_store.env())
    Warehouse(url, data_path=prefix).close()  # the lake made once, before the receivers open it
    first, first_port = _serve(url, prefix, env)
    second, second_port = _serve(url, prefix, env)
    acked = tmp_path / "acked.txt"
    try:
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER,
             f"http://127.0.0.1:{first_port}/v1/traces,http://127.0.0.1:{second_port}/v1/traces",
             str(acked), "600"], env={**env, "NO_PROXY": "127.0.0.1"}, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while (not acked.exists() or len(acked.read_text().split()) < 1000) and sender.poll() is None:
            assert time.monotonic() < deadline, "no batch acknowledged"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-load: the sender fails over to the second receiver
        first.wait()
        _, errors = sender.communicate(timeout=300)
        assert sender.returncode == 0, errors
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    acknowledged = acked.read_text().split()
    assert len(acknowledged) == len(set(acknowledged)) >= 600 * 2  # each span acknowledged once
    with Warehouse(url, journey_map=None) as lake:
        stored = lake.query("SELECT span_id, count(*) FROM spans GROUP BY span_id")
        assert {span for span, _ in stored} == set(acknowledged)
        assert max(n for _, n in stored) == 1  # the batches in flight at the kill, sent again, stored once
        spans = lake.cursor().execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans").to_arrow_table()
        visits = _visits(lake)
    with Warehouse(tmp_path / "same.duckdb") as embedded:
        embedded.ingest(spans)
        assert visits == _visits(embedded)
        assert len({v["journey_id"] for v in visits}) == embedded.query(
            "SELECT count(DISTINCT journey_id) FROM spans WHERE stage IS NOT NULL")[0][0] > 0

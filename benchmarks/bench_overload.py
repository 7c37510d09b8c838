"""Overload with the real OTel exporters at their default settings: is every span stored?

``journeyscope serve`` runs as its own process with a small write queue (``--queue-spans 2000``); this
process runs ``--senders`` threads, each with its own ``OTLPSpanExporter`` (HTTP or gRPC) left at its
defaults (10 s for an export and its retries, six attempts), exporting batches of 512 spans (what the
SDK's ``BatchSpanProcessor`` sends) one after the other, as fast as the server acknowledges them.
Eight senders keep twice the queue in flight. Reported: the batches the exporters gave up on, the spans
stored, the server's refusals, its peak RSS (``VmHWM``) and the load average.

    python benchmarks/bench_overload.py --spans 400000 --transport http
    python benchmarks/bench_overload.py --spans 400000 --transport grpc
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import _get, peak_rss_mb  # noqa: E402  (a sibling benchmark script, not a package)

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanContext  # noqa: E402

SDK_BATCH = 512
SERVE = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"


def batches(sender: int, count: int, journeys: int) -> list[list[ReadableSpan]]:
    resource = Resource.create({"service.name": f"load-{sender}"})
    out = []
    for b in range(count):
        batch = []
        for i in range(SDK_BATCH):
            n = (sender * count + b) * SDK_BATCH + i + 1
            ctx = SpanContext(trace_id=n, span_id=n, is_remote=False)
            batch.append(ReadableSpan(
                name="journey.turn", context=ctx, resource=resource, start_time=n * 1000, end_time=n * 1000 + 1,
                attributes={"journey.id": f"j-{sender}-{(b * SDK_BATCH + i) % journeys}",
                            "journey.stage": f"s{b % 3}", "journey.turn.role": "customer",
                            "journey.turn.text": "hello"}))
        out.append(batch)
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    per_sender = args.spans // (args.senders * SDK_BATCH)
    loads = [batches(s, per_sender, args.journeys // args.senders) for s in range(args.senders)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--db", str(Path(tmp) / "b.duckdb"),
                                 "--port", "0", "--grpc-port", "0", "--queue-spans", str(args.queue_spans),
                                 *(["--no-evaluate"] if args.no_online_eval else [])],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        http_port = re.search(r"http://[^:]+:(\d+)/v1/traces", line)
        grpc_port = re.search(r"OTLP/gRPC on [^ ]+:(\d+)", line)
        if not http_port or not grpc_port:
            proc.kill()
            raise SystemExit(f"server did not start: {line!r}")
        port = int(http_port.group(1))
        results: list[SpanExportResult] = []

        def send(load: list[list[ReadableSpan]]) -> None:
            exporter = (HttpExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces") if args.transport == "http"
                        else GrpcExporter(endpoint=f"127.0.0.1:{grpc_port.group(1)}", insecure=True))
            for batch in load:
                results.append(exporter.export(batch))
            exporter.shutdown()

        try:
            started = time.perf_counter()
            threads = [threading.Thread(target=send, args=(load,)) for load in loads]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - started
            status = _get(port, "/v1/ingest/status")
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(120)
    sent = per_sender * args.senders * SDK_BATCH
    return {
        "transport": args.transport,
        "spans_sent": sent,
        "batches_given_up": results.count(SpanExportResult.FAILURE),
        "spans_stored": status["spans_in_warehouse"],
        "all_stored": status["spans_in_warehouse"] == sent,
        "refused_requests(503/UNAVAILABLE)": status["refused_requests"],
        "seconds": round(took, 1),
        "server_peak_rss_mb": round(rss, 1),
        "checkpoints": status["checkpoints"],
        "checkpoint_failures": status["checkpoint_failures"],
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=400_000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--queue-spans", type=int, default=2_000)
    parser.add_argument("--transport", choices=["http", "grpc"], default="http")
    parser.add_argument("--no-online-eval", action="store_true")
    args = parser.parse_args()
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # retries are expected; give-ups are counted
    for key, value in run(args).items():
        print(f"{key:>36}: {value}")


if __name__ == "__main__":
    main()

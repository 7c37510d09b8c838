"""End-to-end ingest benchmark: OTLP/HTTP protobuf batches into ``journeyscope serve``.

The server runs as its own process (``journeyscope serve``); this process
pre-builds realistic journey spans (journey attributes, turn text, stages) as
serialized ``ExportTraceServiceRequest`` bodies, then posts them from a few
sender threads. The clock stops when every span is acknowledged, which the
receiver does only after the DuckDB commit, and the stored count is then read
back through the server (``GET /v1/ingest/status``) to confirm the spans are
queryable. Peak RSS is the server's ``VmHWM``.

    python benchmarks/bench_ingest.py --spans 500000 --batch 1000 --senders 4
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

STAGES = ["sign-up", "verify-id", "app-install", "first-payment", "support"]
CHANNELS = ["chat", "email", "voice", "web"]
TEXTS = [
    "Hi, I'd like to open an account but the app keeps asking for my ID again.",
    "Sure, I can help with that. Could you confirm your date of birth?",
    "It's the 4th of March 1988, I already said that on the phone.",
    "Thanks, you're verified. The next step is installing the app.",
]


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_bodies(total: int, batch: int, journeys: int, seed: int = 7) -> list[bytes]:
    """Serialized requests; spans of a journey advance through the stages as time goes on."""
    rnd = random.Random(seed)
    base = time.time_ns() - 3600 * 10**9
    bodies = []
    made = 0
    while made < total:
        n = min(batch, total - made)
        spans = []
        for i in range(n):
            k = made + i
            j = k % journeys
            step = k // journeys
            stage = STAGES[min(step // 4, len(STAGES) - 1)]
            attrs = [
                _kv("journey.id", f"j-{j}"),
                _kv("customer.id", f"c-{j % (journeys // 2 + 1)}"),
                _kv("journey.name", "onboarding"),
                _kv("journey.stage", stage),
                _kv("journey.channel", CHANNELS[j % len(CHANNELS)]),
                _kv("journey.turn.role", "customer" if step % 2 == 0 else "agent"),
                _kv("journey.turn.text", TEXTS[step % len(TEXTS)]),
                _kv("journey.turn.index", step),
            ]
            start = base + step * 10**9 + j
            spans.append(
                Span(
                    trace_id=rnd.getrandbits(128).to_bytes(16, "big"),
                    span_id=rnd.getrandbits(64).to_bytes(8, "big"),
                    name="journey.turn",
                    kind=Span.SPAN_KIND_INTERNAL,
                    start_time_unix_nano=start,
                    end_time_unix_nano=start + 1000,
                    attributes=attrs,
                )
            )
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource={"attributes": [_kv("service.name", "bench-agent")]},
                    scope_spans=[ScopeSpans(scope={"name": "journeyscope.instrument"}, spans=spans)],
                )
            ]
        )
        bodies.append(request.SerializeToString())
        made += n
    return bodies


def start_server(db: Path, queue_spans: int) -> tuple[subprocess.Popen[str], int]:
    code = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"
    args = ["serve", "--db", str(db), "--port", "0", "--grpc-port", "-1", "--queue-spans", str(queue_spans)]
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://[^:]+:(\d+)/v1/traces", line)
    if not match:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(match.group(1))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(args: argparse.Namespace) -> dict[str, float]:
    bodies = build_bodies(args.spans, args.batch, args.journeys)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        proc, port = start_server(db, args.queue_spans)
        url = f"http://127.0.0.1:{port}/v1/traces"
        cursor = iter(range(len(bodies)))
        lock = threading.Lock()
        retries = [0]

        def sender() -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    with lock:
                        i = next(cursor, None)
                    if i is None:
                        return
                    while True:
                        r = client.post(url, content=bodies[i], headers={"Content-Type": "application/x-protobuf"})
                        if r.status_code == 200:
                            break
                        if r.status_code != 503:
                            raise SystemExit(f"server answered {r.status_code}: {r.text[:200]}")
                        with lock:
                            retries[0] += 1
                        time.sleep(0.05)

        try:
            started = time.perf_counter()
            threads = [threading.Thread(target=sender) for _ in range(args.senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            status = httpx.get(f"http://127.0.0.1:{port}/v1/ingest/status").json()
            rss = peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    stored = status["spans_in_warehouse"]
    result = {
        "spans": args.spans,
        "stored": stored,
        "seconds": round(elapsed, 3),
        "spans_per_s": round(stored / elapsed),
        "server_peak_rss_mb": round(rss, 1),
        "write_seconds": status["write_seconds"],
        "visit_seconds": status["visit_seconds"],
        "transactions": status["transactions"],
        "refused_requests(503)": status["refused_requests"],
        "client_retries": retries[0],
    }
    if stored != args.spans:
        raise SystemExit(f"only {stored} of {args.spans} spans stored: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000, help="spans per OTLP request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent sender threads")
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--queue-spans", type=int, default=200_000)
    args = parser.parse_args()
    for key, value in run(args).items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()

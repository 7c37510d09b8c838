"""End-to-end ingest benchmark: OTLP/HTTP protobuf batches into ``journeyscope serve``, until queryable.

The server runs as its own process (``journeyscope serve``, online evaluation
and everything else as configured by default). This process pre-builds
realistic journey traffic as serialized ``ExportTraceServiceRequest`` bodies
(what ``journeyscope.instrument`` under the OTel SDK sends: a resource with the
SDK's attributes; per journey step a ``journey.turn`` span with the journey
attributes and the turn's text; agent turns with a child LLM span carrying
``gen_ai.*`` attributes; now and then a tool span, a re-entry into an earlier
stage, a channel switch, an explicit stage outcome event), then posts them from
several sender threads over keep-alive connections.

The clock stops when the data is **queryable**: every span acknowledged (the
receiver acks only after the DuckDB commit), the stored count read back
(``GET /v1/ingest/status``) and every stage visit derived (the visits counted
by ``GET /v1/funnel`` equal the visits the generated journeys make, by the
docs/contracts.md definition). Reported: spans/s, the time to the last ack and the
extra wait for visits, the server's peak RSS (``VmHWM``), and a breakdown of
where the server's CPU went (event-loop thread: HTTP + decoding; writer:
inserts, visit upkeep; the rest) and what the senders themselves used (they
share the machine's cores with the server). Then it waits for the checkpoint
the server runs once ingest pauses (folding the write-ahead log into the file,
which a sustained load pays too) and reports the rate with that time added.

    python benchmarks/bench_ingest.py --spans 300000 --senders 8 --batch 2000
    python benchmarks/bench_ingest.py --spans 300000 --senders 8 --batch 512
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import pickle
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

JOURNEYS = {
    "onboarding": ["sign-up", "verify-id", "app-install", "first-payment", "support"],
    "support": ["triage", "diagnosis", "resolution"],
}
CHANNELS = ["chat", "email", "voice", "web", "sms"]
CUSTOMER_TEXTS = [
    "Hi, I'd like to open an account but the app keeps asking for my ID again.",
    "It's the 4th of March 1988, I already said that on the phone.",
    "My order {n} still hasn't arrived and the tracking page shows nothing.",
    "Can you check why card ending {n} was declined at checkout?",
    "I tried twice already, the code you sent me doesn't work.",
    "Ok, I installed it. What do I do next?",
    "Is there a fee if I pay by bank transfer instead?",
    "Can I talk to a person please, this is the third time I explain it.",
]
AGENT_TEXTS = [
    "Sure, I can help with that. Could you confirm your date of birth?",
    "Thanks, you're verified. The next step is installing the app.",
    "I've looked up order {n}: it left our warehouse yesterday and should arrive tomorrow.",
    "The payment was declined by your bank; you can retry or use another card.",
    "I've sent a new code to the number ending in {n}; it is valid for ten minutes.",
    "Bank transfers are free. It takes one to two business days.",
    "I'm handing you over to a colleague who can look at your account directly.",
]
MODELS = ["gpt-4o-mini", "claude-haiku", "llama-3.1-8b"]


def _kv(key: str, value: str | float | list[str]) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value])))
    return KeyValue(key=key, value=AnyValue(string_value=value))


class _Journey:
    """One journey's state while spans are generated: its stage walk, channel, clock and visit count."""

    def __init__(self, j: int, rnd: random.Random, base_ns: int) -> None:
        self.id = f"j-{j:07d}"
        self.customer = f"c-{rnd.randrange(1, 1 + max(1, j // 2 + 1)):07d}"
        self.name = "onboarding" if rnd.random() < 0.8 else "support"
        self.stages = JOURNEYS[self.name]
        self.channel = rnd.choice(CHANNELS)
        self.cohort = rnd.choice(["2026-w45", "2026-w46", "2026-w47"])
        self.step = 0
        self.stage_index = 0
        self.clock = base_ns + j * 1_000
        self.trace = rnd.getrandbits(128) or 1
        self.last_stage: str | None = None
        self.visits = 0

    def next_stage(self, rnd: random.Random) -> str:
        if self.step and self.step % 4 == 0:
            r = rnd.random()
            if r < 0.05 and self.stage_index > 0:
                self.stage_index -= 1  # back to an earlier stage: a re-entry
            elif r < 0.85:
                self.stage_index = min(self.stage_index + 1, len(self.stages) - 1)
        stage = self.stages[self.stage_index]
        if stage != self.last_stage:
            self.visits += 1
            self.last_stage = stage
        return stage


def _journey_attrs(journey: _Journey, stage: str) -> list[KeyValue]:
    return [
        _kv("customer.id", journey.customer),
        _kv("journey.id", journey.id),
        _kv("journey.name", journey.name),
        _kv("journey.stage", stage),
        _kv("journey.channel", journey.channel),
        _kv("journey.cohort", journey.cohort),
    ]


def _step_spans(journey: _Journey, rnd: random.Random) -> list[Span]:
    """One journey step: a customer turn, or an agent turn with its LLM call (and sometimes a tool call)."""
    stage = journey.next_stage(rnd)
    if rnd.random() < 0.03:
        journey.channel = rnd.choice(CHANNELS)  # a channel switch
    journey.step += 1
    journey.clock += rnd.randrange(5, 90) * 10**9
    start = journey.clock
    customer_turn = journey.step % 2 == 1
    texts = CUSTOMER_TEXTS if customer_turn else AGENT_TEXTS
    text = rnd.choice(texts).format(n=rnd.randrange(1000, 99999))
    turn_id = rnd.getrandbits(64) or 1
    attrs = _journey_attrs(journey, stage) + [
        _kv("journey.turn.role", "customer" if customer_turn else "agent"),
        _kv("journey.turn.text", text),
    ]
    events = []
    if journey.step % 4 == 0 and rnd.random() < 0.1:
        outcome = rnd.choice(["completed", "escalated"])
        events.append(Span.Event(name="journey.stage.outcome", time_unix_nano=start + 1000,
                                 attributes=[_kv("journey.stage.outcome", outcome)]))
    spans = [
        Span(trace_id=journey.trace.to_bytes(16, "big"), span_id=turn_id.to_bytes(8, "big"), name="journey.turn",
             kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=start,
             end_time_unix_nano=start + rnd.randrange(1, 3000) * 10**6, attributes=attrs, events=events,
             status=Status(code=Status.STATUS_CODE_UNSET))
    ]
    if not customer_turn:
        model = rnd.choice(MODELS)
        llm_start = start + 1000
        spans.append(
            Span(trace_id=journey.trace.to_bytes(16, "big"), span_id=(rnd.getrandbits(64) or 1).to_bytes(8, "big"),
                 parent_span_id=turn_id.to_bytes(8, "big"), name=f"chat {model}", kind=Span.SPAN_KIND_CLIENT,
                 start_time_unix_nano=llm_start, end_time_unix_nano=llm_start + rnd.randrange(200, 2500) * 10**6,
                 attributes=_journey_attrs(journey, stage) + [
                     _kv("gen_ai.operation.name", "chat"),
                     _kv("gen_ai.system", "openai"),
                     _kv("gen_ai.request.model", model),
                     _kv("gen_ai.request.temperature", 0.2),
                     _kv("gen_ai.usage.input_tokens", rnd.randrange(200, 4000)),
                     _kv("gen_ai.usage.output_tokens", rnd.randrange(20, 400)),
                     _kv("gen_ai.response.finish_reasons", ["stop"]),
                 ],
                 status=Status(code=Status.STATUS_CODE_OK))
        )
        if rnd.random() < 0.3:
            tool_start = llm_start + 2000
            spans.append(
                Span(trace_id=journey.trace.to_bytes(16, "big"), span_id=(rnd.getrandbits(64) or 1).to_bytes(8, "big"),
                     parent_span_id=turn_id.to_bytes(8, "big"), name="tool lookup_account",
                     kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=tool_start,
                     end_time_unix_nano=tool_start + rnd.randrange(5, 300) * 10**6,
                     attributes=_journey_attrs(journey, stage) + [
                         _kv("tool.name", "lookup_account"),
                         _kv("tool.call.id", f"call_{rnd.getrandbits(48):012x}"),
                     ])
            )
    return spans


_RESOURCE = [
    _kv("service.name", "support-agent"),
    _kv("service.version", "2.14.0"),
    _kv("deployment.environment", "production"),
    _kv("host.name", "agent-7f9c4"),
    _kv("telemetry.sdk.language", "python"),
    _kv("telemetry.sdk.name", "opentelemetry"),
    _kv("telemetry.sdk.version", "1.38.0"),
]


def build_bodies(total: int, batch: int, journeys: int, seed: int = 7) -> tuple[list[bytes], int]:
    """Serialized requests of ``batch`` spans each, and the number of stage visits they make.

    Journeys advance in turn (one step of each journey, then the next step), so a
    request carries steps of many journeys, and each journey's spans arrive in
    time order, as a fleet of agents exporting through the OTel SDK would send them.
    """
    rnd = random.Random(seed)
    base = time.time_ns() - 6 * 3600 * 10**9
    fleet = [_Journey(j, rnd, base) for j in range(journeys)]
    bodies: list[bytes] = []
    pending: list[Span] = []
    made = 0
    k = 0
    while made < total:
        spans = _step_spans(fleet[k % journeys], rnd)[: total - made]
        k += 1
        made += len(spans)
        pending.extend(spans)
        while len(pending) >= batch or (made >= total and pending):
            chunk, pending = pending[:batch], pending[batch:]
            request = ExportTraceServiceRequest(
                resource_spans=[
                    ResourceSpans(
                        resource={"attributes": _RESOURCE},
                        scope_spans=[ScopeSpans(scope={"name": "journeyscope.instrument", "version": "0.1.0"},
                                                spans=chunk)],
                    )
                ]
            )
            bodies.append(request.SerializeToString())
    return bodies, sum(j.visits for j in fleet)


def cached_bodies(total: int, batch: int, journeys: int) -> tuple[list[bytes], int]:
    """:func:`build_bodies`, cached in the temp folder (building takes longer than sending)."""
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"journeyscope-bench-{source}-{total}-{batch}-{journeys}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    built = build_bodies(total, batch, journeys)
    path.write_bytes(pickle.dumps(built))
    return built


def start_server(
    db: Path, queue_spans: int, online_eval: bool = True, workers: int = 1, extra: list[str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``journeyscope serve`` as a user runs it, with ``--no-evaluate`` when ``online_eval`` is off
    (``extra``: more of its options)."""
    code = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"
    args = ["serve", "--db", str(db), "--port", "0", "--grpc-port", "-1", "--queue-spans", str(queue_spans),
            "--workers", str(workers), *([] if online_eval else ["--no-evaluate"]), *(extra or [])]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env)
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


def _cpu_seconds(stat_path: Path) -> float:
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the server's workers)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return out


def server_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of the server: all threads, its main thread (uvicorn's event loop: HTTP, small bodies'
    decoding), and its worker processes (decoding, scoring)."""
    workers = 0.0
    for child in children(pid):
        try:
            workers += _cpu_seconds(Path(f"/proc/{child}/stat"))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return {"all": _cpu_seconds(Path(f"/proc/{pid}/stat")), "loop": _cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat")),
            "workers": workers}


def _get(port: int, path: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


def _funnel_visits(port: int) -> int:
    report = _get(port, "/v1/funnel")
    return sum(stage["visits"] for journey in report["journeys"] for stage in journey["stages"])  # type: ignore[index]


def post_all(port: int | list[int], bodies: list[bytes], senders: int,
             requests_per_s: float | None = None) -> tuple[int, list[str]]:
    """POST every body to ``/v1/traces`` from ``senders`` threads over keep-alive connections, retrying 503s
    after their hint; return the retries and the failures (any other answer). With several ports (receivers),
    the senders take them in turn, as a load balancer would. With ``requests_per_s``, request ``i`` is not sent
    before ``i / requests_per_s`` seconds from the start (a steady load, as many agents exporting apart), else
    each sender sends its next as soon as the last is answered."""
    ports = [port] if isinstance(port, int) else port
    cursor = iter(range(len(bodies)))
    started = time.perf_counter()
    lock = threading.Lock()
    retries = [0]
    failures: list[str] = []

    def sender(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Content-Type": "application/x-protobuf"}
        try:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                if requests_per_s is not None:
                    time.sleep(max(0.0, started + i / requests_per_s - time.perf_counter()))
                while True:
                    conn.request("POST", "/v1/traces", body=bodies[i], headers=headers)
                    response = conn.getresponse()
                    text = response.read()
                    if response.status == 200:
                        break
                    if response.status != 503:
                        failures.append(f"server answered {response.status}: {text[:200]!r}")
                        return
                    with lock:
                        retries[0] += 1
                    time.sleep(float(response.getheader("Retry-After", "1")) * random.uniform(0.5, 1.0))
        finally:
            conn.close()

    threads = [threading.Thread(target=sender, args=(ports[i % len(ports)],)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return retries[0], failures


def run(args: argparse.Namespace) -> dict[str, object]:
    bodies, expected_visits = cached_bodies(args.spans, args.batch, args.journeys)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        proc, port = start_server(db, args.queue_spans, not args.no_online_eval, args.workers)
        try:
            cpu_before = server_cpu(proc.pid)
            client_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            retries, failures = post_all(port, bodies, args.senders)
            acked = time.perf_counter() - started
            client_after = resource.getrusage(resource.RUSAGE_SELF)
            if failures:
                raise SystemExit(failures[0])
            status = _get(port, "/v1/ingest/status")
            visits = _funnel_visits(port)
            deadline = time.monotonic() + 600
            while visits != expected_visits and time.monotonic() < deadline:
                time.sleep(0.05)
                visits = _funnel_visits(port)
            queryable = time.perf_counter() - started
            status = _get(port, "/v1/ingest/status")
            cpu_after = server_cpu(proc.pid)
            rss = peak_rss_mb(proc.pid)
            # The write-ahead log is folded into the file once ingest pauses: a cost every sustained load pays.
            deadline = time.monotonic() + 120
            folded = status
            while not folded.get("checkpoints") and time.monotonic() < deadline:
                time.sleep(0.2)
                folded = _get(port, "/v1/ingest/status")
        finally:
            proc.terminate()
            proc.wait(120)
    stored = status["spans_in_warehouse"]
    server_all = cpu_after["all"] - cpu_before["all"]
    server_loop = cpu_after["loop"] - cpu_before["loop"]
    client = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    result: dict[str, object] = {
        "spans": args.spans,
        "requests": len(bodies),
        "stored": stored,
        "stage_visits": f"{visits} (expected {expected_visits})",
        "seconds_to_last_ack": round(acked, 3),
        "seconds_to_queryable": round(queryable, 3),
        "spans_per_s": round(int(stored) / queryable),  # type: ignore[call-overload]
        "server_peak_rss_mb": round(rss, 1),
        "server_cpu_s": round(server_all, 2),
        "  event_loop_cpu_s(http+decode)": round(server_loop, 2),
        "  other_threads_cpu_s": round(server_all - server_loop, 2),
        "worker_processes_cpu_s(decode)": round(cpu_after["workers"] - cpu_before["workers"], 2),
        "cpu_us_per_span(server+workers)": round(
            (server_all + cpu_after["workers"] - cpu_before["workers"]) / max(1, int(stored)) * 1e6, 1),
        "writer_insert_wall_s": status["write_seconds"],
        "writer_visits_wall_s": status["visit_seconds"],
        "checkpoint_after_load_s": folded.get("checkpoint_seconds"),
        "spans_per_s_with_checkpoint": round(int(stored) / (queryable + float(folded.get("checkpoint_seconds") or 0))),
        "transactions": status["transactions"],
        "client_cpu_s(senders)": round(client, 2),
        "refused_requests(503)": status["refused_requests"],
        "client_retries": retries,
        "online_evaluation": not args.no_online_eval,
        "load_average": round(os.getloadavg()[0], 2),
    }
    if stored != args.spans:
        raise SystemExit(f"only {stored} of {args.spans} spans stored: {result}")
    if visits != expected_visits:
        raise SystemExit(f"stage visits not derived in time: {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=2000, help="spans per OTLP request (the OTel SDK sends 512)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent sender threads")
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--queue-spans", type=int, default=200_000)
    parser.add_argument("--no-online-eval", action="store_true",
                        help="serve without online scoring of closed visits (isolates ingest; report both)")
    parser.add_argument("--workers", type=int, default=1, help="the server's decoding/scoring processes")
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median spans/s is reported last")
    args = parser.parse_args()
    rates = []
    for i in range(args.repeat):
        result = run(args)
        rates.append(result["spans_per_s"])
        print(f"-- run {i + 1} of {args.repeat}")
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    if args.repeat > 1:
        print(f"{'median spans_per_s':>32}: {statistics.median(rates)}  (runs: {rates})")  # type: ignore[type-var]


if __name__ == "__main__":
    main()

"""The server's worker processes and in-memory state: OTLP bodies decoded off the event loop (HTTP and
gRPC), a dead worker replaced without losing the batch, journey state held in memory and refreshed,
routing decisions logged in batches, and the decision attributes the PII scan skips."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from google.protobuf import json_format
import httpx
import pytest

from journeyscope.privacy import PrivacyPolicy, Redactor
from journeyscope.server.decisions import DecisionLog
from journeyscope.server.settings import ServerSettings
from journeyscope.server.workers import decode_body
from journeyscope.warehouse.derive import DeriveLoop, VisitUpkeep
from journeyscope.warehouse.writer import Writer
from journeyscope.warehouse import SpanRows, Warehouse
from receiver_support import RunningServer, journey_spans, make_request, no_proxy, running_server

PB = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"), workers=1, evaluate_online=False)) as running:
        yield running


def _big_body(journey: str, trace: int, n: int = 300) -> bytes:
    body = make_request(journey_spans(journey, n, trace=trace)).SerializeToString()
    assert len(body) > 16 * 1024  # above the inline threshold: not decoded on the event loop
    return body


def _big_json_body(journey: str, trace: int, n: int = 300) -> bytes:
    """The same spans as OTLP/JSON (hex ids): JSON bodies go to the worker processes (protobuf ones are
    decoded in the server when the compiled decoder is built, which costs less than the round trip)."""
    document = json_format.MessageToDict(make_request(journey_spans(journey, n, trace=trace)))
    for resource in document["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    body = json.dumps(document).encode()
    assert len(body) > 16 * 1024
    return body


def test_large_bodies_are_decoded_in_a_worker_with_the_same_rows(server: RunningServer) -> None:
    pool = server.project.workers
    assert pool is not None and pool.executor is not None
    body = _big_json_body("j-worker", trace=7)
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/v1/traces", content=body, headers=JSON).status_code == 200
    assert pool.offloaded >= 1
    expected = decode_body(body, as_json=True).table
    stored = server.query(
        "SELECT trace_id, span_id, journey_id, stage, attributes FROM spans WHERE journey_id = 'j-worker' "
        "ORDER BY span_id"
    )
    want = sorted(zip(*(expected.column(c).to_pylist() for c in
                        ("trace_id", "span_id", "journey_id", "stage", "attributes"))), key=lambda r: r[1])
    assert stored == want and len(stored) == 300


def test_a_killed_worker_is_replaced_and_no_batch_is_lost(server: RunningServer) -> None:
    pool = server.project.workers
    assert pool is not None and pool.executor is not None
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        assert http.post("/v1/traces", content=_big_json_body("j-before", trace=1), headers=JSON).status_code == 200
        for process in list(pool.executor._processes.values()):  # noqa: SLF001 - the test kills what it must
            os.kill(process.pid, 9)
        time.sleep(0.5)
        statuses = [http.post("/v1/traces", content=_big_json_body(f"j-after-{i}", trace=10 + i),
                              headers=JSON).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    assert pool.restarts == 1
    counts = server.query("SELECT journey_id, count(*) FROM spans GROUP BY ALL ORDER BY 1")
    assert counts == [("j-after-0", 300), ("j-after-1", 300), ("j-after-2", 300), ("j-before", 300)]


def test_grpc_body_that_is_not_otlp_is_invalid_argument_with_the_reason(server: RunningServer) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None, response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as caught:
            export(b"\xff\xff\xff not protobuf", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an OTLP" in caught.value.details()


def test_journey_state_is_served_from_memory_and_refreshed_when_spans_arrive(server: RunningServer) -> None:
    states = server.project.states
    assert states is not None
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        http.post("/v1/traces", content=make_request(journey_spans("j-live", 2, trace=3)).SerializeToString(),
                  headers=PB)
        server.flush()
        first = http.get("/v1/journeys/j-live").json()
        assert first["signals"]["visits"] == 1 and first["visits"][0]["turns"] == 2
        assert states.held_state("j-live") is not None  # the next request needs no query
        more = journey_spans("j-live", 2, trace=4, first_span=50, stage="verify")
        http.post("/v1/traces", content=make_request(more).SerializeToString(), headers=PB)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = http.get("/v1/journeys/j-live").json()
            if now["current_stage"] == "verify":
                break
            time.sleep(0.05)
    assert now["current_stage"] == "verify" and now["signals"]["visits"] == 2
    assert time.monotonic() < deadline


def test_silence_and_idle_outcome_are_computed_as_of_the_request(tmp_path: Path) -> None:
    from journeyscope.warehouse.journey_state import journey_rows, render_state

    with Warehouse(tmp_path / "s.duckdb") as wh:
        from journeyscope.warehouse.rows import SpanRows

        rows = SpanRows()
        start = time.time_ns() - 1_000_000_000  # live: its visit is still open
        rows.add(trace_id="a" * 32, span_id="b" * 16, parent_span_id=None, name="journey.turn", start_ns=start,
                 end_ns=start + 1_000_000_000, attributes={"journey.id": "j1", "customer.id": "c",
                                                           "journey.stage": "s1", "journey.turn.role": "customer",
                                                           "journey.turn.text": "hello"})
        wh.ingest(rows)
        held = journey_rows(wh, ["j1"])["j1"]
    soon = render_state("j1", held, start + 2_000_000_000)
    later = render_state("j1", held, start + 10 * 86400 * 1_000_000_000)
    assert soon["current_outcome"] == "open" and round(soon["signals"]["silence_seconds"]) == 1
    assert later["current_outcome"] == "abandoned"  # past the idle timeout, without a re-read
    assert later["signals"]["silence_seconds"] > soon["signals"]["silence_seconds"]


def test_decisions_are_buffered_and_refused_only_when_the_buffer_is_full(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "d.duckdb") as wh:
        writer = Writer(wh)
        log = DecisionLog(writer, flush_s=3600, max_pending=2)
        state = {"journey_id": "j1", "customer_id": "c1", "journey": "onboarding", "channel": "chat", "cohort": None}
        decision = {"decision_id": "", "action": "continue", "mode": "act", "confidence": 0.5, "reason": "ok",
                    "policy_version": "p1", "fired": [], "signals": {}, "stage": "s1", "requested_by": "t"}
        accepted = [log.log({**decision, "decision_id": f"{i:032x}"}, state, 1_700_000_000_000_000_000)
                    for i in range(3)]
        assert accepted == [True, True, False] and log.refused == 1
        log.close()  # hands the buffer to the writer
        assert writer.force_flush(30)
        writer.shutdown()
        logged = wh.query("SELECT count(*) FROM spans WHERE name = 'journey.route'")
    assert logged == [(2,)]


def _step_rows(step: int, journeys: int = 30) -> SpanRows:
    """One step of every journey: a turn in a stage that sometimes goes back (re-entries)."""
    rows = SpanRows()
    for j in range(journeys):
        stage = ["triage", "diagnosis", "resolution"][(step + j) % 4 % 3]
        rows.add(trace_id=f"{j + 1:032x}", span_id=f"{step * 1000 + j + 1:016x}", parent_span_id=None,
                 name="journey.turn", start_ns=T0 + step * 60 * 10**9 + j, end_ns=None,
                 attributes={"journey.id": f"j{j}", "customer.id": f"c{j}", "journey.name": "support",
                             "journey.stage": stage, "journey.turn.role": "customer", "journey.turn.text": f"{step}"})
    return rows


def test_visits_derived_beside_the_commits_equal_one_derivation_of_everything(tmp_path: Path) -> None:
    clock = lambda: T0 + 3600 * 10**9  # noqa: E731 - a fixed "now" for both warehouses
    steps = [_step_rows(step) for step in range(12)]
    with Warehouse(tmp_path / "live.duckdb", clock=clock) as wh:
        writer = Writer(wh)
        upkeep = VisitUpkeep(wh, interval_s=0.0)  # upkeep after every commit, on the derive loop's thread
        derive = DeriveLoop(wh, [upkeep]).start()
        for rows in steps[:-1]:
            writer.ingest(rows)
        # An upkeep under way (its lock held) does not hold up commits: they are separate transactions.
        with wh._visits_lock:
            writer.ingest(steps[-1]).result(timeout=30)
        assert writer.force_flush(30) and derive.flush(30)
        assert writer.shutdown()
        derive.stop()
        assert upkeep.seconds > 0 and wh.visits_due() == 0
        live = wh.stage_visits()
    everything = SpanRows()
    for rows in steps:
        everything.extend(rows)
    with Warehouse(tmp_path / "once.duckdb", clock=clock) as once:
        once.ingest(everything)
        assert live == once.stage_visits() and len(live) > 30


def test_decision_inputs_are_not_scanned_for_pii_but_the_caller_name_is() -> None:
    redactor = Redactor(PrivacyPolicy())
    out, counts = redactor.attributes({
        "route.signals": '{"silence_seconds": 4407700900123}',
        "route.reason": "retention_fail_rate 0.4 > 0.3",
        "route.requested_by": "ops-bot jane.doe@example.com",
    })
    assert out["route.signals"] == '{"silence_seconds": 4407700900123}'
    assert out["route.reason"] == "retention_fail_rate 0.4 > 0.3"
    assert "jane.doe@example.com" not in out["route.requested_by"] and counts


def test_workers_that_keep_dying_are_given_up_and_bodies_decoded_in_place() -> None:
    from journeyscope.server.workers import MAX_RESTARTS, WorkerPool

    pool = WorkerPool(1)
    try:
        for _ in range(MAX_RESTARTS):
            broken = pool.executor
            assert broken is not None
            pool._restart(broken)  # noqa: SLF001 - what a BrokenProcessPool triggers
            assert pool.executor is not broken  # a fresh pool each time, up to the limit
        pool._restart(pool.executor)  # noqa: SLF001 - one more: no more pools
        assert pool.executor is None and pool.restarts == MAX_RESTARTS + 1
        body = _big_body("j-in-place", trace=5)
        decoded = pool.decode_sync(body)
        assert decoded.table.num_rows == 300 and pool.offloaded == 0
    finally:
        pool.close()


def _nice(pid_or_tid: int) -> int:
    """A thread's or process's nice value, from ``/proc`` (field 19 of ``stat``)."""
    return int(Path(f"/proc/{pid_or_tid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_database_leaves_a_core_to_the_api(server: RunningServer) -> None:
    from journeyscope.server.priority import database_threads

    expected = max(1, (os.cpu_count() or 1) - 1)
    assert database_threads() == expected and database_threads(3) == 3
    assert server.query("SELECT current_setting('threads')") == [(expected,)]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="per-thread priorities are read from Linux /proc")
def test_background_work_runs_below_the_event_loop(tmp_path: Path) -> None:
    """The writer, scoring, refreshers, DuckDB's own worker threads and the worker processes run at a lower
    priority than the thread that serves requests, so an API request does not wait for a core."""
    with running_server(ServerSettings(db=str(tmp_path / "n.duckdb"), workers=1, db_threads=2)) as server:
        _check_priorities(server)


def _check_priorities(server: RunningServer) -> None:
    import threading

    from journeyscope.server.priority import BACKGROUND_NICE

    assert BACKGROUND_NICE > 0
    loop_nice = _nice(threading.get_native_id())  # the server's threads inherited this one's priority
    lowered = min(19, loop_nice + BACKGROUND_NICE)  # 19 is the lowest there is (a suite run under nice 19)
    ours = {t.name: _nice(t.native_id) for t in threading.enumerate()
            if t.name.startswith("journeyscope-") and t.native_id is not None}
    assert {"journeyscope-writer", "journeyscope-derive-default", "journeyscope-timers-default"} <= ours.keys()
    assert all(n == lowered for n in ours.values()), ours
    # DuckDB's worker threads: every thread of this process that Python did not start, minus the interpreter's.
    python_threads = {t.native_id for t in threading.enumerate()}
    others = [int(p.name) for p in Path("/proc/self/task").iterdir() if int(p.name) not in python_threads]
    assert others and any(_nice(tid) == lowered for tid in others)
    workers = server.app.state.workers
    assert workers.executor is not None
    workers.decode_sync(_big_json_body("j-nice", 91), as_json=True)  # the pool's processes have started
    assert all(_nice(pid) == lowered for pid in workers.executor._processes)  # noqa: SLF001


def test_a_refresh_renders_the_answers_asked_for_so_far_off_the_event_loop() -> None:
    """An answer rendered from a report (the ``/v1/stages`` body) is rendered on its first request, then by
    the refresher with each new report, so no request after a refresh pays for rendering it."""
    import json
    import threading

    from journeyscope.server.signals import SignalCache
    from journeyscope.warehouse.filters import Filters

    version = [0]
    cache = SignalCache(lambda filters: {"version": version[0]}, refresh_s=0)  # type: ignore[arg-type, return-value]
    rendered_by: list[str] = []

    def render(report: object) -> str:
        rendered_by.append(threading.current_thread().name)
        return json.dumps(report)

    everything = Filters()
    cache.report(everything)
    assert cache.view(everything, "body", render)[0] == '{"version": 0}'  # type: ignore[index]
    version[0] = 1
    cache.mark_stale()
    refresher = threading.Thread(target=cache.refresh_once, name="refresher")
    refresher.start()
    refresher.join()
    assert cache.view(everything, "body", render)[0] == '{"version": 1}'  # type: ignore[index]
    assert rendered_by == [threading.current_thread().name, "refresher"]

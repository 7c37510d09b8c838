"""The change feed and the derive loop: every commit publishes what it changed under a growing generation; a
consumer resumes from its stored position after a restart and handles each change once; the write door is
the only way in (every source publishes through it); a running server starts three threads of its own."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from journeyscope.errors import WarehouseUnavailable
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import Warehouse, derive, feed
from journeyscope.warehouse.derive import DeriveLoop, FeedPause, VisitUpkeep
from journeyscope.warehouse.erasure import erase_customer
from journeyscope.warehouse.feed import Change, ChangeBatch
from journeyscope.warehouse.partition import Partition
from journeyscope.warehouse.visit_feed import derived_through, due_journeys, overlapping_upkeeps, still_due
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.writer import Writer

from receiver_support import journey_spans, make_request, running_server

T0 = 1_700_000_000_000_000_000


def _turns(journeys: list[str], step: int, stage: str = "triage") -> SpanRows:
    rows = SpanRows()
    for i, journey in enumerate(journeys):
        rows.add(trace_id=f"{abs(hash(journey)) % 10**12:032x}", span_id=f"{step * 10_000 + i + 1:016x}",
                 parent_span_id=None, name="journey.turn", start_ns=T0 + step * 10**9 + i, end_ns=None,
                 attributes={"journey.id": journey, "customer.id": f"c-{journey}", "journey.name": "support",
                             "journey.stage": stage, "journey.turn.role": "customer",
                             "journey.turn.text": f"step {step}"})
    return rows


class Recorder:
    """A durable consumer that remembers every change it was given (to find one handled twice or skipped)."""

    name = "recorder"
    kinds = frozenset({feed.SPANS, feed.VISITS})
    durable = True

    def __init__(self) -> None:
        self.seen: list[tuple[int, str]] = []
        self.incomplete = 0
        self.due = 0.0  #: what :meth:`not_before` answers (a test rests it)

    def consume(self, batch: ChangeBatch, now: float) -> None:
        if not batch.complete:
            self.incomplete += 1
        self.seen += [(c.generation, c.kind) for c in batch.changes]

    def not_before(self) -> float:
        return self.due

    def backlog(self) -> bool:
        return False

    def next_tick(self) -> float | None:
        return None


def _all_changes(wh: Warehouse) -> list[tuple[int, str]]:
    return [(int(g), k) for g, k in wh.query("SELECT generation, kind FROM changes ORDER BY ALL")]


def test_every_commit_publishes_its_journeys_under_a_new_generation(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "f.duckdb") as wh:
        start = wh.feed.generation()
        wh.ingest(_turns(["j1", "j2"], 1), update_visits=False)
        first = wh.feed.generation()
        wh.ingest(_turns(["j3"], 2), update_visits=False)
        second = wh.feed.generation()
        assert start < first < second
        wh.update_visits()  # derives j1..j3: a visits change of its own
        third = wh.feed.generation()
        assert third > second
        with wh.transaction("write nothing that changes data") as tx:
            tx.cur.execute("SELECT 1")
        assert wh.feed.generation() == third  # a commit that publishes nothing takes no generation
        batch = wh.feed.read(start, feed.ALL_KINDS)
        by_generation = {(c.generation, c.kind): set(c.journeys or ()) for c in batch.changes}
        assert by_generation == {(first, feed.SPANS): {"j1", "j2"}, (second, feed.SPANS): {"j3"},
                                 (third, feed.VISITS): {"j1", "j2", "j3"}}
        assert wh.feed.read(start, frozenset({feed.VISITS})).journeys() == {"j1", "j2", "j3"}
        assert wh.feed.read(second, feed.ALL_KINDS).changes == batch.changes[-1:]
    with Warehouse(tmp_path / "f.duckdb") as again:
        assert again.feed.generation() == third  # generations keep growing across openings
        again.ingest(_turns(["j4"], 3))
        assert again.feed.generation() > third


def test_a_restarted_consumer_resumes_at_its_position_without_repeating_or_skipping(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    with Warehouse(db) as wh:
        wh.ingest(_turns(["a1", "a2"], 1), update_visits=False)  # before the consumer ever ran
        covered = wh.feed.generation()  # what its first, incomplete batch stands for
        first = Recorder()
        loop = DeriveLoop(wh, [first])
        assert loop.flush(30)
        assert first.incomplete == 1  # no position yet: told to derive everything once
        writer = Writer(wh)
        for step in range(2, 6):
            writer.ingest(_turns([f"b{step}"], step)).result(30)
        loop.start()
        assert writer.force_flush(30) and loop.flush(30)
        loop.stop()
        writer.shutdown()
        handled_before = list(first.seen)
        wh.ingest(_turns(["c1"], 7), update_visits=False)  # while no consumer runs
        wh.update_visits()
    with Warehouse(db) as reopened:
        second = Recorder()
        loop = DeriveLoop(reopened, [second])
        assert loop.flush(30)
        everything = [c for c in _all_changes(reopened) if c[1] in Recorder.kinds and c[0] > covered]
    assert second.incomplete == 0
    assert sorted(handled_before + second.seen) == everything  # each change handled once, none skipped
    assert len(set(handled_before + second.seen)) == len(everything)
    assert second.seen and min(g for g, _ in second.seen) > max(g for g, _ in handled_before)


class Flaky(Recorder):
    """A recorder whose store is away for its first ``failures`` passes (as the lake's catalog in an outage)."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def consume(self, batch: ChangeBatch, now: float) -> None:
        if self.failures:
            self.failures -= 1
            raise WarehouseUnavailable("cannot reach the lake's catalog: connection refused")
        super().consume(batch, now)


def test_a_failing_consumer_logs_once_keeps_its_position_and_catches_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Warehouse(tmp_path / "o.duckdb") as wh:
        flaky = Flaky(failures=0)
        loop = DeriveLoop(wh, [flaky])
        assert loop.flush(30)  # a first position
        start = loop.position("flaky")
        assert start is not None
        flaky.failures = 5
        wh.ingest(_turns(["o1", "o2"], 1), update_visits=False)
        with caplog.at_level(logging.DEBUG, logger="journeyscope.warehouse.derive"):
            for _ in range(5):
                loop.run_once(flushing=True)
                assert loop.position("flaky") == start  # nothing handled: the position stays
            loop.run_once(flushing=True)
        assert loop.position("flaky") == wh.feed.generation()
        assert [g for g, _ in flaky.seen] == [g for g, k in _all_changes(wh) if k in Recorder.kinds and g > start]
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    loud = [text for level, text in said if level >= logging.WARNING]
    assert loud == ["journeyscope: deriving flaky failed (tried again every second): "
                    "cannot reach the lake's catalog: connection refused",
                    "journeyscope: deriving flaky works again (after 5 failed passes)"]
    assert sum(1 for level, _ in said if level == logging.DEBUG) == 4


def test_a_consumer_behind_what_the_feed_keeps_derives_everything(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "p.duckdb") as wh:
        wh.feed.retain = 2
        wh.ingest(_turns(["x"], 1), update_visits=False)
        behind = wh.feed.generation()
        for step in range(2, 1001):  # pruning runs every 1000 generations
            with wh.transaction("touch") as tx:
                tx.publish(feed.SCORES, [f"j{step}"])
        assert wh.query("SELECT min(generation) FROM changes")[0][0] > behind
        assert not wh.feed.read(behind, feed.ALL_KINDS).complete
        assert wh.feed.read(behind, feed.ALL_KINDS).journeys() is None
        assert wh.feed.read(wh.feed.generation() - 1, feed.ALL_KINDS).complete


def test_erasure_publishes_and_leaves_no_journey_id_in_the_feed(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "e.duckdb") as wh:
        wh.ingest(_turns(["gone", "kept"], 1))
        before = wh.feed.generation()
        erase_customer(wh, "c-gone")
        batch = wh.feed.read(before, feed.ALL_KINDS)
        assert [c.kind for c in batch.changes] == [feed.ERASURE] and batch.journeys() is None
        stored = str(wh.query("SELECT journey_ids FROM changes"))
        assert "gone" not in stored and "kept" in stored


def test_visit_upkeep_in_the_loop_derives_what_ingest_left_pending(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "u.duckdb", clock=lambda: T0 + 3600 * 10**9) as wh:
        upkeep = VisitUpkeep(wh, interval_s=0.0)
        loop = DeriveLoop(wh, [upkeep]).start()
        writer = Writer(wh)
        writer.ingest(_turns(["u1", "u2"], 1)).result(30)
        assert writer.force_flush(30) and loop.flush(30)
        loop.stop()
        writer.shutdown()
        assert {v["journey_id"] for v in wh.stage_visits()} == {"u1", "u2"}
        assert wh.visits_due() == 0


def test_commits_count_as_paused_after_several_of_their_usual_gaps() -> None:
    pause = FeedPause(min_s=0.25, gaps=3.0)
    for step in range(10):  # a burst: a commit every 0.2 s
        pause.observe(step, 100.0 + 0.2 * step)
        assert pause.paused_from() > 100.0 + 0.2 * step + 0.2  # the next commit is due before: not a pause
    assert pause.paused_from() == pytest.approx(101.8 + 0.6)
    pause.observe(9, 105.0)  # the same generation seen later: nothing moved
    assert pause.paused_from() == pytest.approx(102.4)
    pause.observe(10, 200.0)  # one long pause does not make the next burst's pauses long (the median)
    assert pause.paused_from() == pytest.approx(200.0 + 0.6)
    slow = FeedPause(min_s=0.25, gaps=3.0)
    for step in range(5):  # commits every 2 s: only a pause longer than 6 s counts
        slow.observe(step, 2.0 * step)
    assert slow.paused_from() == pytest.approx(8.0 + 6.0)


def test_visit_upkeep_rests_while_commits_stream_in_and_runs_once_they_pause(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "p.duckdb", clock=lambda: T0 + 3600 * 10**9) as wh:
        upkeep = VisitUpkeep(wh, interval_s=1.0, rest=1e6)  # a round rests a million times as long as it took
        wh.ingest(_turns(["p1"], 1), update_visits=False)
        upkeep.consume(ChangeBatch(0, wh.feed.generation(), (), False), time.monotonic())
        assert {v["journey_id"] for v in wh.stage_visits()} == {"p1"}
        for step in range(2, 5):  # a burst of commits
            wh.ingest(_turns(["p1"], step), update_visits=False)
            assert upkeep.not_before() > time.monotonic()  # resting: more commits may come
        assert upkeep.not_before() < time.monotonic() + 5  # not the rest (hours): the burst may be over
        time.sleep(max(0.0, upkeep.not_before() - time.monotonic()) + 0.05)
        assert upkeep.not_before() <= time.monotonic()  # no commit came: the burst is over, upkeep runs
        wh.ingest(_turns(["p1"], 5), update_visits=False)
        assert upkeep.not_before() > time.monotonic()  # a commit again: it waits to see whether more come


def test_upkeep_runs_once_its_receivers_writer_has_nothing_left_to_commit(tmp_path: Path) -> None:
    """The receiver's own burst is over when its writer is idle: upkeep runs ``interval_s`` after its last commit,
    once per burst, without waiting for the feed to pause (set to an hour here, so only the writer's word counts)."""
    with Warehouse(tmp_path / "i.duckdb", clock=lambda: T0 + 3600 * 10**9) as wh:
        writer = Writer(wh)
        assert writer.idle() is None  # nothing committed yet
        upkeep = VisitUpkeep(wh, interval_s=0.2, rest=1e6, ingest_idle=writer.idle)
        upkeep.pause = FeedPause(min_s=3600.0)
        try:
            upkeep.consume(ChangeBatch(0, wh.feed.generation(), (), False), time.monotonic())
            assert upkeep.not_before() > time.monotonic() + 1000  # resting, and no commit since the round
            writer.ingest(_turns(["w1", "w2"], 1)).result(timeout=30)
            idle = writer.idle()
            assert idle is not None and idle <= time.monotonic()
            assert upkeep.not_before() == pytest.approx(idle + 0.2)  # not the rest, not the feed's hour
            upkeep.consume(ChangeBatch(0, wh.feed.generation(), (), False), time.monotonic())
            assert {v["journey_id"] for v in wh.stage_visits()} == {"w1", "w2"}
            assert upkeep.not_before() > time.monotonic() + 1000  # once per burst: no commit since the round
        finally:
            writer.shutdown()


def test_a_wake_without_a_commit_runs_a_pass_so_a_consumer_whose_rest_was_cut_short_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a consumer paces on can move without a commit (its receiver's writer running out of work): the feed's
    wake then makes the loop ask again, instead of sleeping out the rest it was told (an hour here)."""
    monkeypatch.setattr(derive, "_MAX_SLEEP_S", 3600.0)
    with Warehouse(tmp_path / "w.duckdb") as wh:
        paced = Recorder()
        loop = DeriveLoop(wh, [paced]).start()
        try:
            assert loop.caught_up(timeout_s=30)
            paced.due = time.monotonic() + 3600.0
            wh.ingest(_turns(["r1"], 1), update_visits=False)  # a change it would rather handle in an hour
            time.sleep(0.3)  # the loop saw it and went to sleep until then
            assert paced.seen == []
            paced.due = 0.0
            wh.feed.wake()
            deadline = time.monotonic() + 30
            while not paced.seen and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [kind for _, kind in paced.seen] == [feed.SPANS]
        finally:
            loop.stop()


def test_a_receivers_derive_loop_derives_its_last_commit_without_waiting_for_the_feed_to_pause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a running derive loop the writer's word is enough: a commit's visits appear although the pause rule and
    the loop's safety-net sleep are an hour each (the wake that makes the loop ask again is tested above)."""
    monkeypatch.setattr(derive, "_MAX_SLEEP_S", 3600.0)
    with Warehouse(tmp_path / "l.duckdb", clock=lambda: T0 + 3600 * 10**9) as wh:
        writer = Writer(wh)
        upkeep = VisitUpkeep(wh, interval_s=0.2, rest=1e6, ingest_idle=writer.idle)
        upkeep.pause = FeedPause(min_s=3600.0)
        loop = DeriveLoop(wh, [upkeep]).start()
        try:
            assert loop.caught_up(timeout_s=30)  # the first round (nothing to derive yet)
            writer.ingest(_turns(["l1"], 1)).result(timeout=30)
            deadline = time.monotonic() + 30
            while not wh.stage_visits() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert {v["journey_id"] for v in wh.stage_visits()} == {"l1"}
        finally:
            loop.stop()
            writer.shutdown()


def test_every_source_enters_through_the_door_and_a_server_runs_three_threads(tmp_path: Path) -> None:
    """OTLP over HTTP and gRPC, routing decisions, the importer's and the exporter's path (Warehouse.ingest)
    all publish a change; the server adds three threads of its own (writer, derive loop, timers)."""
    import grpc

    before = {t.ident for t in threading.enumerate()}
    settings = ServerSettings(db=str(tmp_path / "s.duckdb"), workers=0)
    with running_server(settings) as server:
        wh = server.project.warehouse
        start = wh.feed.generation()
        body = make_request(journey_spans("door-http", 2, trace=71))
        with httpx.Client(timeout=30) as http:
            assert http.post(server.traces_url, content=body.SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"}).status_code == 200
            server.flush()
            after_http = wh.feed.generation()
            channel = grpc.insecure_channel(server.grpc_target)
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            export(make_request(journey_spans("door-grpc", 2, trace=72)).SerializeToString(), timeout=30)
            channel.close()
            server.flush()
            after_grpc = wh.feed.generation()
            routed = http.post(server.base_url + "/v1/route", json={"journey_id": "door-http"})
            assert routed.status_code == 200
            server.flush()
        kinds = [c.kind for c in wh.feed.read(start, feed.ALL_KINDS).changes]
        assert start < after_http < after_grpc
        assert kinds.count(feed.SPANS) >= 2 and feed.EVENTS in kinds and feed.VISITS in kinds
        ours = [t.name for t in threading.enumerate() if t.ident not in before and t.name.endswith("-default")
                or t.name == "journeyscope-writer"]
        threads = sorted(t.name for t in threading.enumerate() if t.ident not in before)
    assert sorted(ours) == ["journeyscope-derive-default", "journeyscope-timers-default", "journeyscope-writer"]
    # The rest is not the project's: uvicorn's thread, the gRPC server's pool, the event loop's executor (uvloop
    # or asyncio), the policy-file watcher (one per server).
    unexpected = [n for n in threads if n not in ours and not n.startswith(
        ("Thread-", "journeyscope-grpc", "asyncio_", "uvloop_", "ThreadPoolExecutor", "journeyscope-policies"))]
    assert not unexpected, threads


def test_journey_states_forget_closed_journeys_nobody_asked_about(tmp_path: Path) -> None:
    from journeyscope.server.journey_states import JourneyStates

    with Warehouse(tmp_path / "m.duckdb", clock=lambda: T0 + 5 * 10**9) as wh:
        wh.ingest(_turns(["live"], 1))
        wh.ingest(_turns(["done", "asked"], -100_000))  # silent for a day: their visits are abandoned
        states = JourneyStates(wh)
        for journey in ("live", "done", "asked"):
            assert states.state(journey) is not None
        assert len(states) == 3
        states.prune()  # the first prune only forgets what was not asked since the last one: all were
        assert len(states) == 3
        assert states.held_state("asked") is not None
        assert states.prune() == 1 and len(states) == 2  # "done": closed, and nobody asked
        assert states.held_state("live") is not None and states.held_state("done") is None
        assert states.prune() == 1 and states.held_state("asked") is None  # not asked since: gone too
        assert states.held_state("live") is not None  # open: kept


def test_upkeep_starts_a_new_partition_where_every_journey_was_derived_and_counts_what_is_due() -> None:
    """Upkeep's positions on the feed: a partition with no position yet starts where every journey is known derived
    (a full derivation, whole upkeep, or the lowest of a complete set of parts), never where one part alone stands;
    a journey is due until the upkeep that owns it has passed the last change listing it."""
    half = Partition(1, 2)
    mine = next(f"j{i}" for i in range(100) if half.owns(f"j{i}"))
    theirs = next(f"j{i}" for i in range(100) if not half.owns(f"j{i}"))
    assert derived_through({}) == 0
    assert derived_through({"visit-upkeep rebuilt": 3, "visit-upkeep 1/2": 9}) == 3  # 2/2 may be behind
    assert derived_through({"visit-upkeep rebuilt": 3, "visit-upkeep 1/2": 9, "visit-upkeep 2/2": 7}) == 7
    assert derived_through({"visit-upkeep": 5, "visit-upkeep 1/3": 8, "visit-upkeep 2/3": 8}) == 5
    assert derived_through({"visit-upkeep other": 50, "online-scoring 1/2": 60}) == 0  # not upkeep's
    changes = (Change(8, feed.SPANS, (mine, theirs), 120), Change(9, feed.SPANS, (theirs,), 100),
               Change(10, feed.SPANS, ("j-late",), None))
    assert due_journeys(changes, None) == {mine: 120, theirs: 100, "j-late": None}  # each its lowest first span
    assert due_journeys(changes, half) == {mine: 120}
    assert due_journeys((*changes, Change(11, feed.SPANS, None)), None) is None
    positions = {"visit-upkeep 1/2": 8, "visit-upkeep 2/2": 8}
    assert still_due(changes, positions) == {theirs, "j-late"}
    assert still_due(changes, {**positions, "visit-upkeep 2/2": 9}) == {"j-late"}
    assert still_due(changes, {"visit-upkeep": 10}) == set()


def test_an_upkeep_hears_of_another_deriving_some_of_its_journeys() -> None:
    """Another upkeep whose position moved between two looks, and which can own a journey this one owns: whole
    upkeep shares every journey; parts i/n and j/m share one exactly when i ≡ j modulo gcd(n, m). Positions that
    did not move, appeared only now, or are not an upkeep's (a full derivation's, another consumer's) do not count."""
    seen = {"visit-upkeep": 4, "visit-upkeep 1/2": 3, "visit-upkeep 2/2": 3, "visit-upkeep 1/4": 2,
            "visit-upkeep 2/4": 2, "visit-upkeep 2/3": 1, "visit-upkeep rebuilt": 1, "online-scoring": 1}
    moved = {name: generation + 5 for name, generation in seen.items()}
    assert overlapping_upkeeps("visit-upkeep", seen, seen) == []
    assert overlapping_upkeeps("visit-upkeep", seen, moved) == [
        "visit-upkeep 1/2", "visit-upkeep 1/4", "visit-upkeep 2/2", "visit-upkeep 2/3", "visit-upkeep 2/4"]
    assert overlapping_upkeeps("visit-upkeep 1/2", seen, moved) == ["visit-upkeep", "visit-upkeep 1/4",
                                                                   "visit-upkeep 2/3"]
    assert overlapping_upkeeps("visit-upkeep 2/4", seen, moved) == ["visit-upkeep", "visit-upkeep 2/2",
                                                                   "visit-upkeep 2/3"]
    assert overlapping_upkeeps("visit-upkeep 1/2", {}, {"visit-upkeep 2/2": 9, "visit-upkeep": 9}) == []
    assert overlapping_upkeeps("online-scoring", seen, moved) == []

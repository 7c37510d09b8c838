"""The change feed and derivation across processes on a lake (real PostgreSQL 15 catalog, real processes).

Two writer processes commit at once; a consumer in a third process hears of their commits, and every read it made
is a prefix of the feed as finally stored (a reader that has seen generation G has seen every commit below G).
Derive workers split the journeys by partition, each deriving and scoring only its own, and a second run writes
nothing twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from journeyscope.cli import cli
from journeyscope.cli.common import run_cli
from journeyscope.demo import DEMO_MAP, run_demo
from journeyscope.server.derive_worker import DeriveWorker, WorkerSettings
from journeyscope.simulator import SimulationConfig
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.feed import ERASURE, SPANS, _read_changes
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.partition import Partition
from support.services import Postgres, postgres, services_folder  # noqa: F401

# One writer process: ``commits`` transactions of a few journeys' spans each, as fast as it can.
WRITER = textwrap.dedent('''
    import sys
    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.rows import SpanRows

    url, data_path, name, commits = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    with Warehouse(url, data_path=data_path, journey_map=None) as lake:
        for c in range(commits):
            rows = SpanRows()
            for j in range(3):
                journey = f"{name}-{c}-{j}"
                rows.add(trace_id=f"{abs(hash(journey)) % 10**12:032x}", span_id=f"{c * 10 + j + 1:016x}",
                         parent_span_id=None, name="journey.turn", start_ns=1_700_000_000_000_000_000 + c,
                         end_ns=None, attributes={"journey.id": journey, "customer.id": "c", "journey.name": "s",
                                                  "journey.stage": "triage", "journey.turn.role": "customer",
                                                  "journey.turn.text": "hello"})
            lake.ingest(rows, update_visits=False)
''')


def _lake(postgres: Postgres, tmp_path: Path) -> tuple[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    return "ducklake:postgres:" + postgres.conninfo(postgres.new_database()), str(data)


def _stored(lake: Warehouse, after: int) -> tuple[Any, ...]:
    """What the lake stores of the feed after ``after`` (spans and erasures), read past any feed's memory."""
    cur = lake.cursor()
    try:
        return _read_changes(cur, after, lake.feed.generation(), frozenset({SPANS, ERASURE}))
    finally:
        cur.close()


def test_a_feed_reads_its_own_commits_from_memory_and_the_others_from_the_lake(postgres: Postgres,
                                                                               tmp_path: Path) -> None:
    """A lake's feed keeps what its own commits published; a read that covers another writer's commit (or one
    after an erasure, which takes journeys out of the stored changes) reads the lake: every read equals the
    stored feed."""
    url, data = _lake(postgres, tmp_path)
    with Warehouse(url, data_path=data, journey_map=None) as one, Warehouse(url, journey_map=None) as other:
        for writer, journeys in ((one, {"a", "b"}), (other, {"c"}), (one, {"d"})):
            with writer.transaction("publish") as tx:
                tx.publish(SPANS, journeys)
        head = one.feed.generation()
        assert one.feed.read(head - 1, frozenset({SPANS})).changes == _stored(one, head - 1)  # its own: kept
        assert one.feed.read(0, frozenset({SPANS, ERASURE})).changes == _stored(one, 0)  # the other's among them
        assert [c.journeys for c in _stored(one, 0)] == [("a", "b"), ("c",), ("d",)]
        with one.transaction("erase") as tx:
            tx.cur.execute("UPDATE changes SET journey_ids = list_filter(journey_ids, j -> j <> 'd')")
            tx.publish(ERASURE, None)
        after = one.feed.generation()
        assert one.feed.read(head - 1, frozenset({SPANS, ERASURE})).changes == _stored(one, head - 1)
        assert [c.journeys for c in _stored(one, head - 1)] == [(), None] and after == head + 1


def test_a_feed_reads_each_generation_from_the_lake_once(postgres: Postgres, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer's generations are read from the lake once and kept: consumers behind one another read them
    from memory. Another writer's erasure, once read, drops what was kept (it took journeys out of the stored
    changes), and a feed that keeps less than a read covers still answers what the lake stores."""
    from journeyscope.warehouse import feed as feed_module

    url, data = _lake(postgres, tmp_path)
    lake_reads: list[tuple[int, int]] = []

    def counted(cur: Any, after: int, upto: int, kinds: frozenset[str]) -> Any:
        lake_reads.append((after, upto))
        return _read_changes(cur, after, upto, kinds)

    monkeypatch.setattr(feed_module, "_read_changes", counted)
    with Warehouse(url, data_path=data, journey_map=None) as one, Warehouse(url, journey_map=None) as other:
        one.feed.poll_s = 0.0
        for writer, journeys in ((one, {"a", "b"}), (other, {"c"}), (other, {"d"}), (one, {"e"})):
            with writer.transaction("publish") as tx:
                tx.publish(SPANS, journeys)
        head = one.feed.generation()
        assert one.feed.read(head - 3, frozenset({SPANS})).changes == _stored(one, head - 3)
        assert lake_reads == [(head - 3, head)]  # from the first generation it had not seen, every kind
        assert one.feed.read(head - 2, frozenset({SPANS})).changes == _stored(one, head - 2)
        assert one.feed.read(0, frozenset({SPANS, ERASURE})).changes == _stored(one, 0)
        assert len(lake_reads) == 1  # both from memory

        with other.transaction("erase") as tx:
            tx.cur.execute("UPDATE changes SET journey_ids = list_filter(journey_ids, j -> j <> 'a')")
            tx.publish(ERASURE, None)
        assert one.feed.read(0, frozenset({SPANS, ERASURE})).changes == _stored(one, 0)
        assert [c.journeys for c in _stored(one, 0)][0] == ("b",)

        monkeypatch.setattr(feed_module, "_KEPT_IDS", 1)  # keeps less than the next read covers
        with other.transaction("publish") as tx:
            tx.publish(SPANS, {"f", "g"})
        assert one.feed.read(0, frozenset({SPANS, ERASURE})).changes == _stored(one, 0)


@pytest.mark.slow
def test_two_writer_processes_publish_unique_generations_in_commit_order(postgres: Postgres, tmp_path: Path) -> None:
    url, data = _lake(postgres, tmp_path)
    commits = 12
    with Warehouse(url, data_path=data, journey_map=None) as reader:  # this process: the consumer
        reader.feed.poll_s = 0.01
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, data, name, str(commits)],
                                    stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
        reads: list[tuple[int, int, set[int]]] = []  # (after, upto, generations read), as the consumer read them
        seen = 0
        try:
            while any(w.poll() is None for w in writers) or reader.feed.generation() > seen:
                reader.feed.wait(seen, 0.5)
                batch = reader.feed.read(seen, frozenset({SPANS}))
                assert batch.complete and batch.after == seen and batch.upto >= seen
                reads.append((batch.after, batch.upto, {c.generation for c in batch.changes}))
                assert all(seen < c.generation <= batch.upto for c in batch.changes)
                seen = batch.upto
        finally:
            for writer in writers:
                _, errors = writer.communicate(timeout=300)
                assert writer.returncode == 0, errors
        final = reader.feed.read(0, frozenset({SPANS}))
    generations = [c.generation for c in final.changes]
    assert len(generations) == len(set(generations)) == 2 * commits  # one per commit, none shared
    published = [j for c in final.changes for j in c.journeys or ()]
    assert sorted(published) == sorted(f"{n}-{c}-{j}" for n in "ab" for c in range(commits) for j in range(3))
    # Every read held exactly the generations the feed finally holds in its range: none turned up later below it.
    for after, upto, read in reads:
        assert read == {g for g in generations if after < g <= upto}
    assert sum(len(read) for _, _, read in reads) == 2 * commits  # the consumer heard of every commit, once
    assert len([r for r in reads if r[2]]) > 1  # it heard of them while they were being written


def _evaluations(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query("SELECT journey_id, stage, visit, evaluator, score, label FROM evaluations "
                           "ORDER BY ALL")


def _derive(url: str, data: str, partition: str) -> None:
    """What ``journeyscope derive --once --partition ...`` runs (here, in this process, to keep the test short)."""
    lines: list[str] = []
    DeriveWorker(WorkerSettings(db=url, data_path=data, partition=Partition.parse(partition),
                                map_file=str(DEMO_MAP))).run(once=True, ready=lines.append)
    assert lines and f"partition {partition}" in lines[0]


@pytest.mark.slow
def test_derive_workers_split_the_journeys_and_never_count_twice(postgres: Postgres, tmp_path: Path) -> None:
    source = tmp_path / "demo.duckdb"
    run_demo(source, SimulationConfig(journeys=30, seed=5), evaluate=False)
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(source, read_only=True, journey_map=journey_map) as demo:
        spans = demo.cursor().execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans ORDER BY seq").to_arrow_table()
    url, data = _lake(postgres, tmp_path)
    with Warehouse(url, data_path=data, journey_map=journey_map) as lake:
        lake.ingest(spans, update_visits=False)  # left to the derive workers
    with Warehouse(tmp_path / "same.duckdb", journey_map=journey_map) as embedded:
        embedded.ingest(spans)
        evaluate_pending(embedded)
        visits, scores = embedded.stage_visits(), _evaluations(embedded)
    first = Partition(1, 2)
    journeys = {v["journey_id"] for v in visits}
    assert 0 < len(first.select(sorted(journeys))) < len(journeys)

    _derive(url, data, "1/2")
    with Warehouse(url, read_only=True, journey_map=journey_map) as lake:
        derived = {v["journey_id"] for v in lake.stage_visits()}
        assert derived == set(first.select(sorted(journeys)))  # its own journeys, and only those
        assert {r[0] for r in _evaluations(lake)} == {j for j in derived if any(s[0] == j for s in scores)}
        assert lake.visits_due() == len(journeys - derived)  # the other partition's, still waiting for their worker

    _derive(url, data, "2/2")
    _derive(url, data, "1/2")  # again: nothing left to do, nothing written twice
    with Warehouse(url, read_only=True, journey_map=journey_map) as lake:
        strip = ("first_seq", "last_seq")
        assert [{k: v for k, v in row.items() if k not in strip} for row in lake.stage_visits()] == \
            [{k: v for k, v in row.items() if k not in strip} for row in visits]
        assert _evaluations(lake) == scores  # every visit scored once, as the embedded file scores it
        assert lake.visits_due() == 0


def test_a_receiver_left_deriving_beside_a_derive_worker_says_so_once(postgres: Postgres, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """A receiver that derives every journey, on a lake where a derive worker derives part of them, logs once that
    each is derived twice (it should run with ``--no-derive``), and so does the worker; a receiver alone, or
    workers of parts that do not overlap, log nothing."""
    source = tmp_path / "demo.duckdb"
    run_demo(source, SimulationConfig(journeys=12, seed=3), evaluate=False)
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(source, read_only=True, journey_map=journey_map) as demo:
        spans = demo.cursor().execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans ORDER BY seq").to_arrow_table()
    loads = [spans.slice(i * len(spans) // 6, len(spans) // 6 + 1) for i in range(6)]
    url, data = _lake(postgres, tmp_path)
    warned = "derived twice"
    with Warehouse(url, data_path=data, journey_map=journey_map) as receiver, \
            Warehouse(url, data_path=data, journey_map=journey_map) as first, \
            Warehouse(url, data_path=data, journey_map=journey_map) as second:
        for load in loads[:2]:
            receiver.ingest(load)  # its own rounds, alone
        for load in loads[2:4]:
            first.ingest(load, update_visits=False)
            first.update_visits(Partition(1, 2))
            second.update_visits(Partition(2, 2))
        assert warned not in caplog.text
        for load in loads[4:]:
            first.ingest(load, update_visits=False)
            first.update_visits(Partition(1, 2))
            receiver.update_visits()
            first.update_visits(Partition(1, 2))
        lines = [r.getMessage() for r in caplog.records if warned in r.getMessage()]
        assert len(lines) == 2, lines
        assert any("'visit-upkeep 1/2' moved" in line and "position is 'visit-upkeep'" in line for line in lines)
        assert any("'visit-upkeep' moved" in line and "position is 'visit-upkeep 1/2'" in line for line in lines)
        assert all("--no-derive" in line for line in lines)


def test_a_derive_worker_runs_its_queries_on_the_threads_a_receiver_would(postgres: Postgres, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``journeyscope derive --db-threads`` reaches the worker, whose DuckDB runs each query on that many threads;
    without it, on one fewer than the cores, as ``serve``'s (not DuckDB's default of all of them)."""
    from click.testing import CliRunner

    from journeyscope.server import derive_worker
    from journeyscope.server.priority import database_threads

    url, data = _lake(postgres, tmp_path)
    Warehouse(url, data_path=data).close()
    for given, expected in ((None, database_threads()), (1, 1), (3, 3)):
        worker = DeriveWorker(WorkerSettings(db=url, data_path=data, partition=Partition(1, 1), db_threads=given))
        try:
            assert worker.warehouse.query("SELECT current_setting('threads')") == [(expected,)], given
        finally:
            worker.close()

    chosen: list[WorkerSettings] = []

    class Recorded:
        def __init__(self, settings: WorkerSettings) -> None:
            chosen.append(settings)

        def run(self, **_: Any) -> None:
            pass

    monkeypatch.setattr(derive_worker, "DeriveWorker", Recorded)
    with mock.patch.dict(os.environ):  # --data-path sets the variable for the process and its children
        result = CliRunner().invoke(cli, ["derive", "--db", url, "--data-path", data, "--once", "--db-threads", "3"])
    assert result.exit_code == 0, result.output
    assert [s.db_threads for s in chosen] == [3]


def test_derive_refuses_a_bad_partition_and_an_unreachable_catalog(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    unreachable = "ducklake:postgres:host=127.0.0.1 port=1 dbname=x"
    for args, expected in (
        (["--partition", "3/2", "--db", unreachable], "partition 3/2: K/N needs 1 <= K <= N"),
        (["--partition", "half"], "partition 'half' is not K/N"),
        (["--db", str(tmp_path / "file.duckdb")], "needs a lake in PostgreSQL"),
        (["--db", unreachable, "--data-path", str(tmp_path)], "cannot reach the lake's catalog"),
    ):
        with mock.patch.dict(os.environ):  # --data-path sets the variable for the process and its children
            assert run_cli(cli, ["derive", *args]) == 1, args
        errors = capsys.readouterr().err
        assert errors.startswith("error: ") and expected in errors and "Traceback" not in errors, errors
    assert not (tmp_path / "file.duckdb").exists()

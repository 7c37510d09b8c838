"""Storage on a DuckLake: the catalog in a real PostgreSQL 15, the Parquet files in a real S3 store (SeaweedFS).

The same warehouse code runs on the lake as on the embedded file; a file converts into a lake and reads the
same; a retried batch is stored once even when two writer processes race with it.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from journeyscope.demo import DEMO_MAP, run_demo
from journeyscope.simulator import SimulationConfig
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.store import PreparedBatch
from journeyscope.warehouse.feed import SPANS, VISITS
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.lake import ALIAS
from support.services import ObjectStore, Postgres, object_store, postgres, services_folder  # noqa: F401

#: Visit columns that carry storage-assigned span numbers (each storage numbers its spans itself).
_SEQ_COLUMNS = ("first_seq", "last_seq")


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated warehouse file (through the real instrumentation), visits derived, not scored."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    run_demo(path, SimulationConfig(journeys=40, seed=11), evaluate=False)
    return path


@pytest.fixture
def lake_env(object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The S3 credentials and endpoint in the environment, as a deployment sets them."""
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    yield object_store.env()


def _lake_url(postgres: Postgres) -> str:
    return "ducklake:postgres:" + postgres.conninfo(postgres.new_database())


def _visits(warehouse: Warehouse) -> list[dict[str, Any]]:
    return [{k: v for k, v in visit.items() if k not in _SEQ_COLUMNS} for visit in warehouse.stage_visits()]


def _spans(path: Path) -> pa.Table:
    with Warehouse(path, read_only=True, journey_map=load_journey_map(DEMO_MAP)) as source:
        cur = source.cursor()
        try:
            return cur.execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans ORDER BY seq").to_arrow_table()
        finally:
            cur.close()


def test_spans_ingested_into_a_lake_read_as_on_the_file(demo_file: Path, postgres: Postgres, object_store: ObjectStore,
                                                        lake_env: dict[str, str], tmp_path: Path) -> None:
    spans = _spans(demo_file)
    journey_map = load_journey_map(DEMO_MAP)
    prefix, database = object_store.new_prefix(), postgres.new_database()
    with Warehouse(demo_file, read_only=True, journey_map=journey_map) as embedded, \
            Warehouse("ducklake:postgres:" + postgres.conninfo(database), data_path=prefix,
                      journey_map=journey_map) as lake:
        half = spans.num_rows // 2
        first = lake.ingest(spans.slice(0, half))
        assert first.accepted == half
        after_first = lake.query(f"SELECT max(snapshot_id) FROM ducklake_snapshots('{ALIAS}')")[0][0]
        published = lake.feed.generation()
        again = lake.ingest(spans.slice(0, half))  # the same request sent again (an exporter's retry)
        assert (again.accepted, again.duplicates) == (0, half)
        # A writer that died between its commit and confirming it in the catalog's index: the lake's own
        # ledger still says the request is stored.
        assert postgres.psql("UPDATE journeyscope_ledger SET committed = false", database).strip() == "UPDATE 1"
        assert lake.ingest(spans.slice(0, half)).accepted == 0
        assert lake.feed.generation() == published  # nothing stored, nothing published
        # A retry queued behind its own first try lands in the same group commit, another request between them
        # (the ledger check before the commit sees neither copy): each stored once, a ledger row each.
        request, other = lake.prepare(spans.slice(half, 100)), lake.prepare(spans.slice(half + 100))
        rest = lake.ingest(PreparedBatch.combine([request, other, request]))
        assert (rest.accepted, rest.duplicates) == (spans.num_rows - half, 100)
        assert lake.query("SELECT count(*), sum(spans) FROM ingest_ledger")[0] == (3, spans.num_rows)
        assert lake.query(f"SELECT count(*) FROM spans AT (VERSION => {after_first})")[0][0] == half
        assert lake.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")[0] == (
            spans.num_rows, spans.num_rows)
        assert _visits(lake) == _visits(embedded)
        assert lake.summary() == embedded.summary()
        assert funnel(lake) == funnel(embedded)
        # The change feed on the lake: every stored journey published as spans and as visits derived again,
        # and a consumer's position kept (in the catalog database, beside the feed's head).
        batch = lake.feed.read(0, frozenset({SPANS, VISITS}))
        assert batch.complete and batch.upto == lake.feed.generation() > published
        by_kind = {kind: set().union(*(c.journeys or () for c in batch.changes if c.kind == kind))
                   for kind in (SPANS, VISITS)}
        stored_journeys = {j for j in spans["journey_id"].to_pylist() if j is not None}
        assert by_kind[SPANS] == stored_journeys
        assert by_kind[VISITS] == {r[0] for r in lake.query("SELECT DISTINCT journey_id FROM stage_visits")}
        lake.feed.record("test-consumer", published)
        lake.feed.record("test-consumer", batch.upto)
        assert lake.feed.position("test-consumer") == batch.upto
        assert not lake.feed.read(batch.upto, frozenset({SPANS, VISITS}))
    stored = object_store.objects(prefix)
    assert stored and all(path.endswith(".parquet") for path in stored)
    # `journeyscope evaluate` scores the lake as it scores the file: the same results.
    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo_file, copy)
    scored = {}
    for db in (str(copy), "ducklake:postgres:" + postgres.conninfo(database)):
        done = subprocess.run([sys.executable, "-m", "journeyscope", "evaluate", "--db", db, "--workers", "0"],
                              capture_output=True, text=True, env=os.environ)
        assert done.returncode == 0, done.stderr
        with Warehouse(db, read_only=True, journey_map=journey_map) as warehouse:
            scored[db] = warehouse.query("SELECT journey_id, stage, visit, evaluator, score, passed, reason "
                                         "FROM evaluations ORDER BY ALL")
    file_scores, lake_scores = scored.values()
    assert file_scores and lake_scores == file_scores


def test_a_file_converts_into_a_lake_that_answers_the_same(demo_file: Path, postgres: Postgres,
                                                           object_store: ObjectStore, lake_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    url = _lake_url(postgres)
    prefix = object_store.new_prefix()
    env = {**os.environ, "JOURNEYSCOPE_MAP": str(DEMO_MAP)}
    done = subprocess.run([sys.executable, "-m", "journeyscope", "lake", "convert", "--from", str(demo_file),
                           "--db", url, "--data-path", prefix], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "converted" in done.stdout
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(demo_file, read_only=True, journey_map=journey_map) as embedded, \
            Warehouse(url, read_only=True, journey_map=journey_map) as lake:
        assert lake.stage_visits() == embedded.stage_visits()  # copied as they are, span numbers too
        assert funnel(lake) == funnel(embedded)
        assert lake.query("SELECT count(*) FROM spans") == embedded.query("SELECT count(*) FROM spans")
    again = subprocess.run([sys.executable, "-m", "journeyscope", "lake", "convert", "--from", str(demo_file),
                            "--db", url, "--data-path", prefix], capture_output=True, text=True, env=env, timeout=240)
    assert again.returncode == 1
    assert "already holds spans" in again.stderr and "Traceback" not in again.stderr


def _race(url: str, prefix: str, env: dict[str, str], batches: list[pa.Table], start: Any) -> int:
    os.environ.update(env)
    with Warehouse(url, data_path=prefix, journey_map=load_journey_map(DEMO_MAP)) as lake:
        start.wait()
        return sum(lake.ingest(batch, update_visits=False).accepted for batch in batches)


@pytest.mark.slow
def test_two_writers_racing_with_the_same_batches_store_each_once(demo_file: Path, postgres: Postgres,
                                                                  object_store: ObjectStore,
                                                                  lake_env: dict[str, str]) -> None:
    spans = _spans(demo_file)
    batches = [spans.slice(i, 150) for i in range(0, spans.num_rows, 150)]
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    Warehouse(url, data_path=prefix).close()  # created once, so both writers open an existing lake
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            accepted = pool.starmap(_race, [(url, prefix, lake_env, batches, start),
                                            (url, prefix, lake_env, list(reversed(batches)), start)])
    assert sum(accepted) == spans.num_rows  # every batch accepted by exactly one writer
    with Warehouse(url, journey_map=load_journey_map(DEMO_MAP)) as lake:
        assert lake.query("SELECT count(*), count(DISTINCT (trace_id, span_id)), count(DISTINCT seq) FROM spans")[0] \
            == (spans.num_rows,) * 3
        assert lake.query("SELECT count(*) FROM ingest_ledger")[0][0] == len(batches)
        lake.update_visits()  # the backlog the writers left, derived as a deriving process does
        with Warehouse(demo_file, read_only=True, journey_map=load_journey_map(DEMO_MAP)) as embedded:
            assert _visits(lake) == _visits(embedded)


def _open_and_ingest(url: str, prefix: str, env: dict[str, str], batch: pa.Table, start: Any) -> int:
    os.environ.update(env)
    start.wait()  # both open the empty catalog at the same moment
    with Warehouse(url, data_path=prefix, journey_map=load_journey_map(DEMO_MAP)) as lake:
        return lake.ingest(batch, update_visits=False).accepted


@pytest.mark.slow
def test_two_writers_opening_an_empty_catalog_at_once_both_migrate_it(demo_file: Path, postgres: Postgres,
                                                                       object_store: ObjectStore,
                                                                       lake_env: dict[str, str]) -> None:
    from journeyscope.warehouse.schema import SCHEMA_VERSION

    spans = _spans(demo_file)
    halves = [spans.slice(0, spans.num_rows // 2), spans.slice(spans.num_rows // 2)]
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            accepted = pool.starmap(_open_and_ingest, [(url, prefix, lake_env, half, start) for half in halves])
    assert accepted == [half.num_rows for half in halves]
    with Warehouse(url, read_only=True, journey_map=load_journey_map(DEMO_MAP)) as lake:
        assert lake.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert lake.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")[0] == (spans.num_rows,) * 2
        tables = lake.query("SELECT table_name, count(*) FROM information_schema.tables "
                            "WHERE table_catalog = 'js_lake' GROUP BY 1 HAVING count(*) > 1")
        assert tables == []  # every table made once


def test_stage_visit_upkeep_commits_on_its_first_try_while_ingest_commits_into_it(
        demo_file: Path, postgres: Postgres, object_store: ObjectStore, lake_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckLake refuses a commit that deletes from a table another transaction inserted into since it began: the
    upkeep transaction deletes only derived rows (visits, first spans), which receivers never insert. A receiver
    committing inside the upkeep neither waits for it nor makes it try again, and the journeys it stored stay due
    (after upkeep's position on the change feed) for the next upkeep, which derives the same visits as the file."""
    import threading

    from journeyscope.warehouse import store, visits

    spans = _spans(demo_file)
    half = spans.num_rows // 2
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    journey_map = load_journey_map(DEMO_MAP)
    tries: list[threading.Thread] = []
    real = visits.update_due

    with Warehouse(url, data_path=prefix, journey_map=journey_map) as receiver, \
            Warehouse(url, journey_map=journey_map) as upkeep, \
            Warehouse(demo_file, read_only=True, journey_map=journey_map) as embedded:
        receiver.ingest(spans.slice(0, half), update_visits=False)

        def update_due(cur: Any, *args: Any, **kwargs: Any) -> None:
            # the upkeep transaction has read its snapshot; a receiver commits meanwhile
            cur.execute("SELECT count(*) FROM stage_visits").fetchall()
            ingest = threading.Thread(target=receiver.ingest, args=(spans.slice(half),),
                                      kwargs={"update_visits": False})
            tries.append(ingest)
            ingest.start()
            ingest.join(60)
            assert not ingest.is_alive()  # committed while the upkeep's transaction was open
            real(cur, *args, **kwargs)

        monkeypatch.setattr(store._visits, "update_due", update_due)
        derived = upkeep.update_visits()
        monkeypatch.undo()
        assert len(tries) == 1  # one try: the receiver's commit did not refuse it
        first_half = {j for j in spans.slice(0, half)["journey_id"].to_pylist() if j is not None}
        second_half = {j for j in spans.slice(half)["journey_id"].to_pylist() if j is not None}
        assert set(derived) == first_half
        assert upkeep.visits_due() == len(second_half)  # the receiver's journeys, still due
        assert set(upkeep.update_visits()) == second_half
        assert upkeep.visits_due() == 0
        assert upkeep.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans")[0] == (
            spans.num_rows, spans.num_rows)
        assert _visits(upkeep) == _visits(embedded)


def test_a_lake_left_with_a_visit_backlog_table_is_upgraded_with_every_visit_derived(
        demo_file: Path, postgres: Postgres, object_store: ObjectStore, lake_env: dict[str, str]) -> None:
    """Schema 17 kept upkeep's backlog in a lake table; upkeep now follows the change feed. A lake left with its
    journeys in that backlog opens (migrating, in one lake transaction) with the table gone, every visit derived as
    the file derives it, and nothing due."""
    spans = _spans(demo_file)
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(url, data_path=prefix, journey_map=journey_map) as lake:
        lake.ingest(spans, update_visits=False)
        cur = lake.cursor()
        try:  # as journeyscope 17 left it: a backlog table holding the journeys, changes without a first seq
            cur.execute("CREATE TABLE visits_pending (journey_id VARCHAR NOT NULL, first_seq BIGINT)")
            cur.execute("INSERT INTO visits_pending SELECT journey_id, min(seq) FROM spans GROUP BY 1")
            cur.execute("ALTER TABLE changes DROP COLUMN first_seq")
            cur.execute("UPDATE meta SET value = '17' WHERE key = 'schema_version'")
        finally:
            cur.close()
    with Warehouse(url, data_path=prefix, journey_map=journey_map) as lake, \
            Warehouse(demo_file, read_only=True, journey_map=journey_map) as embedded:
        assert lake.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'visits_pending'") \
            == [(0,)]
        assert _visits(lake) == _visits(embedded)
        assert lake.visits_due() == 0


def test_a_commit_that_began_before_another_writers_commit_retries_at_once(postgres: Postgres,
                                                                            tmp_path: Path) -> None:
    """A lake transaction takes the snapshot id after the newest it saw, so one that began before another writer
    committed loses that id and DuckLake tries it again under the next. Such a commit goes through, its rows and
    the other's both stored, and the lake's connections ask DuckLake to try again after a few milliseconds instead
    of its default 100 ms: with two receivers, or a receiver's upkeep beside its writer, nearly every commit
    begins before another ends, and the default pause held each of them up (the README's lake benchmarks)."""
    from journeyscope.warehouse import lake

    location = lake.LakeLocation.parse(_lake_url(postgres), str(tmp_path / "data"))
    first, second = lake.connect(location), lake.connect(location)
    try:
        for con in (first, second):
            assert con.execute("SELECT current_setting('ducklake_retry_wait_ms'), "
                               "current_setting('ducklake_retry_backoff')").fetchone() == (
                lake.COMMIT_RETRY_WAIT_MS, lake.COMMIT_RETRY_BACKOFF)
        first.execute("CREATE TABLE t (writer INTEGER)")
        first.execute("BEGIN")
        first.execute("INSERT INTO t VALUES (1)")
        second.execute("INSERT INTO t VALUES (2)")  # committed while the first transaction is open
        first.execute("COMMIT")
        assert first.execute("SELECT writer FROM t ORDER BY writer").fetchall() == [(1,), (2,)]
    finally:
        first.close()
        second.close()


def _parquet_rows_holding(objects: dict[str, bytes], needle: str) -> int:
    """Rows of the stored Parquet objects (read from their bytes) with ``needle`` in any column."""
    import io

    import pyarrow.parquet as pq

    found = 0
    for path, content in objects.items():
        if not path.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(content))
        for column in table.column_names:
            found += sum(1 for value in table[column].to_pylist() if needle in str(value))
    return found


def test_forget_removes_a_customer_from_the_stored_objects(demo_file: Path, postgres: Postgres,
                                                           object_store: ObjectStore,
                                                           lake_env: dict[str, str]) -> None:
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(url, data_path=prefix, journey_map=journey_map) as lake:
        spans = _spans(demo_file)
        for start in range(0, spans.num_rows, 400):
            lake.ingest(spans.slice(start, 400))
        customer, others = lake.query("SELECT customer_id, (SELECT count(DISTINCT customer_id) FROM spans) "
                                      "FROM spans WHERE customer_id IS NOT NULL LIMIT 1")[0]
        journeys = [r[0] for r in lake.query("SELECT DISTINCT journey_id FROM spans WHERE customer_id = ?",
                                             [customer])]
    assert _parquet_rows_holding(object_store.objects(prefix), customer) > 0  # the check sees a stored customer
    done = subprocess.run([sys.executable, "-m", "journeyscope", "forget", "--customer", customer, "--db", url],
                          capture_output=True, text=True, env={**os.environ, "JOURNEYSCOPE_MAP": str(DEMO_MAP)},
                          timeout=240)
    assert done.returncode == 0, done.stderr
    assert "verified: none of" in done.stdout
    stored = object_store.objects(prefix)
    for needle in [customer, *journeys]:
        assert _parquet_rows_holding(stored, needle) == 0, needle
    with Warehouse(url, read_only=True, journey_map=journey_map) as lake:
        assert lake.query("SELECT count(DISTINCT customer_id) FROM spans")[0][0] == others - 1
        assert lake.query("SELECT count(*) FROM stage_visits WHERE customer_id = ?", [customer])[0][0] == 0


def _files(lake: Warehouse, table: str) -> int:
    """The Parquet files a lake's table reads now (its rows inlined in the catalog are in none)."""
    return int(lake.query(f"SELECT file_count FROM ducklake_table_info('{ALIAS}') WHERE table_name = '{table}'")[0][0])


def test_compaction_merges_files_without_breaking_a_running_query(demo_file: Path, postgres: Postgres,
                                                                  object_store: ObjectStore,
                                                                  lake_env: dict[str, str]) -> None:
    from journeyscope.warehouse.lake_upkeep import compact

    url, prefix = _lake_url(postgres), object_store.new_prefix()
    journey_map = load_journey_map(DEMO_MAP)
    spans = _spans(demo_file)
    with Warehouse(url, data_path=prefix, journey_map=journey_map) as lake:
        batches = [spans.slice(start, 300) for start in range(0, spans.num_rows, 300)]
        for batch in batches[:-1]:
            lake.ingest(batch, update_visits=False)
        with Warehouse(url, read_only=True, journey_map=journey_map) as reader:
            query = reader.cursor()
            query.execute("BEGIN TRANSACTION")  # a long query: it reads the snapshot it began on
            seen = query.execute("SELECT count(*), sum(hash(span_id)) FROM spans").fetchone()
            ledger = "SELECT count(*), sum(hash(batch_key)) FROM ingest_ledger"  # a row a commit: kept inlined
            seen_ledger = query.execute(ledger).fetchone()
            lake.ingest(batches[-1], update_visits=False)
            assert _files(lake, "spans") == len(batches) and _files(lake, "ingest_ledger") == 0
            compact(lake)  # snapshots younger than the margin stay, and their files
            assert _files(lake, "spans") == 1
            # the ledger's inlined rows moved into a file: a read of it no longer fetches them from the catalog
            assert _files(lake, "ingest_ledger") == 1 and lake.query(ledger)[0][0] == len(batches)
            assert query.execute("SELECT count(*), sum(hash(span_id)) FROM spans").fetchone() == seen
            assert query.execute(ledger).fetchone() == seen_ledger
            query.execute("COMMIT")
            query.close()
        expired = compact(lake, margin_s=0)
        assert expired.snapshots_after < expired.snapshots_before
        assert lake.query("SELECT count(*), count(DISTINCT span_id) FROM spans")[0] == (spans.num_rows,) * 2
    done = subprocess.run([sys.executable, "-m", "journeyscope", "lake", "compact", "--db", url],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("compacted the lake: ")


def test_catalog_going_away_is_unavailable_and_ingest_resumes_when_it_returns(
        demo_file: Path, object_store: ObjectStore, lake_env: dict[str, str], services_folder: Path) -> None:
    from support.services import PG_BIN, _run_as_postgres, start_postgres

    from journeyscope.warehouse.lake import WarehouseUnavailable

    parent = services_folder / "stopped-catalog"
    parent.mkdir()
    own = start_postgres(parent)  # this test stops its catalog: not the session's
    try:
        spans = _spans(demo_file)
        url = "ducklake:postgres:" + own.conninfo()
        with Warehouse(url, data_path=object_store.new_prefix(), journey_map=load_journey_map(DEMO_MAP)) as lake:
            assert lake.ingest(spans.slice(0, 200)).accepted == 200
            data = str(own.folder / "data")
            _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", data, "-m", "fast", "stop")
            with pytest.raises(WarehouseUnavailable):
                lake.ingest(spans.slice(200, 200))
            _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", data, "-l", str(own.folder / "log"), "-o",
                             f"-c listen_addresses=127.0.0.1 -p {own.port} -k {own.folder}", "-w", "start")
            assert lake.ingest(spans.slice(200, 200)).accepted == 200  # the batch refused before, sent again
            assert lake.ingest(spans.slice(0, 200)).accepted == 0
            assert lake.query("SELECT count(*), count(DISTINCT span_id) FROM spans")[0] == (400, 400)
    finally:
        own.stop()


def test_retention_deletes_old_journeys_from_a_lake_and_compacts_it(demo_file: Path, postgres: Postgres,
                                                                   object_store: ObjectStore,
                                                                   lake_env: dict[str, str]) -> None:
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(url, data_path=prefix, journey_map=journey_map) as lake:
        lake.ingest(_spans(demo_file))
        ends = lake.query("SELECT journey_id, max(end_time) FROM spans GROUP BY journey_id ORDER BY 2")
    # an age between the oldest and the newest journey's end: some go, some stay
    middle = ends[len(ends) // 2][1]
    import datetime as dt

    days = (dt.datetime.now() - middle).total_seconds() / 86400
    done = subprocess.run([sys.executable, "-m", "journeyscope", "retention", "--older-than", f"{days:.3f}d",
                           "--db", url], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "JOURNEYSCOPE_MAP": str(DEMO_MAP)})
    assert done.returncode == 0, done.stderr
    assert "compacted the lake" in done.stdout
    with Warehouse(url, read_only=True, journey_map=journey_map) as lake:
        left = lake.query("SELECT count(DISTINCT journey_id), min(end_time) FROM spans")[0]
    assert 0 < left[0] < len(ends)


def test_one_process_at_a_time_runs_the_monitors(postgres: Postgres, lake_env: dict[str, str],  # noqa: F811
                                                  object_store: ObjectStore, tmp_path: Path) -> None:  # noqa: F811
    """Two receivers of one lake both run monitors: a pass while another process's pass runs is skipped, so
    alerts are read and recorded by one process at a time (never opened, nor delivered, twice)."""
    import asyncio

    from journeyscope.server.monitoring import MonitorService
    from journeyscope.server.webhooks import WebhookSender
    from journeyscope.warehouse.writer import Writer

    monitors = tmp_path / "monitors.toml"
    monitors.write_text('version = "one"\n[[monitors]]\nname = "c"\nsignal = "completion"\nstage = "*"\n')
    url = _lake_url(postgres)
    loop = asyncio.new_event_loop()
    with Warehouse(url, data_path=object_store.new_prefix(), journey_map=None) as first, \
            Warehouse(url, journey_map=None) as second:
        writer = Writer(second)
        service = MonitorService(second, writer, str(monitors), WebhookSender(second, loop))
        try:
            with first.monitoring() as ours:  # the other receiver's pass, under way
                assert ours
                assert service.run_pass() == [] and service.passes == 0
                with second.monitoring() as theirs:
                    assert not theirs
            service.run_pass()
            assert service.passes == 1
        finally:
            service.stop()
            writer.shutdown()
            loop.close()

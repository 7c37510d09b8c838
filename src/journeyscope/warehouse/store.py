"""``Warehouse``: the DuckDB file every part of journeyscope reads and writes.

One process writes a warehouse file (DuckDB allows one writer); inside that
process span writes go through :meth:`Warehouse.ingest`; span appends and
stage-visit upkeep each hold a lock of their own (they may overlap), every other
write holds both, and reads use their own cursors. Other processes read through the server's
API or open the file read-only when no writer holds it (docs/contracts.md, single
writer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeyscope.errors import WarehouseError
from journeyscope.warehouse import feed as _feed
from journeyscope.warehouse.db_errors import first_line, warehouse_error
from journeyscope.warehouse import visits as _visits
from journeyscope.warehouse import visit_feed
from journeyscope.warehouse.journey_map import JourneyMap, load_journey_map
from journeyscope.warehouse.progress import LARGE_VISITS, Report, long_step
from journeyscope.warehouse.partition import Partition
from journeyscope.warehouse import lake as _lake
from journeyscope.warehouse.dialect import insert_ignoring, set_meta
from journeyscope.warehouse.feedback_events import FEEDBACK_KEY, STORE_FEEDBACK, may_hold_feedback
from journeyscope.warehouse.redaction import PrivacyHook
from journeyscope.warehouse.rows import SPAN_SCHEMA, SpanRows
from journeyscope.warehouse.schema import current_version, migrate, SCHEMA_VERSION

from journeyscope.privacy.report import RedactionReport

if TYPE_CHECKING:
    from journeyscope.privacy import PrivacyPolicy

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingest call stored: new spans, and spans already stored (a retried batch)."""

    accepted: int
    duplicates: int

    @property
    def received(self) -> int:
        return self.accepted + self.duplicates


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Spans (and GenAI log records) redacted and ready to store, with what was redacted:
    :meth:`Warehouse.prepare`'s (or :meth:`Warehouse.prepare_logs`') answer.

    Redaction is CPU work that needs no lock, so a receiver prepares each request's
    batch on its own thread and the single writer only inserts.
    """

    table: pa.Table
    report: RedactionReport
    logs: pa.Table | None = None  #: rows of ``log_records`` (:data:`~journeyscope.warehouse.log_records.LOG_SCHEMA`)
    #: On a lake, each request's batch key (:func:`~journeyscope.warehouse.lake.batch_key`) with its span and
    #: log-record rows, in order: the ingest ledger stores a retried request once even when combined differently.
    parts: tuple[tuple[str, int, int], ...] = ()

    @property
    def rows(self) -> int:
        """Spans and log records: what the writer's queue is bounded by."""
        return self.table.num_rows + (self.logs.num_rows if self.logs is not None else 0)

    @staticmethod
    def combine(batches: list[PreparedBatch]) -> PreparedBatch:
        """Several requests' batches as one (group commit), rows and report rows in order."""
        if len(batches) == 1:
            return batches[0]
        report = RedactionReport([row for b in batches for row in b.report.rows], batches[0].report.notes)
        logs = [b.logs for b in batches if b.logs is not None and b.logs.num_rows]
        return PreparedBatch(pa.concat_tables([b.table for b in batches]), report,
                             pa.concat_tables(logs) if logs else None, tuple(p for b in batches for p in b.parts))



class _LakeConflict(Exception):
    """A lake commit lost to a concurrent commit more often than DuckLake retries by itself: try it again whole."""


def _fresh_parts(prepared: PreparedBatch, stored: set[str]) -> list[int]:
    """Which requests of a batch to store (their indexes in ``parts``): those whose keys are not ``stored``, each
    key once (a request sent again while its first copy still waited in the writer's queue is grouped into the
    same commit)."""
    seen = set(stored)
    fresh = []
    for index, (key, _, _) in enumerate(prepared.parts):
        if key not in seen:
            seen.add(key)
            fresh.append(index)
    return fresh


def _without_parts(prepared: PreparedBatch, fresh: list[int]) -> tuple[pa.Table, pa.Table | None, RedactionReport]:
    """The batch's spans, log records and redaction report of the ``fresh`` requests only (:func:`_fresh_parts`)."""
    logs = prepared.logs if prepared.logs is not None and prepared.logs.num_rows else None
    if len(fresh) == len(prepared.parts):
        return prepared.table, logs, prepared.report
    span_mask: list[bool] = []
    log_mask: list[bool] = []
    keep = set(fresh)
    for index, (_, spans, records) in enumerate(prepared.parts):
        span_mask += [index in keep] * spans
        log_mask += [index in keep] * records
    table = prepared.table.filter(pa.array(span_mask, pa.bool_()))
    if logs is not None:
        logs = logs.filter(pa.array(log_mask, pa.bool_()))
    kept = set(zip(table["trace_id"].to_pylist(), table["span_id"].to_pylist()))
    if logs is not None:
        kept |= set(zip(logs["trace_id"].to_pylist(), logs["span_id"].to_pylist()))
    report = RedactionReport([r for r in prepared.report.rows if (r[0], r[1]) in kept], prepared.report.notes)
    return table, logs if logs is not None and logs.num_rows else None, report


def _open_error(path: str, exc: duckdb.Error) -> WarehouseError:
    if isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower():
        return WarehouseError(
            f"{path} is open for writing in another process (is 'journeyscope serve' running?); "
            "read through the server's API or stop it first"
        )
    return warehouse_error(exc, f"cannot open warehouse {path}")


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass  # nothing to roll back: the transaction never began, or DuckDB already ended it


_LOGGED_JOURNEYS = ("SELECT DISTINCT sp.journey_id FROM spans sp SEMI JOIN incoming_logs l "
                    "ON sp.trace_id = l.trace_id AND sp.span_id = l.span_id WHERE sp.journey_id IS NOT NULL")
#: The staged spans that incoming GenAI log records belong to (their visits count the records' turns).
_LOGGED_STAGED = ("SELECT sp.journey_id, sp.seq FROM spans sp SEMI JOIN incoming_logs l "
                  f"ON sp.trace_id = l.trace_id AND sp.span_id = l.span_id WHERE {_visits.STAGED}")


def _first_seq(numbered: pa.Table) -> int | None:
    """The lowest ``seq`` of a numbered batch (read off the Arrow column: no query)."""
    seq = pc.min(numbered["seq"]).as_py()
    return None if seq is None else int(seq)


def _journeys_of(cur: duckdb.DuckDBPyConnection, spans: pa.Table, logged: bool) -> set[str]:
    """The journeys a batch touched (what its commit publishes): its spans' (read off the Arrow table, no
    query) and, with log records (``incoming_logs``), those of the spans they belong to."""
    journeys = set(pc.unique(spans["journey_id"]).drop_null().to_pylist())
    if logged:
        journeys.update(r[0] for r in cur.execute(_LOGGED_JOURNEYS).fetchall())
    return journeys


class Tx:
    """One write transaction: its cursor, and what it changed (published with its commit)."""

    __slots__ = ("cur", "changes", "first_seq")

    def __init__(self, cur: duckdb.DuckDBPyConnection) -> None:
        self.cur = cur
        self.changes: dict[str, set[str] | None] = {}
        #: The lowest ``seq`` whose journeys' visits it may change (:attr:`feed.Change.first_seq`).
        self.first_seq: int | None = None

    def stored_from(self, seq: int | None) -> None:
        """Note that it stored spans from ``seq`` on (or GenAI log records of spans from there): their journeys'
        visits are due for upkeep from the lowest such ``seq`` on (``None``: nothing)."""
        if seq is not None:
            self.first_seq = seq if self.first_seq is None else min(self.first_seq, seq)

    def publish(self, kind: str, journeys: list[str] | set[str] | None) -> None:
        """Say this transaction changed ``journeys`` (``None``: any journey) in ``kind`` (a :mod:`feed` kind)."""
        if journeys is not None and not journeys:
            return
        held = self.changes.get(kind, set())
        self.changes[kind] = None if journeys is None or held is None else held | set(journeys)


class Warehouse:
    """A journeyscope warehouse in one DuckDB file (or ``":memory:"``).

    ``read_only=True`` opens an existing file for reading; a missing file is an
    error then, never an empty new warehouse in the wrong place.

    ``journey_map`` orders stages for visit outcomes (default: ``$JOURNEYSCOPE_MAP``
    or ``./journeys.toml`` when present, else inferred order). A writable
    warehouse opened with a different map than its visits were derived with
    derives them again. ``clock`` (nanoseconds since the epoch) is "now" for
    the idle timeout; tests pass a fixed one. ``privacy`` is the redaction
    policy ingest applies (default: :func:`journeyscope.privacy.load_policy`,
    on by default); a writable warehouse records it, and audits a change.
    ``upkeep_journeys`` bounds the journeys one stage-visit upkeep transaction derives again.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        journey_map: JourneyMap | None = None,
        clock: Callable[[], int] = time.time_ns,
        privacy: PrivacyPolicy | None = None,
        upkeep_journeys: int = _visits.UPKEEP_JOURNEYS,
        data_path: str | None = None,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):  # str() of anything else names a file after its repr
            raise TypeError(f"Warehouse needs a file path or ':memory:', got {type(path).__name__}")
        self.path = str(path)
        self.lake = _lake.LakeLocation.parse(self.path, data_path) if _lake.is_lake(self.path) else None
        self.upkeep_journeys = upkeep_journeys
        self.read_only = read_only
        self.clock = clock
        self.journey_map = journey_map if journey_map is not None else load_journey_map()
        if self.path != ":memory:" and self.lake is None:
            target = Path(self.path)
            if read_only and not target.exists():
                raise WarehouseError(
                    f"no warehouse at {self.path}: create one with 'journeyscope demo' or 'journeyscope import'"
                )
            if not read_only and not target.parent.exists():
                raise WarehouseError(f"cannot create warehouse {self.path}: folder {target.parent} does not exist")
        # A lake's writers share its catalog database: advisory locks for ingest and for upkeep (one connection
        # each, so an append and an upkeep of this process never wait for each other) and the seq numbers.
        self._catalog = _lake.Catalog(self.lake) if self.lake is not None else None
        self._upkeep_catalog = _lake.Catalog(self.lake) if self.lake is not None else None
        # The change feed's own connection: its lock is held across each publishing commit.
        self._feed_catalog = _lake.Catalog(self.lake) if self._shared_seq() else None
        # The monitors' lock (held for a whole pass, on a connection of its own; connects on first use).
        self._monitors_catalog = _lake.Catalog(self.lake) if self._shared_seq() else None
        # A writer makes and migrates a lake's schema under the catalog's schema lock, from its ATTACH (which
        # makes DuckLake's own tables in an empty catalog) to the schema's last migration: two processes
        # starting at once on an empty catalog take turns, and the second finds it made.
        try:
            with contextlib.ExitStack() as schema_lock:
                if self._catalog is not None and not read_only:
                    schema_lock.enter_context(self._catalog.locked([_lake.SCHEMA_LOCK]))
                self._open(read_only, privacy)
        except BaseException:
            for catalog in (self._catalog, self._upkeep_catalog, self._feed_catalog):
                if catalog is not None:
                    catalog.close()
            raise
        if not read_only:
            self._sync_visits_with_map()

    def _open(self, read_only: bool, privacy: PrivacyPolicy | None) -> None:
        """Connect, check or migrate the schema, record the privacy policy (the caller holds the schema lock)."""
        try:
            if self.lake is not None:
                self._con = _lake.connect(self.lake, read_only=read_only)
            else:
                self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise _open_error(self.path, exc) from None
        # A query over two seconds would draw DuckDB's progress bar on the process's stdout: a server's, where
        # its ready line and logs go, or a command's JSON.
        self._con.execute("SET enable_progress_bar = false")
        # The connection itself runs no statement after this setup: a streaming result left half-read on
        # it (``execute(...).fetchone()`` on a table scan) keeps its autocommit transaction open, and once
        # upkeep deletes visit rows that transaction can still see, DuckDB refuses every CHECKPOINT for as
        # long as the process lives. Every statement runs on a cursor that is closed after it (:meth:`query`).
        # Two write locks, so span appends and stage-visit upkeep (separate DuckDB transactions on separate
        # tables) can run at once on two cores; every other write takes both (:meth:`_exclusive`).
        self._visits_lock = threading.Lock()
        self._append_lock = threading.Lock()
        # What the last upkeep round saw of the other upkeeps' positions, and the overlaps already logged.
        self._upkeep_positions_seen: tuple[str, dict[str, int]] | None = None
        self._overlap_warned: set[tuple[str, str]] = set()
        setup = self.cursor()
        try:
            if read_only:
                found = current_version(setup)
                if found != SCHEMA_VERSION:
                    raise WarehouseError(
                        f"{self.path} has schema version {found}, this journeyscope reads {SCHEMA_VERSION}: "
                        "open it once for writing (e.g. 'journeyscope import' or 'serve') to migrate it"
                    )
            else:
                self._migrate(setup)
            if self._shared_seq():
                self._next_seq = 0  # taken from the catalog per batch
            else:
                row = setup.execute("SELECT coalesce(max(seq), 0) FROM spans").fetchall()
                self._next_seq = int(row[0][0]) + 1 if row else 1
            self.feed: _feed.ChangeFeed
            if self._feed_catalog is not None:  # many processes: generations and positions in PostgreSQL
                self.feed = _feed.LakeFeed(self._feed_catalog, self.cursor, read_only=read_only)
            else:
                self.feed = _feed.DuckDBFeed(self._con, cursor=self.cursor)
            self.privacy: PrivacyHook | None = None
            if not read_only:
                self.privacy = PrivacyHook(privacy)  # a bad policy file fails here, before any write
                self.privacy.record_policy(setup)
        except duckdb.Error as exc:
            setup.close()
            self._con.close()
            raise _open_error(self.path, exc) from None
        except BaseException:
            setup.close()
            self._con.close()
            raise
        setup.close()

    def _long_step(self, description: str) -> contextlib.AbstractContextManager[Report | None]:
        """:func:`long_step` on a file large enough for the step to take a while; on a small one, silence."""
        return long_step(description) if self._is_large() else contextlib.nullcontext()

    def _is_large(self) -> bool:
        """Whether a schema upgrade or a full re-derivation will take long enough to report (stderr)."""
        has_visits = self.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stage_visits' AND table_schema = 'main'"
        )
        if not has_visits or not has_visits[0][0]:
            return False
        row = self.query("SELECT count(*) FROM stage_visits")
        return bool(row) and int(row[0][0]) >= LARGE_VISITS

    def _migrate(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Bring the file's schema up to date, saying so on stderr when that takes long."""
        found = current_version(cur)
        if found == 0 or found >= SCHEMA_VERSION:  # a new file, or nothing to do
            migrate(cur)
            return
        with self._long_step(f"upgrading {self.path} from schema {found} to {SCHEMA_VERSION}"):
            migrate(cur)

    def _sync_visits_with_map(self) -> None:
        """Derive all visits again when the map they were derived with is not this one."""
        digest = self.journey_map.digest()
        row = self.query("SELECT value FROM meta WHERE key = 'journey_map_digest'")
        if row and row[0][0] == digest:
            if not self._shared_seq():  # a lake's backlog is its deriving processes' to work off, by partition
                self.update_visits()  # journeys a crash left underived
            return
        with self._upkeep_lock(wait=True):
            self._rebuild_visits(digest)

    def _rebuild_visits(self, digest: str) -> None:
        row = self.query("SELECT value FROM meta WHERE key = 'journey_map_digest'")
        if row and row[0][0] == digest:  # another process of the lake did it meanwhile
            return
        upto = self.feed.generation()  # every commit up to it is in the transaction's snapshot
        with self.transaction("derive stage visits") as tx:
            with self._long_step(f"deriving the stage visits of {self.path} again (new schema or journey map)") as report:
                _visits.rebuild_visits(tx.cur, self.journey_map, self.clock(), report)
            set_meta(tx.cur, "journey_map_digest", digest)
            tx.publish(_feed.VISITS, None)
        self.feed.record(visit_feed.REBUILT_POSITION, upto)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._exclusive():
            try:
                if not self.read_only and self.lake is None:
                    self._con.execute("CHECKPOINT")
            finally:
                self._con.close()
                for catalog in (self._catalog, self._upkeep_catalog, self._feed_catalog, self._monitors_catalog):
                    if catalog is not None:
                        catalog.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file, with no write of this process under way (both write locks).

        Raises :class:`WarehouseError` when DuckDB refuses: a transaction is still open somewhere (a reader
        holding a snapshot that sees rows the checkpoint would drop). Nothing of this class leaves one open,
        so a refusal that repeats points at a reader that does. A lake has no write-ahead log to fold (its
        upkeep is :func:`journeyscope.warehouse.upkeep.compact`): nothing to do.
        """
        if self.read_only or self.lake is not None:
            return
        with self._exclusive():
            try:
                self.query("CHECKPOINT")
            except duckdb.Error as exc:
                raise warehouse_error(exc, f"cannot checkpoint {self.path}") from None

    def set_threads(self, threads: int) -> None:
        """Threads DuckDB runs each query on (the caller's plus ``threads - 1`` workers of its own)."""
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.query(f"SET threads = {int(threads)}")

    def set_checkpoint_threshold(self, size: str) -> None:
        """How large the write-ahead log grows before DuckDB checkpoints on its own (``"256MB"``)."""
        if self.read_only:
            return
        try:
            self.query(f"SET GLOBAL checkpoint_threshold = '{size.replace(chr(39), '')}'")
        except duckdb.Error as exc:
            raise warehouse_error(exc, f"cannot set checkpoint_threshold to {size!r}") from None

    def set_memory_limit(self, limit: str) -> None:
        """DuckDB's memory limit for this file's database (``"1GB"``, ``"512MB"``); a bad value is an error.

        Also lets DuckDB's allocator (jemalloc) hand freed memory back to the system from a background
        thread: otherwise it purges only as a side effect of later allocations, and what a large upkeep
        or checkpoint freed stayed resident, outside the limit (README, Measured: memory).
        """
        try:
            self.query("SET memory_limit = ?", [limit])
        except duckdb.Error as exc:
            raise warehouse_error(exc, f"invalid memory limit {limit!r}") from None
        self.query("SET allocator_background_threads = true")

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for a reader thread (DuckDB connections are not shared across threads)."""
        cur = self._con.cursor()
        if self.lake is not None:
            try:
                cur.execute(f"USE {_lake.ALIAS}")  # asks the catalog for its latest snapshot
            except duckdb.Error as exc:
                cur.close()
                raise warehouse_error(exc, f"cannot read {self.path}") from None
        return cur

    def _shared_seq(self) -> bool:
        """Whether span numbers come from the catalog (a lake in PostgreSQL: many writers), not ``max(seq)``."""
        return self.lake is not None and self.lake.conninfo is not None

    def _upkeep_lock(self, *, wait: bool) -> contextlib.AbstractContextManager[bool]:
        """On a PostgreSQL lake, the advisory lock that lets one process at a time derive stage visits."""
        if self._upkeep_catalog is None:
            return contextlib.nullcontext(True)
        return self._upkeep_catalog.locked([_lake.UPKEEP_LOCK], wait=wait)

    def monitoring(self) -> contextlib.AbstractContextManager[bool]:
        """Whether this process may run a monitors' pass now: on a PostgreSQL lake, which many receivers write,
        a try-lock in the catalog database (``False`` while another process's pass holds it: it records the
        alerts, this one skips); a file has one writer process (``True``). Alerts are read and recorded under it,
        so two processes never both open the same alert."""
        if self._monitors_catalog is None:
            return contextlib.nullcontext(True)
        return self._monitors_catalog.locked([_lake.MONITORS_LOCK], wait=False)

    # -- writing ---------------------------------------------------------------------
    def prepare(self, rows: SpanRows | pa.Table) -> PreparedBatch:
        """Redact a batch for :meth:`ingest`, on any thread, without the write lock.

        PII never reaches the file: every write path stores what this returns.
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        table = rows.to_table() if isinstance(rows, SpanRows) else rows
        assert self.privacy is not None
        redacted, report = self.privacy.redact(table)
        parts = ((_lake.batch_key(table, None), table.num_rows, 0),) if self.lake is not None else ()
        return PreparedBatch(redacted, report, None, parts)

    def prepare_logs(self, logs: pa.Table) -> PreparedBatch:
        """:meth:`prepare` for GenAI log records (a :data:`~journeyscope.warehouse.log_records.LOG_SCHEMA`
        table): redacted like spans (their turns, attributes, body and resource), stored by :meth:`ingest`."""
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        assert self.privacy is not None
        redacted, report = self.privacy.redact(logs)
        parts = ((_lake.batch_key(None, logs), 0, logs.num_rows),) if self.lake is not None else ()
        return PreparedBatch(SPAN_SCHEMA.empty_table(), report, redacted, parts)

    def ingest(self, rows: SpanRows | pa.Table | PreparedBatch, *, update_visits: bool = True,
               kinds: frozenset[str] = frozenset({_feed.SPANS})) -> IngestResult:
        """Store a batch of spans in one columnar insert; spans already stored are skipped.

        The storage side of the one write door (:class:`journeyscope.warehouse.writer.Writer` queues and
        groups batches for it; the importer and the in-process exporter call it directly). It returns once
        the batch is committed, with a change of each of ``kinds`` published for its journeys. ``rows`` not
        yet :meth:`prepare`-d are redacted first. The journeys it touched are marked for stage-visit
        upkeep in the same transaction; with ``update_visits`` (the default) their visits are derived
        again right away, else by the next :meth:`update_visits` (the server's derive loop).
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        prepared = rows if isinstance(rows, PreparedBatch) else self.prepare(rows)
        table, report = prepared.table, prepared.report
        if prepared.rows == 0:
            return IngestResult(0, 0)
        if self.lake is not None:
            accepted = self._ingest_lake(prepared, kinds)
            if update_visits:
                self.update_visits()
            return IngestResult(accepted, table.num_rows - accepted)
        with self._append_lock:
            batch = self._numbered(table)
            logs = self._numbered(prepared.logs) if prepared.logs is not None and prepared.logs.num_rows else None
            with self._transaction(f"cannot write to {self.path}") as tx:
                inserted = self._insert(tx, report, batch, logs)
                journeys = _journeys_of(tx.cur, table, logs is not None)
                for kind in kinds:
                    tx.publish(kind, journeys)
        accepted = int(inserted[0]) if inserted else 0
        if update_visits:
            self.update_visits()
        return IngestResult(accepted, table.num_rows - accepted)

    def _numbered(self, table: pa.Table) -> pa.Table:
        """``table`` with the next ``seq`` numbers (arrival order, shared by spans and log records) and the
        ingest time; the caller holds the append lock. On a PostgreSQL lake the numbers come from the catalog
        in blocks, unique across every writer (in order within a writer; writers commit out of order)."""
        n = table.num_rows
        if self._shared_seq() and n:
            assert self._catalog is not None
            starts = [self._catalog.next_seq(min(n - i, _lake.SEQ_BLOCK)) for i in range(0, n, _lake.SEQ_BLOCK)]
            seq = pa.array(np.concatenate([np.arange(s, s + min(n - i * _lake.SEQ_BLOCK, _lake.SEQ_BLOCK),
                                                     dtype=np.int64) for i, s in enumerate(starts)]))
        else:
            seq = pa.array(np.arange(self._next_seq, self._next_seq + n, dtype=np.int64))
            self._next_seq += n
        now = pa.array(np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(pa.timestamp("us"))
        return table.append_column("seq", seq).append_column("ingested_at", now)

    def _ingest_lake(self, prepared: PreparedBatch, kinds: frozenset[str]) -> int:
        """Store a batch on a lake exactly once, publishing ``kinds`` for its journeys; return the spans stored.

        Each request in the batch has a ledger row (its batch key) written in the batch's transaction, and an
        advisory lock on that key is held from the ledger check to the commit, so a retried request is
        stored once even when two receivers race with it. A commit that loses DuckLake's race for the next
        snapshot more often than DuckLake retries by itself is tried again whole, the ledger checked again.
        """
        assert self._catalog is not None and self.privacy is not None and self.lake is not None
        parts = list(prepared.parts)
        keys = sorted({key for key, _, _ in parts})
        locks = [_lake.batch_lock_key(key) for key in keys]
        with self._append_lock, self._catalog.locked(locks), self._catalog.locked([_lake.PENDING_LOCK], shared=True):
            done, unsure = self._catalog.claim_batches(keys)
            for attempt in range(_lake.CONFLICT_ATTEMPTS):
                try:
                    with self._transaction(f"cannot write to {self.lake.describe()}", conflicts=True) as tx:
                        cur = tx.cur
                        stored = done | _lake.stored_batches(cur, sorted(unsure))
                        indexes = _fresh_parts(prepared, stored)
                        table, logs, report = _without_parts(prepared, indexes)
                        fresh = [parts[i] for i in indexes]
                        if fresh:
                            numbered = self._numbered(table)
                            cur.register("incoming", numbered)
                            if logs is not None:
                                cur.register("incoming_logs", self._numbered(logs))
                            cur.execute("INSERT INTO spans BY NAME SELECT * FROM incoming")
                            tx.stored_from(_first_seq(numbered))
                            if may_hold_feedback(table):
                                cur.execute(f"INSERT INTO feedback {STORE_FEEDBACK}")
                            if logs is not None:
                                cur.execute("INSERT INTO log_records BY NAME SELECT * FROM incoming_logs")
                                tx.stored_from(_visits.first_staged_seq(cur, _LOGGED_STAGED))
                            self.privacy.log(cur, report, retried=False)
                            _lake.record_batches(cur, fresh)
                            journeys = _journeys_of(cur, table, logs is not None)
                            for kind in kinds:
                                tx.publish(kind, journeys)
                    self._catalog.confirm_batches(keys)
                    return table.num_rows if fresh else 0
                except _LakeConflict as exc:
                    if attempt + 1 == _lake.CONFLICT_ATTEMPTS:
                        raise _lake.WarehouseUnavailable(f"cannot commit to {self.lake.describe()}: {exc}") from None
                    time.sleep(_lake.conflict_pause(attempt))
        raise AssertionError("unreachable")

    def _insert(self, tx: Tx, report: RedactionReport, batch: pa.Table,
                logs: pa.Table | None) -> tuple[Any, ...] | None:
        """Insert ``incoming`` (and ``incoming_logs``) in the transaction; return the inserted-span count
        (a one-tuple).

        A plain ``INSERT`` first: the primary key still refuses a stored span, but
        without ``OR IGNORE``'s per-row conflict handling, which costs about as
        much again as the insert itself. Only a batch that holds an already stored
        span (a retry, a re-import) pays for ``INSERT OR IGNORE``, on a second try.
        """
        cur = tx.cur

        def register() -> None:  # a registration ends with the transaction it was made in
            cur.register("incoming", batch)
            if logs is not None:
                cur.register("incoming_logs", logs)

        register()
        try:
            inserted = cur.execute("INSERT INTO spans BY NAME SELECT * FROM incoming").fetchone()
        except duckdb.ConstraintException:
            cur.execute("ROLLBACK")
            cur.execute("BEGIN TRANSACTION")
            register()
            inserted = cur.execute("INSERT OR IGNORE INTO spans BY NAME SELECT * FROM incoming").fetchone()
        if inserted and inserted[0]:
            tx.stored_from(_first_seq(batch))
            if may_hold_feedback(batch):
                insert_ignoring(cur, "feedback", STORE_FEEDBACK, FEEDBACK_KEY)
        if logs is not None:
            # GenAI log records; the journeys of the spans already stored that they belong to are re-derived
            cur.execute("INSERT OR IGNORE INTO log_records BY NAME SELECT * FROM incoming_logs")
            tx.stored_from(_visits.first_staged_seq(cur, _LOGGED_STAGED))
        assert self.privacy is not None
        self.privacy.log(cur, report)  # the redaction log: counts per span and type, a retried span logged once
        return inserted

    def update_visits(self, partition: Partition | None = None) -> list[str]:
        """Derive the stage visits of the journeys whose spans arrived since the last upkeep (of ``partition``
        only: a derive worker's share of the journeys): those the change feed lists after upkeep's position.

        The feed is read :data:`UPKEEP_GENERATIONS` generations at a time and their journeys derived in
        transactions of ``upkeep_journeys`` at most, so the memory an upkeep takes is bounded by those, not by how
        far behind it fell. Each transaction publishes a ``visits`` change; the position moves once a read's
        journeys are all committed (a crash before that derives them again: the same visits). On a lake only the
        process holding the upkeep lock derives, reading and moving the position all processes share (one per
        partition): without a partition, a process that finds the lock held skips the round (the holder takes
        every journey); a partition's worker waits for it. Returns the journeys whose visits were derived again.
        """
        if self.read_only:
            return []
        name = visit_feed.upkeep_position(partition)
        with self._visits_lock, self._upkeep_lock(wait=partition is not None) as mine:
            if not mine:  # another process of the lake is deriving: it takes these journeys too
                return []
            positions = self.feed.positions(visit_feed.UPKEEP_POSITION)
            self._warn_of_overlapping_upkeep(name, positions)
            # A position not stored yet (a new partition) starts where every journey was derived.
            after = max(positions.get(name, 0), visit_feed.derived_through(positions))
            head = self.feed.latest()  # every commit another process ended before now, not only before its last look
            touched: set[str] = set()
            while after < head:
                upto = min(head, after + visit_feed.UPKEEP_GENERATIONS)
                batch = self.feed.read(after, frozenset({_feed.SPANS}), upto=upto)
                due = visit_feed.due_journeys(batch.changes, partition) if batch.complete else None
                if due is None:  # too far behind the feed (or told "any journey"): every journey is due
                    touched.update(self._derive_all(partition))
                    after = head  # the derivation's snapshot holds every commit up to it
                else:
                    self._derive_due(due)
                    touched.update(due)
                    after = batch.upto
                self.feed.record(name, after)
            return sorted(touched)

    def _derive_due(self, due: dict[str, int | None]) -> None:
        """Derive the ``due`` journeys (:func:`~visit_feed.due_journeys`), ``upkeep_journeys`` per transaction."""
        journeys = sorted(due)
        for i in range(0, len(journeys), self.upkeep_journeys):
            part = journeys[i:i + self.upkeep_journeys]
            table = pa.table([pa.array(part, pa.string()), pa.array([due[j] for j in part], pa.int64())],
                             schema=_visits.DUE_SCHEMA)

            def derive(cur: duckdb.DuckDBPyConnection, table: pa.Table = table, part: list[str] = part) -> list[str]:
                _visits.update_due(cur, self.journey_map, self.clock(), table)
                return part

            self._upkeep_tries(derive)

    def _derive_all(self, partition: Partition | None) -> list[str]:
        """Derive every journey of ``partition`` (published as "any journey"); the journeys with visits."""
        owned = "true" if partition is None else partition.sql()
        self._upkeep_tries(lambda cur: _visits.rebuild_visits(cur, self.journey_map, self.clock(), owned=owned))
        return [r[0] for r in self.query(f"SELECT DISTINCT journey_id FROM stage_visits WHERE {owned} ORDER BY 1")]

    def _warn_of_overlapping_upkeep(self, name: str, positions: dict[str, int]) -> None:
        """Log once per upkeep when another process's upkeep of some of the same journeys moved since this one's
        last round (:func:`~visit_feed.overlapping_upkeeps`): a receiver left deriving beside derive workers."""
        seen, self._upkeep_positions_seen = self._upkeep_positions_seen, (name, positions)
        if seen is None or seen[0] != name:
            return
        others = [o for o in visit_feed.overlapping_upkeeps(name, seen[1], positions)
                  if (name, o) not in self._overlap_warned]
        if others:
            self._overlap_warned.update((name, o) for o in others)
            logger.warning(
                "another process derives stage visits of journeys this one derives (%s moved since this upkeep's "
                "last round, whose position is %r): each is derived twice. Run receivers beside derive workers "
                "with --no-derive, and give workers parts that do not overlap (docs/deployment.md)",
                ", ".join(repr(o) for o in others), name)

    def _upkeep_tries(self, work: Callable[[duckdb.DuckDBPyConnection], list[str] | None]) -> None:
        """Run ``work`` in an upkeep transaction that publishes ``visits`` for the journeys it returns (``None``:
        any journey), tried again whole when a lake commit loses to a concurrent one."""
        for attempt in range(_lake.CONFLICT_ATTEMPTS if self.lake is not None else 1):
            try:
                with (self._no_ingest_between(attempt),
                      self._transaction(f"cannot update stage visits in {self.path}", conflicts=True) as tx):
                    tx.publish(_feed.VISITS, work(tx.cur))
                return
            except _LakeConflict as exc:
                if attempt + 1 == _lake.CONFLICT_ATTEMPTS:
                    raise WarehouseError(f"cannot update stage visits in {self.path}: commits kept conflicting "
                                         f"with other writers ({_lake.CONFLICT_ATTEMPTS} tries): {exc}") from None
                time.sleep(_lake.conflict_pause(attempt))
        raise AssertionError("unreachable")

    def visits_due(self) -> int:
        """Journeys whose spans arrived after the position of the upkeep that derives them (whole, or their
        partition's): what upkeep has yet to derive."""
        positions = self.feed.positions(visit_feed.UPKEEP_POSITION)
        batch = self.feed.read(visit_feed.derived_through(positions), frozenset({_feed.SPANS}),
                               upto=self.feed.latest())
        due = visit_feed.still_due(batch.changes, positions) if batch.complete else None
        if due is None:
            return int(self.query("SELECT count(DISTINCT journey_id) FROM spans WHERE stage IS NOT NULL")[0][0])
        return len(due)

    def _no_ingest_between(self, attempt: int) -> contextlib.AbstractContextManager[bool]:
        """From the third try of an upkeep transaction on a PostgreSQL lake on, hold :data:`~lake.PENDING_LOCK`
        exclusively: no receiver commits (each holds it shared) until the upkeep has. An upkeep deletes nothing
        receivers insert, but its commit prunes the change feed now and then; should a try be refused for that,
        the third goes through. The first tries go without it."""
        if self._upkeep_catalog is None or attempt < 2:
            return contextlib.nullcontext(True)
        return self._upkeep_catalog.locked([_lake.PENDING_LOCK])

    def close_idle_visits(self, partition: Partition | None = None) -> list[str]:
        """Mark visits of journeys idle past their timeout ``abandoned`` (the derive loop calls this on a timer;
        a derive worker for its ``partition`` only); publish and return the journeys whose visits were closed."""
        if self.read_only:
            return []
        owned = "true" if partition is None else partition.sql()
        with self._visits_lock, self._upkeep_lock(wait=partition is not None) as mine:
            if not mine:  # another process of the lake is deriving: it closes them
                return []
            with self._transaction(f"cannot close idle visits in {self.path}") as tx:
                closed = _visits.close_idle_visits(tx.cur, self.clock(), owned)
                tx.publish(_feed.VISITS, closed)
        return closed

    def snapshot(self, target: str | Path) -> Path:
        """Copy the whole warehouse, consistently, into a new file that other processes may open.

        DuckDB lets one process hold a file for writing; while ``journeyscope serve``
        holds it, readers use the API or a snapshot made by the writer itself.
        """
        dest = Path(target)
        if dest.exists():
            raise WarehouseError(f"snapshot target {dest} exists; choose a new file")
        literal = str(dest).replace("'", "''")
        with self._exclusive():
            cur = self.cursor()
            try:
                cur.execute(f"ATTACH '{literal}' AS js_snapshot")
                try:
                    source = self._main_name().replace('"', '""')
                    cur.execute(f'COPY FROM DATABASE "{source}" TO js_snapshot')
                finally:
                    cur.execute("DETACH js_snapshot")
            except duckdb.Error as exc:
                raise warehouse_error(exc, f"cannot snapshot {self.path} to {dest}") from None
            finally:
                cur.close()
        return dest

    def _main_name(self) -> str:
        row = self.query("SELECT current_database()")
        return str(row[0][0]) if row else "main"

    @contextlib.contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A bare cursor under both write locks, for tools that fill a file their own way (benchmarks, tests);
        journeyscope's own writes all go through :meth:`transaction` (and :meth:`ingest`), which publish."""
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        with self._exclusive():
            cur = self.cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[Tx]:
        """The one way to write: a transaction under both write locks (serialised with ingest and upkeep).

        Begins, commits when the block ends (publishing what it :meth:`Tx.publish`-ed on the change feed
        under a new generation) or rolls back when it raises; a DuckDB error becomes
        ``WarehouseError("cannot {what} in PATH: ...")``.
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        # On a lake, one derived-data write at a time across processes (the upkeep lock): DuckLake refuses
        # overlapping transactions that delete from one table, as scores, reviews and upkeep do.
        with self._exclusive(), self._upkeep_lock(wait=True), self._transaction(f"cannot {what} in {self.path}") as tx:
            yield tx

    @contextlib.contextmanager
    def _transaction(self, doing: str, *, conflicts: bool = False) -> Iterator[Tx]:
        """:meth:`transaction` for a caller that holds the locks it needs (ingest: the append lock; upkeep:
        the visits lock). With ``conflicts``, a lake commit that lost to a concurrent one raises
        :class:`_LakeConflict` (rolled back) for the caller to try again whole."""
        cur = self.cursor()  # on a lake, in the lake's catalog
        try:
            cur.execute("BEGIN TRANSACTION")
            tx = Tx(cur)
            try:
                yield tx
                self.feed.commit(cur, tx.changes, tx.first_seq)
            except BaseException as exc:
                _rollback(cur)
                if conflicts and self.lake is not None and isinstance(exc, duckdb.TransactionException):
                    raise _LakeConflict(first_line(exc)) from None
                if isinstance(exc, duckdb.Error):
                    raise warehouse_error(exc, doing) from None
                raise
        except duckdb.Error as exc:  # BEGIN itself
            raise warehouse_error(exc, doing) from None
        finally:
            cur.close()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Both write locks (always in this order): no append and no upkeep runs meanwhile."""
        with self._visits_lock, self._append_lock:
            yield

    # -- reading ---------------------------------------------------------------------
    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query on a fresh cursor (safe from any thread)."""
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def stage_visits(self, journey_id: str | None = None) -> list[dict[str, Any]]:
        """Stage visits (docs/contracts.md record plus extras), of one journey or all, in journey order."""
        where = "WHERE journey_id = ?" if journey_id is not None else ""
        cur = self.cursor()
        try:
            cur.execute(
                f"SELECT * REPLACE ({_visits.OUTCOME_AT} AS outcome) FROM stage_visits {where} "
                "ORDER BY journey_id, position",
                [self.clock()] + ([journey_id] if journey_id is not None else []),
            )
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            cur.close()

    def readiness(self) -> dict[str, Any]:
        """Whether the storage answers now: ``{"ready", "storage": "file"|"ducklake"}``, and on a lake its
        ``catalog`` and ``object_store`` (``{"ok", "error"}`` each, :func:`journeyscope.warehouse.lake.probe`).
        A file this process holds open is always ready."""
        if self.lake is None:
            return {"ready": True, "storage": "file"}
        cur = self._con.cursor()  # not :meth:`cursor`: its USE reads the catalog, which may be down
        try:
            services = _lake.probe(self.lake, cur)
        finally:
            cur.close()
        return {"ready": all(bool(s["ok"]) for s in services.values()), "storage": "ducklake", **services}

    def span_count(self) -> int:
        """Spans stored."""
        return int(self.query("SELECT count(*) FROM spans")[0][0])

    def summary(self) -> dict[str, Any]:
        """Headline counts: spans, journeys, customers, and spans per stage."""
        totals = self.query(
            "SELECT count(*), count(DISTINCT journey_id), count(DISTINCT customer_id), "
            "count(*) FILTER (WHERE len(turns) > 0) FROM spans"
        )[0]
        stages = self.query(
            "SELECT journey_name, stage, count(DISTINCT journey_id) AS journeys, count(*) AS spans "
            "FROM spans WHERE stage IS NOT NULL GROUP BY ALL ORDER BY journey_name, min(start_time)"
        )
        return {
            "spans": totals[0],
            "journeys": totals[1],
            "customers": totals[2],
            "turn_spans": totals[3],
            "stages": [
                {"journey": j, "stage": s, "journeys": n, "spans": c} for j, s, n, c in stages
            ],
        }

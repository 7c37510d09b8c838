"""``Warehouse``: the DuckDB file every part of journeyscope reads and writes.

One process writes a warehouse file (DuckDB allows one writer); inside that
process span writes go through :meth:`Warehouse.ingest`; span appends and
stage-visit upkeep each hold a lock of their own (they may overlap), every other
write holds both, and reads use their own cursors. Other processes read through the server's
API or open the file read-only when no writer holds it (DESIGN.md, single
writer).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from journeyscope.errors import WarehouseError
from journeyscope.warehouse import visits as _visits
from journeyscope.warehouse.journey_map import JourneyMap, load_journey_map
from journeyscope.warehouse.progress import LARGE_VISITS, Report, long_step
from journeyscope.warehouse.feedback_events import STORE_FEEDBACK
from journeyscope.warehouse.redaction import PrivacyHook
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.schema import current_version, migrate, SCHEMA_VERSION

from journeyscope.privacy.report import RedactionReport

if TYPE_CHECKING:
    from journeyscope.privacy import PrivacyPolicy

#: How often (seconds of wall clock) ingest also closes visits whose journey went idle.
_CLOSE_IDLE_EVERY_S = 5.0


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
    """Spans redacted and ready to store, with what was redacted: :meth:`Warehouse.prepare`'s answer.

    Redaction is CPU work that needs no lock, so a receiver prepares each request's
    batch on its own thread and the single writer only inserts.
    """

    table: pa.Table
    report: RedactionReport

    @staticmethod
    def combine(batches: list[PreparedBatch]) -> PreparedBatch:
        """Several requests' batches as one (group commit), rows and report rows in order."""
        if len(batches) == 1:
            return batches[0]
        report = RedactionReport([row for b in batches for row in b.report.rows], batches[0].report.notes)
        return PreparedBatch(pa.concat_tables([b.table for b in batches]), report)


def _translate(path: str, exc: duckdb.Error) -> WarehouseError:
    text = str(exc).splitlines()[0]
    if "lock" in text.lower():
        return WarehouseError(
            f"{path} is open for writing in another process (is 'journeyscope serve' running?); "
            "read through the server's API or stop it first"
        )
    return WarehouseError(f"cannot open warehouse {path}: {text}")


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:
        pass


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
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        journey_map: JourneyMap | None = None,
        clock: Callable[[], int] = time.time_ns,
        privacy: PrivacyPolicy | None = None,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self.clock = clock
        self.journey_map = journey_map if journey_map is not None else load_journey_map()
        self._last_close_idle = 0.0
        if self.path != ":memory:":
            target = Path(self.path)
            if read_only and not target.exists():
                raise WarehouseError(
                    f"no warehouse at {self.path}: create one with 'journeyscope demo' or 'journeyscope import'"
                )
            if not read_only and not target.parent.exists():
                raise WarehouseError(f"cannot create warehouse {self.path}: folder {target.parent} does not exist")
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise _translate(self.path, exc) from None
        # Two write locks, so span appends and stage-visit upkeep (separate DuckDB transactions on separate
        # tables) can run at once on two cores; every other write takes both (:meth:`_exclusive`).
        self._visits_lock = threading.Lock()
        self._append_lock = threading.Lock()
        try:
            if read_only:
                found = current_version(self._con)
                if found != SCHEMA_VERSION:
                    raise WarehouseError(
                        f"{self.path} has schema version {found}, this journeyscope reads {SCHEMA_VERSION}: "
                        "open it once for writing (e.g. 'journeyscope import' or 'serve') to migrate it"
                    )
            else:
                self._migrate()
        except duckdb.Error as exc:
            self._con.close()
            raise _translate(self.path, exc) from None
        except WarehouseError:
            self._con.close()
            raise
        row = self._con.execute("SELECT coalesce(max(seq), 0) FROM spans").fetchone()
        self._next_seq = int(row[0]) + 1 if row else 1
        self.privacy: PrivacyHook | None = None
        if not read_only:
            self.privacy = PrivacyHook(privacy)  # a bad policy file fails here, before any write
            self.privacy.record_policy(self._con)
            self._sync_visits_with_map()

    def _long_step(self, description: str) -> contextlib.AbstractContextManager[Report | None]:
        """:func:`long_step` on a file large enough for the step to take a while; on a small one, silence."""
        return long_step(description) if self._is_large() else contextlib.nullcontext()

    def _is_large(self) -> bool:
        """Whether a schema upgrade or a full re-derivation will take long enough to report (stderr)."""
        has_visits = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stage_visits' AND table_schema = 'main'"
        ).fetchone()
        if not has_visits or not has_visits[0]:
            return False
        row = self._con.execute("SELECT count(*) FROM stage_visits").fetchone()
        return bool(row) and int(row[0]) >= LARGE_VISITS

    def _migrate(self) -> None:
        """Bring the file's schema up to date, saying so on stderr when that takes long."""
        found = current_version(self._con)
        if found == 0 or found >= SCHEMA_VERSION:  # a new file, or nothing to do
            migrate(self._con)
            return
        with self._long_step(f"upgrading {self.path} from schema {found} to {SCHEMA_VERSION}"):
            migrate(self._con)

    def _sync_visits_with_map(self) -> None:
        """Derive all visits again when the map they were derived with is not this one."""
        digest = self.journey_map.digest()
        row = self._con.execute("SELECT value FROM meta WHERE key = 'journey_map_digest'").fetchone()
        if row and row[0] == digest:
            self.update_visits()  # a backlog left by a crash
            return
        cur = self._con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            with self._long_step(f"deriving the stage visits of {self.path} again (new schema or journey map)") as report:
                _visits.rebuild_visits(cur, self.journey_map, self.clock(), report)
            cur.execute("DELETE FROM visits_pending")
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('journey_map_digest', ?)", [digest])
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            cur.execute("ROLLBACK")
            raise WarehouseError(f"cannot derive stage visits in {self.path}: {str(exc).splitlines()[0]}") from None
        finally:
            cur.close()

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._exclusive():
            try:
                if not self.read_only:
                    self._con.execute("CHECKPOINT")
            finally:
                self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for a reader thread (DuckDB connections are not shared across threads)."""
        return self._con.cursor()

    # -- writing ---------------------------------------------------------------------
    def prepare(self, rows: SpanRows | pa.Table) -> PreparedBatch:
        """Redact a batch for :meth:`ingest`, on any thread, without the write lock.

        PII never reaches the file: every write path stores what this returns.
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        table = rows.to_table() if isinstance(rows, SpanRows) else rows
        assert self.privacy is not None
        return PreparedBatch(*self.privacy.redact(table))

    def ingest(self, rows: SpanRows | pa.Table | PreparedBatch, *, update_visits: bool = True) -> IngestResult:
        """Store a batch of spans in one columnar insert; spans already stored are skipped.

        The one write path of the warehouse: the OTLP receiver, the importer and
        the in-process exporter all end here. It returns once the batch is
        committed to the file. ``rows`` not yet :meth:`prepare`-d are redacted first.
        The journeys it touched are marked for stage-visit
        upkeep in the same transaction; with ``update_visits`` (the default) their
        visits are derived again right away, else at the next :meth:`update_visits`
        (the server's writer batches that work under load).
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        prepared = rows if isinstance(rows, PreparedBatch) else self.prepare(rows)
        table, report = prepared.table, prepared.report
        if table.num_rows == 0:
            return IngestResult(0, 0)
        with self._append_lock:
            n = table.num_rows
            seq = pa.array(np.arange(self._next_seq, self._next_seq + n, dtype=np.int64))
            now = pa.array(np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(pa.timestamp("us"))
            batch = table.append_column("seq", seq).append_column("ingested_at", now)
            cur = self._con.cursor()
            try:
                cur.register("incoming", batch)
                inserted = self._insert(cur, report)
            except duckdb.Error as exc:
                _rollback(cur)
                raise WarehouseError(f"cannot write to {self.path}: {str(exc).splitlines()[0]}") from None
            finally:
                cur.close()
            self._next_seq += n
        accepted = int(inserted[0]) if inserted else 0
        if update_visits:
            self.update_visits()
        return IngestResult(accepted, table.num_rows - accepted)

    def _insert(self, cur: duckdb.DuckDBPyConnection, report: RedactionReport) -> tuple[Any, ...] | None:
        """Insert ``incoming`` in one transaction; return the inserted-row count (a one-tuple).

        A plain ``INSERT`` first: the primary key still refuses a stored span, but
        without ``OR IGNORE``'s per-row conflict handling, which costs about as
        much again as the insert itself. Only a batch that holds an already stored
        span (a retry, a re-import) pays for ``INSERT OR IGNORE``, on a second try.
        """
        cur.execute("BEGIN TRANSACTION")
        try:
            inserted = cur.execute("INSERT INTO spans BY NAME SELECT * FROM incoming").fetchone()
        except duckdb.ConstraintException:
            cur.execute("ROLLBACK")
            cur.execute("BEGIN TRANSACTION")
            inserted = cur.execute("INSERT OR IGNORE INTO spans BY NAME SELECT * FROM incoming").fetchone()
        if inserted and inserted[0]:
            _visits.mark_pending(cur, f"SELECT journey_id, seq FROM incoming WHERE {_visits.STAGED}")
            cur.execute(STORE_FEEDBACK)
        assert self.privacy is not None
        self.privacy.log(cur, report)  # the redaction log: counts per span and type, a retried span logged once
        cur.execute("COMMIT")
        return inserted

    def update_visits(self) -> list[str]:
        """Derive the stage visits of the journeys touched since the last upkeep (one transaction).

        Also closes, every few seconds, the open visits of journeys that went idle.
        Returns the journeys whose visits were derived again.
        """
        if self.read_only:
            return []
        with self._visits_lock:
            cur = self._con.cursor()
            now_ns = self.clock()
            try:
                cur.execute("BEGIN TRANSACTION")
                touched = _visits.update_pending(cur, self.journey_map, now_ns)
                if time.monotonic() - self._last_close_idle > _CLOSE_IDLE_EVERY_S:
                    touched = sorted({*touched, *_visits.close_idle_visits(cur, now_ns)})
                    self._last_close_idle = time.monotonic()
                cur.execute("COMMIT")
            except duckdb.Error as exc:
                _rollback(cur)
                raise WarehouseError(f"cannot update stage visits in {self.path}: {str(exc).splitlines()[0]}") from None
            finally:
                cur.close()
        return touched

    def close_idle_visits(self) -> list[str]:
        """Mark visits of journeys idle past their timeout ``abandoned`` (the server calls this on a timer);
        return the journeys whose visits were closed."""
        if self.read_only:
            return []
        with self._visits_lock:
            cur = self._con.cursor()
            try:
                closed = _visits.close_idle_visits(cur, self.clock())
            finally:
                cur.close()
            self._last_close_idle = time.monotonic()
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
            cur = self._con.cursor()
            try:
                cur.execute(f"ATTACH '{literal}' AS js_snapshot")
                try:
                    source = self._main_name().replace('"', '""')
                    cur.execute(f'COPY FROM DATABASE "{source}" TO js_snapshot')
                finally:
                    cur.execute("DETACH js_snapshot")
            except duckdb.Error as exc:
                raise WarehouseError(f"cannot snapshot {self.path} to {dest}: {str(exc).splitlines()[0]}") from None
            finally:
                cur.close()
        return dest

    def _main_name(self) -> str:
        row = self._con.execute("SELECT current_database()").fetchone()
        return str(row[0]) if row else "main"

    @contextlib.contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for a write that is not span ingest (evaluations, erasure, retention), under both write locks.

        The single-writer rule holds inside the process too: every such write is serialised
        with ingest and with stage-visit upkeep (only those two may overlap each other).
        """
        if self.read_only:
            raise WarehouseError(f"{self.path} is open read-only")
        with self._exclusive():
            cur = self._con.cursor()
            try:
                yield cur
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
        """Stage visits (DESIGN.md record plus extras), of one journey or all, in journey order."""
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

"""Storage on a DuckLake: the catalog in PostgreSQL (or a DuckDB file), the data as Parquet on S3 or a directory.

``--db`` names the storage: a path (``journeyscope.duckdb``, the embedded file) or a lake,
``ducklake:postgres:<libpq conninfo>`` (many processes on many machines) or ``ducklake:<catalog.duckdb>`` (one
process), whose Parquet files go to ``--data-path`` (``$JOURNEYSCOPE_DATA_PATH``): ``s3://bucket/prefix/`` or a
directory. S3 credentials come from the standard ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN`` and ``AWS_REGION``; an S3-compatible store's endpoint from ``JOURNEYSCOPE_S3_ENDPOINT`` (or
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``), e.g. ``http://127.0.0.1:8333``.

This module is the storage-specific part and nothing more: the connection (extensions, secret, ATTACH), the
schema's DDL adapted to a lake (no primary keys or indexes), and :class:`Catalog`, the PostgreSQL side every
writer shares: advisory locks that make a retried batch's ledger check and its commit one step, and the span
``seq`` numbers, allocated in blocks so receivers on many machines never hand out the same one. Everything above
(:class:`~journeyscope.warehouse.store.Warehouse`, analytics, evaluators) runs the same SQL on both storages.

The extensions come from the ``journeyscope[lake]`` wheels (DuckDB's signed binaries; signature checks stay on,
``autoinstall_known_extensions`` off), laid out as an extension directory; without the wheels DuckDB's own
``INSTALL ... FROM core`` is tried.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import random
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from journeyscope.errors import ConfigError, WarehouseError, WarehouseUnavailable, redact_secrets
from journeyscope.settings import load as load_settings
from journeyscope.warehouse.db_errors import first_line, is_unreachable, warehouse_error

if TYPE_CHECKING:
    import psycopg

__all__ = ["ALIAS", "FEED_LOCK", "LAKE_PREFIX", "LAYOUT", "LAYOUT_VERSION", "ROW_GROUP_ROWS", "UPKEEP_LOCK", "Catalog",
           "LakeLocation", "WarehouseUnavailable", "adapt_ddl", "batch_key", "batch_lock_key", "connect",
           "describe", "is_lake", "probe", "record_batches", "stored_batches"]

LAKE_PREFIX = "ducklake:"
#: The name the lake is attached under; every cursor of a lake warehouse runs ``USE`` on it.
ALIAS = "js_lake"
_DUCKDB_VERSION = "v1.5.5"
#: (wheel package, extension name DuckDB loads it by)
_WHEELS = (("duckdb_extension_ducklake", "ducklake"), ("duckdb_extension_postgres", "postgres_scanner"),
           ("duckdb_extension_httpfs", "httpfs"))
#: Span ``seq`` numbers a writer takes from the catalog at a time (one ``nextval``).
SEQ_BLOCK = 1 << 20
#: DuckLake's pause before it tries a commit again under the next snapshot id (``ducklake_retry_wait_ms``), and
#: the factor it grows by (``ducklake_retry_backoff``). A transaction takes the id after the newest snapshot it
#: saw, so one that began before another writer's commit ended loses that id however the commits are ordered:
#: with several receivers, or a receiver's upkeep beside its writer, nearly every commit does. Publishing commits
#: already take turns (:data:`FEED_LOCK`), so the first quick try under the next id goes through; DuckLake's
#: defaults (100 ms, 1.5) kept each such commit waiting at least 100 ms. The growth keeps about five seconds of
#: patience over DuckLake's ten tries for writers that do collide.
COMMIT_RETRY_WAIT_MS = 5
COMMIT_RETRY_BACKOFF = 2.0


def is_lake(path: str | Path) -> bool:
    """Whether ``--db`` names a lake rather than a DuckDB file."""
    return str(path).startswith(LAKE_PREFIX)


def describe(path: str | Path) -> str:
    """``--db`` for messages and logs: a lake's connection string without its password."""
    return redact_secrets(str(path))


@dataclass(frozen=True, slots=True)
class LakeLocation:
    """Where a lake lives: its catalog (the ``ducklake:`` string) and its data path."""

    catalog: str
    data_path: str | None

    @classmethod
    def parse(cls, path: str, data_path: str | None = None) -> LakeLocation:
        """``path`` as given to ``--db``; ``data_path`` defaults to ``$JOURNEYSCOPE_DATA_PATH``."""
        rest = path[len(LAKE_PREFIX):]
        if not rest or rest == "postgres:":
            raise ConfigError(f"--db {path!r} names no catalog: use ducklake:postgres:<conninfo> or "
                              "ducklake:CATALOG.duckdb")
        data_path = data_path or load_settings().data_path
        return cls(path, data_path)

    @property
    def conninfo(self) -> str | None:
        """The libpq connection string of a PostgreSQL catalog (``None`` for a DuckDB-file catalog)."""
        rest = self.catalog[len(LAKE_PREFIX):]
        return rest[len("postgres:"):] if rest.startswith("postgres:") else None

    def describe(self) -> str:
        """The location for messages, without a password."""
        return describe(self.catalog)


def _extension_directory() -> Path | None:
    """An extension directory laid out as DuckDB expects, linking to the ``journeyscope[lake]`` wheels' binaries;
    ``None`` when the wheels are not installed."""
    found: list[tuple[str, Path]] = []
    for package, name in _WHEELS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        binary = Path(next(iter(spec.submodule_search_locations))) / "extensions" / _DUCKDB_VERSION
        binary = next(binary.glob("*.duckdb_extension"), binary / "missing")
        if not binary.exists():
            return None
        found.append((name, binary))
    digest = hashlib.sha256("\n".join(str(b) for _, b in found).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"journeyscope-duckdb-extensions-{os.getuid()}-{digest}"
    platform = root / _DUCKDB_VERSION / duckdb.execute("PRAGMA platform").fetchone()[0]  # type: ignore[index]
    platform.mkdir(parents=True, exist_ok=True)
    for name, binary in found:
        link = platform / f"{name}.duckdb_extension"
        if not link.exists():
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                link.symlink_to(binary)
    return root


def _load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    names = ("ducklake", "postgres", "httpfs")
    try:
        for name in names:
            con.execute(f"LOAD {name}")
        return
    except duckdb.Error:
        pass
    try:
        for name in names:
            con.execute(f"INSTALL {name} FROM core")
            con.execute(f"LOAD {name}")
    except duckdb.Error as exc:
        raise WarehouseError(
            "cannot load DuckDB's ducklake, postgres and httpfs extensions: install journeyscope[lake] "
            f"(pip install 'journeyscope[lake]') or let DuckDB reach its extension repository ({first_line(exc)})"
        ) from None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"




def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """A DuckDB secret for S3 from the standard AWS variables and the endpoint setting (none when unset)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return
    options = [f"KEY_ID {_quote(key)}", f"SECRET {_quote(secret)}",
               f"REGION {_quote(os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION') or 'us-east-1')}"]
    if token := os.environ.get("AWS_SESSION_TOKEN"):
        options.append(f"SESSION_TOKEN {_quote(token)}")
    endpoint = (load_settings().s3_endpoint or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL"))
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.netloc:
            raise ConfigError(f"JOURNEYSCOPE_S3_ENDPOINT {endpoint!r} is not a URL (e.g. http://127.0.0.1:8333)")
        options += [f"ENDPOINT {_quote(parts.netloc)}", "URL_STYLE 'path'",
                    f"USE_SSL {'false' if parts.scheme == 'http' else 'true'}"]
    con.execute(f"CREATE OR REPLACE SECRET js_s3 (TYPE s3, {', '.join(options)})")


def connect(location: LakeLocation, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as :data:`ALIAS` and in use."""
    directory = _extension_directory()
    config: dict[str, str | bool] = {"autoinstall_known_extensions": False}
    if directory is not None:
        config["extension_directory"] = str(directory)
    con = duckdb.connect(":memory:", config=config)
    try:
        _load_extensions(con)
        for setting, value in (("ducklake_retry_wait_ms", COMMIT_RETRY_WAIT_MS),
                               ("ducklake_retry_backoff", COMMIT_RETRY_BACKOFF)):
            with contextlib.suppress(duckdb.CatalogException):  # a DuckLake without it keeps its own, only slower
                con.execute(f"SET {setting} = {value}")
        _s3_secret(con)
        options = [f"DATA_PATH {_quote(location.data_path)}"] if location.data_path else []
        if read_only:
            options.append("READ_ONLY")
        suffix = f" ({', '.join(options)})" if options else ""
        try:
            con.execute(f"ATTACH {_quote(location.catalog)} AS {ALIAS}{suffix}")
        except duckdb.Error as exc:
            text = first_line(exc)
            if location.data_path is None and "data_path" in text.lower():
                raise ConfigError(f"a new lake needs a data path: --data-path s3://bucket/prefix/ or a directory "
                                  f"(or $JOURNEYSCOPE_DATA_PATH) for {location.describe()}") from None
            raise warehouse_error(exc, f"cannot open the lake {location.describe()}") from None
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


#: Seconds a readiness probe waits for the catalog database or the object store.
PROBE_TIMEOUT_S = 5


def _probe_catalog(location: LakeLocation) -> str | None:
    """Why the catalog database cannot be reached now (``None``: it answers)."""
    if location.conninfo is None:
        return None  # a DuckDB file this process holds open
    import psycopg

    try:
        with psycopg.connect(location.conninfo, autocommit=True, connect_timeout=PROBE_TIMEOUT_S) as pg:
            pg.execute("SELECT 1")
    except psycopg.Error as exc:
        return first_line(exc)
    return None


def _probe_store(cur: duckdb.DuckDBPyConnection, data_path: str) -> str | None:
    """Why the object store (or directory) holding the lake's files cannot be listed now (``None``: it can)."""
    if "://" not in data_path:
        return None if Path(data_path).is_dir() else f"the data path {data_path} is not a directory"
    try:
        cur.execute(f"SET http_timeout = {PROBE_TIMEOUT_S * 1000}")
        cur.execute("SET http_retries = 0")
        # A listing under the lake's prefix (a path with no wildcard is not looked up at all)
        cur.execute("SELECT count(*) FROM glob(?)", [data_path.rstrip("/") + "/journeyscope-probe*"]).fetchall()
    except duckdb.Error as exc:
        return first_line(exc)
    return None


def probe(location: LakeLocation, cur: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """Whether the lake's two services answer now: ``{"catalog": {"ok", "error"}, "object_store": {"ok",
    "error"}}`` (``error`` says why not, secrets redacted). ``cur`` is a cursor of a connection with the lake
    attached; the data path comes from the catalog when the location names none (unknown while it is down)."""
    catalog = _probe_catalog(location)
    data_path = location.data_path
    store: str | None = None
    if data_path is None and catalog is None:
        try:
            row = cur.execute(f"SELECT value FROM ducklake_options('{ALIAS}') WHERE option_name = 'data_path'"
                              ).fetchone()
            data_path = str(row[0]) if row else None
        except duckdb.Error as exc:
            catalog = first_line(exc)
        else:
            store = None if data_path is not None else "the lake records no data path"
    if data_path is not None:
        store = _probe_store(cur, data_path)
    elif catalog is not None:
        store = "unknown while the catalog is down (its data path is recorded there)"
    return {"catalog": {"ok": catalog is None, "error": catalog},
            "object_store": {"ok": store is None and data_path is not None, "error": store}}


_PRIMARY_KEY = re.compile(r",\s*PRIMARY KEY\s*\([^)]*\)|\s+PRIMARY KEY\b", re.IGNORECASE)
_INDEX = re.compile(r"CREATE\s+INDEX[^;]*;", re.IGNORECASE)


def adapt_ddl(sql: str) -> str:
    """A migration's SQL for a lake, which has no primary keys and no indexes: both dropped (and a migration's
    ``INSERT OR IGNORE`` is a plain insert: it fills a table made in the same migration).

    What the keys did on the file (storing a retried row once) the lake's writes do themselves:
    :mod:`journeyscope.warehouse.dialect` and the ingest ledger.
    """
    return _INDEX.sub("", _PRIMARY_KEY.sub("", sql)).replace("INSERT OR IGNORE INTO", "INSERT INTO")


#: Rows per Parquet row group in a lake (every table: the option is the lake's, as a table's own cannot be set in
#: the transaction that makes the table): small enough that one journey's rows, sorted by :data:`LAYOUT`, lie in one
#: group of a few thousand, not in DuckDB's default group of 122,880 rows (a whole compacted file at 100,000 spans);
#: not so small that the footer, which holds every group's statistics and which each query reads, outweighs the rows
#: it lets a lookup skip.
ROW_GROUP_ROWS = 8192

#: The physical layout of a lake's tables that one journey's reads filter by (``journey_id = ?``, or a batch of
#: journeys in a temporary table, which DuckDB pushes into the scan as a filter once it has read the batch). Rows are
#: written sorted by journey (DuckLake sorts at every insert, at ``ducklake_merge_adjacent_files`` and at an inlined
#: data flush) in row groups of :data:`ROW_GROUP_ROWS`, so each group's min/max statistics name a narrow range of
#: journeys and a lookup reads the footer and the one group that can hold the journey. Before compaction a
#: journey's rows still lie in every file its commits wrote (each file's range covers nearly every live journey);
#: after :func:`journeyscope.warehouse.lake_upkeep.compact` they lie in one group of each merged file.
LAYOUT = (
    "ALTER TABLE spans SET SORTED BY (journey_id, start_time)",
    "ALTER TABLE stage_visits SET SORTED BY (journey_id, position)",
    "ALTER TABLE evaluations SET SORTED BY (journey_id, stage, visit)",
    "ALTER TABLE feedback SET SORTED BY (journey_id)",
    f"CALL {ALIAS}.set_option('parquet_row_group_size', {ROW_GROUP_ROWS})",
)
#: The version of :data:`LAYOUT` a lake records in ``meta`` (``lake_layout``): a writer opening a lake laid out
#: otherwise applies it (a new lake right after its tables are made).
LAYOUT_VERSION = 1


def batch_key(spans: pa.Table | None, logs: pa.Table | None) -> str:
    """What identifies one request's batch however it is sent again: a hash of its sorted span ids (trace and
    span) and log-record ids."""
    digest = hashlib.sha256()
    for table, columns in ((spans, ("trace_id", "span_id")), (logs, ("record_id",))):
        if table is None or table.num_rows == 0:
            digest.update(b"\x00")
            continue
        ids = table[columns[0]] if len(columns) == 1 else pc.binary_join_element_wise(
            table[columns[0]], table[columns[1]], ":")
        ids = pc.take(ids, pc.sort_indices(ids))
        digest.update("\n".join(ids.to_pylist()).encode())
        digest.update(b"\x01")
    return digest.hexdigest()


def stored_batches(cur: duckdb.DuckDBPyConnection, keys: list[str]) -> set[str]:
    """Which of ``keys`` the ledger holds (in the caller's transaction, with their advisory locks held)."""
    if not keys:
        return set()
    marks = ", ".join("?" * len(keys))
    return {r[0] for r in cur.execute(f"SELECT batch_key FROM ingest_ledger WHERE batch_key IN ({marks})",
                                      keys).fetchall()}


def record_batches(cur: duckdb.DuckDBPyConnection, parts: list[tuple[str, int, int]]) -> None:
    """Add the batches just stored to the ledger, in the caller's (their own) transaction: one statement (a
    statement per row costs a request's worth of parsing and planning each)."""
    rows = pa.table({"batch_key": pa.array([k for k, _, _ in parts], pa.string()),
                     "spans": pa.array([s for _, s, _ in parts], pa.int64())})
    cur.register("js_ledger", rows)
    try:
        cur.execute("INSERT INTO ingest_ledger SELECT batch_key, spans, now()::TIMESTAMP FROM js_ledger")
    finally:
        cur.unregister("js_ledger")


def batch_lock_key(batch_key: str) -> int:
    """The signed 64-bit advisory-lock key of a batch key (a hex digest)."""
    return int.from_bytes(bytes.fromhex(batch_key[:16]), "big", signed=True)


#: The advisory-lock key of derived-data writes (stage-visit upkeep, scores, reviews, erasure): one such commit at a
#: time across the lake's processes, since DuckLake refuses two overlapping transactions that delete from one table.
UPKEEP_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope stage-visit upkeep").hexdigest())
#: The advisory-lock key held by a commit that publishes on the change feed, from taking its generation to the end
#: of the commit (:class:`journeyscope.warehouse.feed.LakeFeed`).
FEED_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope change feed").hexdigest())
#: The advisory-lock key of making and migrating the lake's schema: one writer at a time.
SCHEMA_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope schema").hexdigest())
#: The advisory-lock key that lets a stage-visit upkeep commit with no ingest commit in between: ingest holds it
#: shared, an upkeep that keeps conflicting takes it exclusively (DuckLake refuses a commit that deletes from a
#: table another transaction inserted into since it began: the commit that prunes the change feed deletes
#: ``changes`` rows, which ingest adds). The key's text is the one it had when it guarded a backlog table.
PENDING_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope pending visits").hexdigest())
#: The advisory-lock key of compaction, retention's and erasure's file rewrites: one process at a time.
COMPACT_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope compaction").hexdigest())
#: The advisory-lock key of the monitors' passes: alerts are recorded by one process at a time, so two receivers of
#: one lake never both open (and deliver) the same alert.
MONITORS_LOCK = batch_lock_key(hashlib.sha256(b"journeyscope monitors").hexdigest())
#: Whole tries of a lake commit that conflicts with a concurrent one (after DuckLake's own retries of a
#: snapshot-id race ran out, or a real conflict it does not retry).
CONFLICT_ATTEMPTS = 6


def conflict_pause(attempt: int) -> float:
    """Seconds to wait before trying a conflicting commit again (``attempt`` 0 first): growing, and jittered so
    two writers that conflicted do not try again at the same moment and conflict again."""
    return min(2.0, 0.05 * 2 ** attempt) * random.uniform(0.5, 1.5)


class Catalog:
    """The PostgreSQL side a lake's writers share (``None`` of it for a DuckDB-file catalog): advisory locks and
    the span ``seq`` sequence, over one libpq connection of this process.

    Session advisory locks, not transaction ones: a lock is taken before the lake's DuckDB transaction begins
    and released after it commits, so another writer's check of the same batch key sees the commit.
    """

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self._conninfo = location.conninfo
        self._pg: psycopg.Connection | None = None  # type: ignore[type-arg]
        self._lock = threading.RLock()  # next_seq runs inside locked()
        self._made: set[str] = set()  # the catalog-side objects :meth:`_ensure` made or found

    def _connection(self) -> psycopg.Connection:  # type: ignore[type-arg]
        import psycopg

        if self._pg is None or self._pg.closed or self._pg.broken:
            try:
                self._pg = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                text = first_line(exc)
                if not is_unreachable(text):  # a wrong password or database: nothing to wait for
                    raise WarehouseError(f"cannot open the lake's catalog {self.location.describe()}: {text}") from None
                raise WarehouseUnavailable(f"cannot reach the lake's catalog {self.location.describe()}: {text}") from None
        return self._pg

    def _execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        import psycopg

        for attempt in range(2):  # a connection the server ended while idle (a restart) is made again once
            try:
                cur = self._connection().execute(sql, params)
                return cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                self.close()
                if attempt:
                    raise WarehouseUnavailable(
                        f"lost the lake's catalog {self.location.describe()}: {first_line(exc)}") from None
        raise AssertionError("unreachable")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """One statement on this process's catalog connection, its rows (the change feed's head and sequence)."""
        assert self._conninfo is not None
        with self._lock:
            return self._execute(sql, params)

    def _ensure(self, name: str, ddl: str) -> None:
        """Run ``ddl`` (a ``CREATE ... IF NOT EXISTS``) once per connection's life in this process."""
        import psycopg

        if name in self._made:
            return
        try:
            self._execute(ddl)
        except psycopg.IntegrityError:  # another process made it at the same moment
            pass
        self._made.add(name)

    def _sequence(self) -> None:
        self._ensure("seq", f"CREATE SEQUENCE IF NOT EXISTS journeyscope_seq START 1 INCREMENT {SEQ_BLOCK}")

    def claim_batches(self, keys: list[str]) -> tuple[set[str], set[str]]:
        """With the keys' advisory locks held: which batches are stored (``done``), and which a writer began but
        never confirmed (``unsure``: it crashed between its lake commit and :meth:`confirm_batches`, or its commit
        failed; only the lake's ``ingest_ledger`` knows). The rest are marked begun. A DuckDB-file catalog keeps
        no such index: every key is unsure.

        The lake's ledger row, written in the batch's own commit, is what makes a batch stored; this index in
        the catalog database only spares each commit a read of the lake's ledger through DuckLake (a snapshot
        lookup and a scan, where this is one indexed query).
        """
        if self._conninfo is None:
            return set(), set(keys)
        if not keys:
            return set(), set()
        with self._lock:
            self._ensure("ledger", "CREATE TABLE IF NOT EXISTS journeyscope_ledger (batch_key text PRIMARY KEY, "
                                   "committed boolean NOT NULL, at timestamptz NOT NULL DEFAULT now())")
            rows = self._execute(
                "WITH seen AS (SELECT batch_key, committed FROM journeyscope_ledger WHERE batch_key = ANY(%s)), "
                "begun AS (INSERT INTO journeyscope_ledger (batch_key, committed) SELECT k, false "
                "FROM unnest(%s::text[]) AS k ON CONFLICT DO NOTHING) SELECT batch_key, committed FROM seen",
                (keys, keys))
        return {str(k) for k, done in rows if done}, {str(k) for k, done in rows if not done}

    def confirm_batches(self, keys: list[str]) -> None:
        """Record ``keys`` as stored (after the commit that stored them, locks still held)."""
        if self._conninfo is None or not keys:
            return
        with self._lock:
            self._execute("UPDATE journeyscope_ledger SET committed = true WHERE batch_key = ANY(%s)", (keys,))

    def advance_seq(self, past: int) -> None:
        """Hand out only numbers above ``past`` from now on (spans copied in by a conversion keep theirs)."""
        if self._conninfo is None:
            return
        with self._lock:
            self._sequence()
            self._execute("SELECT setval('journeyscope_seq', greatest(%s, (SELECT last_value FROM journeyscope_seq)))",
                          (max(past, 1),))

    def next_seq(self, n: int) -> int:
        """The first of ``n`` consecutive span numbers no other writer gets (``n`` at most :data:`SEQ_BLOCK`)."""
        assert self._conninfo is not None and 0 < n <= SEQ_BLOCK
        with self._lock:
            self._sequence()
            return int(self._execute("SELECT nextval('journeyscope_seq')")[0][0])  # type: ignore[arg-type]

    @contextlib.contextmanager
    def locked(self, keys: list[int], *, wait: bool = True, shared: bool = False) -> Iterator[bool]:
        """Hold the advisory locks ``keys`` (taken in order, so two writers never deadlock) for the block;
        yields whether they were taken (``wait=False``: ``False`` when another process holds one). ``shared``:
        shared locks, which only an exclusive holder of the same key excludes."""
        if self._conninfo is None or not keys:
            yield True
            return
        ordered = sorted(set(keys))
        kind = "_shared" if shared else ""
        with self._lock:
            if wait:
                self._execute(f"SELECT pg_advisory_lock{kind}(k) FROM unnest(%s::bigint[]) AS k ORDER BY k",
                              (ordered,))
            else:
                got = self._execute(f"SELECT pg_try_advisory_lock{kind}(%s)", (ordered[0],))
                if not got[0][0]:
                    yield False
                    return
            try:
                yield True
            finally:
                with contextlib.suppress(WarehouseError):  # a lost connection released them already
                    self._execute(f"SELECT pg_advisory_unlock{kind}(k) FROM unnest(%s::bigint[]) AS k", (ordered,))

    def close(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.close()
            self._pg = None

"""Upkeep of a lake: compaction on a schedule, and the physical removal of deleted rows (forget, retention).

Every commit to a lake adds a Parquet file (and a delete adds a delete file) and a catalog snapshot; rows deleted
stay in their Parquet file, readable by anyone who reads the object store, until the file is rewritten and the
old one removed. :func:`compact` moves rows inlined in the catalog into files, merges small files and expires
snapshots older than a margin longer than any query runs (a query reads the snapshot it began on; its files stay
until the margin has passed), so it never breaks a running query and can run on a schedule. :func:`purge` is
erasure's: it rewrites every file holding deleted rows, expires every snapshot but the current one and deletes the
unreferenced files at once (a query still reading an older snapshot fails; an erasure request outranks it).
:func:`lake_contains` is the proof: it reads every Parquet object under the data path and reports identifiers
still found in it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from journeyscope.errors import WarehouseError
from journeyscope.warehouse.db_errors import first_line, warehouse_error
from journeyscope.warehouse.lake import ALIAS, COMPACT_LOCK, CONFLICT_ATTEMPTS, Catalog, conflict_pause
from journeyscope.warehouse.store import Warehouse

__all__ = ["DEFAULT_SNAPSHOT_MARGIN_S", "LakeCompaction", "compact", "data_path", "lake_contains", "purge"]

#: How long (seconds) an expired snapshot's files stay: longer than any query of the dashboard, API or CLI runs.
DEFAULT_SNAPSHOT_MARGIN_S = 3600


@dataclass(frozen=True, slots=True)
class LakeCompaction:
    """Data files (Parquet and delete files) and snapshots before and after, and how long it took."""

    files_before: int
    files_after: int
    snapshots_before: int
    snapshots_after: int
    seconds: float


def _counts(cur: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    files = cur.execute(f"SELECT coalesce(sum(file_count + delete_file_count), 0) FROM ducklake_table_info('{ALIAS}')"
                        ).fetchone()
    snapshots = cur.execute(f"SELECT count(*) FROM ducklake_snapshots('{ALIAS}')").fetchone()
    return int(files[0]) if files else 0, int(snapshots[0]) if snapshots else 0


def _run(warehouse: Warehouse, what: str, statements: list[str]) -> LakeCompaction:
    """Run the upkeep ``statements`` (each its own commit, each safe to run again) under the catalog's compaction
    lock, so two upkeeps (a timer's ``lake compact``, a ``retention``, a ``forget``) never rewrite the same files
    at once; a statement whose commit conflicts with a concurrent one (ingest, stage-visit upkeep deleting rows
    from files it rewrites) runs again after a growing, jittered pause, as many times as :data:`CONFLICT_ATTEMPTS`.
    """
    if warehouse.lake is None:
        raise WarehouseError(f"{warehouse.path} is not a lake")
    doing = f"cannot {what} {warehouse.lake.describe()}"
    started = time.perf_counter()
    catalog = Catalog(warehouse.lake)
    try:
        with catalog.locked([COMPACT_LOCK]), warehouse.writing() as cur:
            try:
                before = _counts(cur)
                for statement in statements:
                    _committed(cur, statement, doing)
                after = _counts(cur)
            except duckdb.Error as exc:
                raise warehouse_error(exc, doing) from None
    finally:
        catalog.close()
    return LakeCompaction(before[0], after[0], before[1], after[1], time.perf_counter() - started)


def _committed(cur: duckdb.DuckDBPyConnection, statement: str, doing: str) -> None:
    """Run one upkeep statement (its own commit) until it is not refused for a conflict with a concurrent commit.

    DuckLake retries a commit that lost the race for the next snapshot id itself (``ducklake_max_retry_count``
    times); what it cannot retry is a real conflict, where a concurrent commit changed the files this one
    rewrites: running the statement again reads the new snapshot.
    """
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            cur.execute(statement)
            return
        except duckdb.TransactionException as exc:
            if attempt + 1 == CONFLICT_ATTEMPTS:
                raise WarehouseError(f"{doing}: its commits kept conflicting with other writers "
                                     f"({CONFLICT_ATTEMPTS} tries): {first_line(exc)}") from None
            time.sleep(conflict_pause(attempt))


def compact(warehouse: Warehouse, *, margin_s: float = DEFAULT_SNAPSHOT_MARGIN_S) -> LakeCompaction:
    """Move the rows DuckLake inlined in the catalog into Parquet files, merge adjacent small files, rewrite files
    most of whose rows were deleted (retention), expire snapshots older than ``margin_s`` and delete the files only
    they used: the steps of DuckLake's ``CHECKPOINT`` in its order, with the margin, but for deleting orphaned files.

    Inlined rows first: small inserts (the feed's changes, the ingest ledger, a batch's few feedback answers) are
    kept in catalog tables that every query of their table fetches whole, so until they are flushed each read of
    them costs more the longer the lake has run.
    """
    older = f"now() - to_microseconds({int(margin_s * 1_000_000)})"
    return _run(warehouse, "compact", [
        f"CALL ducklake_flush_inlined_data('{ALIAS}')",
        f"CALL ducklake_merge_adjacent_files('{ALIAS}')",
        f"CALL ducklake_rewrite_data_files('{ALIAS}')",
        f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => {older})",
        f"CALL ducklake_cleanup_old_files('{ALIAS}', older_than => {older})",
    ])


def purge(warehouse: Warehouse) -> LakeCompaction:
    """Leave no deleted row in the object store: rewrite the files holding any, expire every older snapshot and
    delete every file no snapshot uses, now."""
    return _run(warehouse, "purge deleted rows from", [
        f"CALL ducklake_rewrite_data_files('{ALIAS}', delete_threshold => 0)",
        f"CALL ducklake_expire_snapshots('{ALIAS}', older_than => now())",
        f"CALL ducklake_cleanup_old_files('{ALIAS}', cleanup_all => true)",
    ])


def data_path(warehouse: Warehouse) -> str:
    """Where the lake keeps its files (as its catalog records it)."""
    row = warehouse.query(f"SELECT value FROM ducklake_options('{ALIAS}') WHERE option_name = 'data_path'")
    if not row:
        raise WarehouseError(f"{warehouse.path}: the lake records no data path")
    return str(row[0][0])


def lake_contains(warehouse: Warehouse, needles: list[str]) -> list[str]:
    """Which of ``needles`` any Parquet object under the lake's data path still holds, in any row and column,
    whatever the catalog says (files of expired snapshots included, until they are deleted)."""
    root = data_path(warehouse).rstrip("/") + "/**/*.parquet"
    cur = warehouse.cursor()
    try:
        files = [r[0] for r in cur.execute("SELECT file FROM glob(?)", [root]).fetchall()]
        found: set[str] = set()
        for file in files:
            for needle in needles:
                if needle in found:
                    continue
                hit = cur.execute("SELECT count(*) FROM read_parquet(?) t WHERE contains(CAST(t AS VARCHAR), ?)",
                                  [file, needle]).fetchone()
                if hit and hit[0]:
                    found.add(needle)
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read the objects of {root}") from None
    finally:
        cur.close()
    return sorted(found)

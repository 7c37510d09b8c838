"""Forget a customer, and prove it: rows deleted everywhere, then bytes gone from the file.

Deleting rows is not enough for a right-to-erasure request. DuckDB marks the
blocks of deleted rows free at ``CHECKPOINT`` but does not overwrite them, and
neither ``VACUUM`` nor rewriting a table in place does (measured on DuckDB 1.5:
a deleted customer's id and e-mail stay readable in the file's bytes after each
of these). Only a fresh file holds no old blocks, so erasure is three steps:

1. :func:`erase_customer`: one transaction deletes the customer's rows from every
   table keyed by ``customer_id`` or ``journey_id`` (spans, stage visits, the
   journeys' first spans, evaluations, routing decisions, the redaction log, and
   tables added later with those columns; the change feed's rows name them too)
   and the GenAI log records of their traces, and writes the audit entry (counts,
   never the id);
2. :func:`compact_file`: ``COPY FROM DATABASE`` into a new file, then an atomic
   rename over the old one (the file must not be open in another process);
3. :func:`file_contains`: read the raw bytes of the file (and its WAL) and
   report any identifier still there.

:func:`forget_customer` runs all three on a warehouse file (the CLI's ``forget``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from journeyscope.errors import InvalidInputError, WarehouseError
from journeyscope.warehouse import audit
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse.feed import ERASURE, scrub_journeys

if TYPE_CHECKING:
    from journeyscope.warehouse.store import Warehouse

#: Tables never erased from: the audit trail itself, and settings.
_KEEP = frozenset({"audit_log", "meta"})
_SELECTION = "js_erase_journeys"


@dataclass(frozen=True)
class Compaction:
    """A rewrite of the warehouse file: sizes before and after, and how long it took."""

    bytes_before: int
    bytes_after: int
    seconds: float


@dataclass
class ErasureResult:
    """What an erasure removed (rows per table), and the proof: identifiers still found in the file bytes."""

    rows: dict[str, int] = field(default_factory=dict)
    journeys: int = 0
    audit_id: int | None = None
    compaction: Compaction | None = None
    still_found: list[str] | None = None  #: ``None``: not verified; ``[]``: none of the identifiers remain

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        """API-ready: counts and the verification outcome; never the identifiers themselves."""
        return {
            "rows": dict(self.rows),
            "total": self.total,
            "journeys": self.journeys,
            "audit_id": self.audit_id,
            "compacted": self.compaction is not None,
            "bytes_before": self.compaction.bytes_before if self.compaction else None,
            "bytes_after": self.compaction.bytes_after if self.compaction else None,
            "verified": None if self.still_found is None else not self.still_found,
            "identifiers_still_found": None if self.still_found is None else len(self.still_found),
        }


def keyed_tables(cur: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    """Base tables of the main schema with a ``customer_id`` and/or ``journey_id`` column."""
    rows = cur.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE' "
        "AND c.column_name IN ('customer_id', 'journey_id') AND c.table_catalog = current_database()"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        if table not in _KEEP:
            out.setdefault(table, set()).add(column)
    return out


def delete_journeys(
    cur: duckdb.DuckDBPyConnection, journey_ids: list[str], customer_id: str | None = None
) -> dict[str, int]:
    """Delete the rows of these journeys (and of ``customer_id``) from every keyed table; rows per table.

    Runs in the caller's transaction. Shared by erasure and retention.
    """
    cur.register(_SELECTION, pa.table({"journey_id": pa.array(journey_ids, pa.string())}))
    counts: dict[str, int] = {}
    try:
        # GenAI log records carry no journey: those of the journeys' traces go, before their spans do.
        row = cur.execute(
            f"DELETE FROM log_records WHERE trace_id IN (SELECT trace_id FROM spans "
            f"WHERE journey_id IN (SELECT journey_id FROM {_SELECTION}))"
        ).fetchone()
        counts["log_records"] = int(row[0]) if row else 0
        for table, columns in sorted(keyed_tables(cur).items()):
            conditions, params = [], []
            if "journey_id" in columns:
                conditions.append(f"journey_id IN (SELECT journey_id FROM {_SELECTION})")
            if "customer_id" in columns and customer_id is not None:
                conditions.append("customer_id = ?")
                params.append(customer_id)
            if not conditions:
                continue
            row = cur.execute(f'DELETE FROM "{table}" WHERE {" OR ".join(conditions)}', params).fetchone()
            counts[table] = int(row[0]) if row else 0
    finally:
        cur.unregister(_SELECTION)
    scrub_journeys(cur, journey_ids)  # the change feed names journeys too
    return counts


def erase_customer(
    warehouse: Warehouse,
    customer_id: str,
    *,
    actor: str | None = None,
    reference: str | None = None,
) -> ErasureResult:
    """Delete every row of ``customer_id`` in one transaction (:meth:`Warehouse.transaction`, which publishes
    an ``erasure`` change), audited; :func:`compact_file` then rewrites the file."""
    if not customer_id or not customer_id.strip():
        raise InvalidInputError("a customer id is required")
    with warehouse.transaction("erase a customer") as tx:
        tx.publish(ERASURE, None)  # no journey named: the change would outlive the erasure
        return _erase(tx.cur, customer_id, actor, reference)


def _erase(cur: duckdb.DuckDBPyConnection, customer_id: str, actor: str | None,
           reference: str | None) -> ErasureResult:
    journeys = [r[0] for r in cur.execute(_JOURNEYS_OF, [customer_id] * 3).fetchall()]
    rows = delete_journeys(cur, journeys, customer_id)
    detail = {"rows": rows, "journeys": len(journeys), "reference": reference}
    entry = audit.record(cur, audit.ERASURE, rows=sum(rows.values()), detail=detail, actor=actor)
    return ErasureResult(rows=rows, journeys=len(journeys), audit_id=entry)


_JOURNEYS_OF = """
SELECT journey_id FROM spans WHERE customer_id = ? AND journey_id IS NOT NULL
UNION SELECT journey_id FROM stage_visits WHERE customer_id = ?
UNION SELECT journey_id FROM redaction_log WHERE customer_id = ? AND journey_id IS NOT NULL
"""


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def compact_file(path: str | Path) -> Compaction:
    """Rewrite a closed warehouse file into a fresh one (live rows only) and swap it in atomically.

    The old file's free blocks (deleted rows) are not copied, so they are gone from
    the file once the rename lands. The file must not be open in any process.
    """
    target = Path(path)
    if not target.is_file():
        raise WarehouseError(f"no warehouse at {target}")
    fresh = target.with_name(target.name + ".compact")
    for leftover in (fresh, Path(str(fresh) + ".wal")):
        leftover.unlink(missing_ok=True)
    before = target.stat().st_size + _size(Path(str(target) + ".wal"))
    started = time.perf_counter()
    try:
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{_quote(target)}' AS js_src")
            con.execute("USE js_src")
            con.execute("CHECKPOINT")  # fold the WAL into the old file before copying
            con.execute(f"ATTACH '{_quote(fresh)}' AS js_dst")
            con.execute("COPY FROM DATABASE js_src TO js_dst")
            con.execute("USE memory")
            con.execute("DETACH js_src")
            con.execute("DETACH js_dst")
        finally:
            con.close()
    except duckdb.Error as exc:
        fresh.unlink(missing_ok=True)
        if "lock" in str(exc).lower():
            raise WarehouseError(f"{target} is open in another process; stop it to compact the file") \
                from None
        raise warehouse_error(exc, f"cannot compact {target}") from None
    with open(fresh, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(fresh, target)
    Path(str(target) + ".wal").unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return Compaction(before, target.stat().st_size, time.perf_counter() - started)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_contains(path: str | Path, needles: list[str], chunk: int = 1 << 24) -> list[str]:
    """Which of ``needles`` occur in the raw bytes of the file or its WAL (UTF-8), read in chunks."""
    wanted = {n: n.encode() for n in needles if n}
    if not wanted:
        return []
    overlap = max(len(b) for b in wanted.values()) - 1
    found: set[str] = set()
    for part in (Path(path), Path(str(path) + ".wal")):
        if not part.exists():
            continue
        with open(part, "rb") as handle:
            tail = b""
            while len(found) < len(wanted):
                block = handle.read(chunk)
                if not block:
                    break
                window = tail + block
                found.update(n for n, b in wanted.items() if n not in found and b in window)
                tail = window[-overlap:] if overlap else b""
    return sorted(found)


def forget_customer(
    path: str | Path,
    customer_id: str,
    *,
    actor: str | None = None,
    reference: str | None = None,
    compact: bool = True,
    verify: bool = True,
    also_check: list[str] | None = None,
) -> ErasureResult:
    """Erase ``customer_id`` from a warehouse file, compact it, and check its bytes.

    ``also_check`` adds identifiers to look for (an e-mail address, a name) besides the
    customer id and journey ids. The file must not be open elsewhere (stop ``serve``).
    """
    from journeyscope.warehouse.lake import is_lake
    from journeyscope.warehouse.store import Warehouse  # the writer opens, migrates and checkpoints

    if is_lake(path):
        return _forget_on_lake(str(path), customer_id, actor=actor, reference=reference, compact=compact,
                               verify=verify, also_check=also_check)
    journeys: list[str] = []
    with Warehouse(path) as warehouse:
        journeys = [r[0] for r in warehouse.query(_JOURNEYS_OF, [customer_id] * 3)]
        result = erase_customer(warehouse, customer_id, actor=actor, reference=reference)
    if compact and result.total:  # nothing deleted, nothing to rewrite
        result.compaction = compact_file(path)
        with duckdb.connect(str(path)) as con:
            audit.record(con, audit.COMPACTION, rows=0, actor=actor,
                         detail={"after": audit.ERASURE, "audit_id": result.audit_id,
                                 "bytes_before": result.compaction.bytes_before,
                                 "bytes_after": result.compaction.bytes_after})
            con.execute("CHECKPOINT")
    if verify:
        result.still_found = file_contains(path, [customer_id, *journeys, *(also_check or [])])
    return result


def _forget_on_lake(path: str, customer_id: str, *, actor: str | None, reference: str | None, compact: bool,
                    verify: bool, also_check: list[str] | None) -> ErasureResult:
    """:func:`forget_customer` on a lake: the rows deleted, the Parquet objects holding them rewritten and the old
    ones deleted (:func:`~journeyscope.warehouse.lake_upkeep.purge`), the objects read back for the identifiers."""
    from journeyscope.warehouse import lake_upkeep
    from journeyscope.warehouse.store import Warehouse

    with Warehouse(path) as warehouse:
        journeys = [r[0] for r in warehouse.query(_JOURNEYS_OF, [customer_id] * 3)]
        result = erase_customer(warehouse, customer_id, actor=actor, reference=reference)
        if compact and result.total:
            purged = lake_upkeep.purge(warehouse)
            result.compaction = Compaction(purged.files_before, purged.files_after, purged.seconds)
        if verify:
            result.still_found = lake_upkeep.lake_contains(warehouse, [customer_id, *journeys, *(also_check or [])])
    return result

"""Writes that run on both storages: ``INSERT OR IGNORE`` / ``INSERT OR REPLACE`` by a table's key, and
``RETURNING``.

The embedded file has primary keys and uses DuckDB's conflict clauses on them (fast, answered by the key's
index). A lake (:mod:`journeyscope.warehouse.lake`) has no keys, so the same writes become an anti-join insert
and a delete-then-insert on the key columns, inside the caller's transaction; and DuckLake has no
``RETURNING``, so the rows are kept in a temporary table (an insert) or selected first (an update).
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from journeyscope.warehouse.lake import ALIAS

__all__ = ["insert_ignoring", "insert_replacing", "insert_returning", "on_lake", "set_meta", "sibling",
           "update_returning"]


def on_lake(cur: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``cur`` writes to a lake (it runs in the lake's attached catalog)."""
    row = cur.execute("SELECT current_database()").fetchone()
    return bool(row) and row[0] == ALIAS


def sibling(cur: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another cursor on ``cur``'s database, in the same catalog (a new DuckDB cursor starts in the in-memory one,
    not in the lake ``cur`` uses)."""
    other = cur.cursor()
    if on_lake(cur):
        other.execute(f"USE {ALIAS}")
    return other


def _write(cur: duckdb.DuckDBPyConnection, table: str, select: str, keys: tuple[str, ...], replace: bool,
           by_name: bool, params: list[Any] | None) -> None:
    name = "BY NAME " if by_name else ""
    if not on_lake(cur):
        cur.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO {table} {name}{select}", params or [])
        return
    cols = ", ".join(keys)
    # One row per key from the new rows (the file's key refuses a second one too), kept in a temp table so the
    # SELECT runs once.
    cur.execute(f"CREATE OR REPLACE TEMP TABLE js_keyed AS SELECT * FROM ({select}) "
                f"QUALIFY row_number() OVER (PARTITION BY {cols}) = 1", params or [])
    try:
        if not cur.execute("SELECT count(*) FROM js_keyed").fetchall()[0][0]:
            return  # nothing to write: no statement on the table (each would scan it, and a lake's commit records it)
        if replace:
            cur.execute(f"DELETE FROM {table} WHERE ({cols}) IN (SELECT ({cols}) FROM js_keyed)"
                        if len(keys) > 1 else f"DELETE FROM {table} WHERE {cols} IN (SELECT {cols} FROM js_keyed)")
            cur.execute(f"INSERT INTO {table} {name}SELECT * FROM js_keyed")
        else:
            cur.execute(f"INSERT INTO {table} {name}SELECT * FROM js_keyed ANTI JOIN {table} USING ({cols})")
    finally:
        cur.execute("DROP TABLE IF EXISTS js_keyed")


def insert_ignoring(cur: duckdb.DuckDBPyConnection, table: str, select: str, keys: tuple[str, ...], *,
                    by_name: bool = False, params: list[Any] | None = None) -> None:
    """``INSERT OR IGNORE INTO table select``: rows whose key ``keys`` is stored already are left out."""
    _write(cur, table, select, keys, False, by_name, params)


def insert_replacing(cur: duckdb.DuckDBPyConnection, table: str, select: str, keys: tuple[str, ...], *,
                     by_name: bool = False, params: list[Any] | None = None) -> None:
    """``INSERT OR REPLACE INTO table select``: rows whose key ``keys`` is stored already replace it."""
    _write(cur, table, select, keys, True, by_name, params)


def set_meta(cur: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    """``meta[key] = value``."""
    insert_replacing(cur, "meta", "SELECT ?::VARCHAR AS key, ?::VARCHAR AS value", ("key",), params=[key, value])


def insert_returning(cur: duckdb.DuckDBPyConnection, table: str, select: str, columns: str, *,
                     params: dict[str, Any] | list[Any] | None = None) -> pa.Table:
    """``INSERT INTO table BY NAME select RETURNING columns``, as an Arrow table."""
    if not on_lake(cur):
        return cur.execute(f"INSERT INTO {table} BY NAME {select} RETURNING {columns}", params or []).to_arrow_table()
    cur.execute(f"CREATE OR REPLACE TEMP TABLE js_returning AS {select}", params or [])
    try:
        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM js_returning")
        return cur.execute(f"SELECT {columns} FROM js_returning").to_arrow_table()
    finally:
        cur.execute("DROP TABLE IF EXISTS js_returning")


def update_returning(cur: duckdb.DuckDBPyConnection, table: str, assignments: str, where: str, columns: str, *,
                     params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """``UPDATE table SET assignments WHERE where RETURNING columns`` (``columns`` of the rows before the update:
    name only columns it leaves alone)."""
    if not on_lake(cur):
        return cur.execute(f"UPDATE {table} SET {assignments} WHERE {where} RETURNING {columns}",
                           params or []).fetchall()
    rows = cur.execute(f"SELECT {columns} FROM {table} WHERE {where}", params or []).fetchall()
    if rows:
        cur.execute(f"UPDATE {table} SET {assignments} WHERE {where}", params or [])
    return rows

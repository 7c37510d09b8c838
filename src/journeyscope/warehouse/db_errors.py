"""The one translation of DuckDB's errors into the project's error tree (:mod:`journeyscope.errors`).

DuckDB's messages run over several lines (a caret under the SQL, hints); a user needs
the first, with what journeyscope was doing. Every place a DuckDB error enters the
project raises ``warehouse_error(exc, doing)``; writes get it from
:meth:`journeyscope.warehouse.Warehouse.transaction`.
"""

from __future__ import annotations

import duckdb

from journeyscope.errors import WarehouseError

__all__ = ["first_line", "warehouse_error"]


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def warehouse_error(exc: duckdb.Error, doing: str) -> WarehouseError:
    """``WarehouseError("{doing}: {first line}")``; a file locked by another process is said so plainly."""
    text = first_line(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return WarehouseError(
            f"{doing}: the file is open for writing in another process (is 'journeyscope serve' running?); "
            "read through the server's API or stop it first"
        )
    return WarehouseError(f"{doing}: {text}")

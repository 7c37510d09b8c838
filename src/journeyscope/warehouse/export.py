"""Exports of the warehouse tables in the documented record shapes (JSONL, CSV, Parquet).

Written by DuckDB's own ``COPY`` (streaming, columnar), so exporting ten
million spans never builds them in Python memory. To a stream (standard output)
``COPY`` writes a temporary file that is then copied to the stream: ``COPY ... TO
'/dev/stdout'`` would reopen the descriptor's target, which truncates a redirected
file and writes over an appended one from its start.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import duckdb

from journeyscope.errors import InvalidInputError
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse.decisions import ROUTE_DECISIONS_EXPORT
from journeyscope.warehouse.evaluations import EVALUATIONS_EXPORT
from journeyscope.warehouse.reviews import REVIEWS_EXPORT
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import STAGE_VISITS_EXPORT

FORMATS = ("jsonl", "csv", "parquet")

_ISO = "'%Y-%m-%dT%H:%M:%S.%fZ'"

#: One SELECT per exportable table, columns in the documented order (the modules that own the other
#: tables declare theirs).
_EXPORTS: dict[str, str] = {
    "spans": f"""
        SELECT trace_id, span_id, parent_span_id, name,
               strftime(start_time, {_ISO}) AS start_time,
               strftime(end_time, {_ISO}) AS end_time,
               customer_id, journey_id, journey_name, stage, channel, cohort,
               attributes, kind, status_code, status_message, outcome, turns, events, links, resource,
               service_name, scope_name
        FROM spans ORDER BY journey_id, start_time, seq
    """,
    "stage-visits": STAGE_VISITS_EXPORT,
    "evaluations": EVALUATIONS_EXPORT,
    "route-decisions": ROUTE_DECISIONS_EXPORT,
    "reviews": REVIEWS_EXPORT,
}


def export_names() -> list[str]:
    """What can be exported."""
    return sorted(_EXPORTS)


def export_table(warehouse: Warehouse, name: str, fmt: str, output: str | Path | BinaryIO) -> int:
    """Write table ``name`` to ``output`` (a path, or a binary stream written from its current position)
    in ``fmt``; return the number of records written."""
    if not isinstance(output, (str, Path)):
        with tempfile.TemporaryDirectory(prefix="journeyscope-export-") as folder:
            staged = Path(folder) / f"{name}.{fmt}"
            count = export_table(warehouse, name, fmt, staged)
            with staged.open("rb") as source:
                shutil.copyfileobj(source, output, 1 << 20)
            output.flush()
            return count
    if name not in _EXPORTS:
        raise InvalidInputError(f"unknown export {name!r}; choose one of {', '.join(export_names())}")
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    options = {"jsonl": "FORMAT json", "csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet"}[fmt]
    select = _EXPORTS[name]
    if fmt == "csv":
        # CSV cannot nest: lists and structs become their JSON text.
        select = f"SELECT * REPLACE (to_json(turns)::VARCHAR AS turns) FROM ({select})" if name == "spans" else select
    cur = warehouse.cursor()
    try:
        literal = str(output).replace("'", "''")
        cur.execute(f"COPY ({select}) TO '{literal}' ({options})")
        row = cur.execute(f"SELECT count(*) FROM ({select})").fetchone()
    except duckdb.Error as exc:
        if "Broken pipe" in str(exc):  # the reader went away (`... | head`): not an error of ours
            raise BrokenPipeError(str(exc)) from None
        raise warehouse_error(exc, f"export of {name} to {output} failed") from None
    finally:
        cur.close()
    return int(row[0]) if row else 0

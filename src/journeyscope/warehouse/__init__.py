"""The warehouse: spans in DuckDB, and everything derived from them.

A plain library (``Warehouse(path)``) that the CLI, the server and the
dashboard all call; SQL lives here and nowhere else.

The names below load on first use, so a light module of the package (the read
declarations, filters, the decision shape an orchestrator's client needs)
can be imported without DuckDB and pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from journeyscope.warehouse.journey_map import JourneyMap, load_journey_map
    from journeyscope.warehouse.rows import SPAN_SCHEMA, SpanRows
    from journeyscope.warehouse.store import IngestResult, PreparedBatch, Warehouse

__all__ = ["SPAN_SCHEMA", "IngestResult", "JourneyMap", "PreparedBatch", "SpanRows", "Warehouse", "load_journey_map"]

_HOMES = {
    "SPAN_SCHEMA": "rows", "SpanRows": "rows",
    "IngestResult": "store", "PreparedBatch": "store", "Warehouse": "store",
    "JourneyMap": "journey_map", "load_journey_map": "journey_map",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value

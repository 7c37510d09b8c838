"""Markers: named moments in a warehouse's history (a release, a fix shipping), kept in ``meta``.

The dashboard's compare page splits its two periods at the latest marker by default, so a
before/after question about a release is the first thing it answers. ``journeyscope demo``
marks the day its context bridge ships.
"""

from __future__ import annotations

from datetime import datetime, timezone

from journeyscope.warehouse.dialect import set_meta
from journeyscope.warehouse.store import Warehouse

__all__ = ["markers", "record_marker"]

_PREFIX = "marker:"


def record_marker(warehouse: Warehouse, name: str, at: datetime) -> None:
    """Record (or move) the marker ``name`` at ``at`` (an aware datetime; stored as UTC ISO 8601)."""
    when = at.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    with warehouse.transaction("record a marker") as tx:
        set_meta(tx.cur, _PREFIX + name, when)


def markers(warehouse: Warehouse) -> list[dict[str, str]]:
    """Every marker as ``{"name", "at"}``, oldest first."""
    rows = warehouse.query("SELECT key, value FROM meta WHERE starts_with(key, ?)", [_PREFIX])
    return sorted(({"name": k[len(_PREFIX):], "at": v} for k, v in rows), key=lambda m: m["at"])

"""Retention: delete journeys whose last activity is older than the configured age.

A journey is kept or deleted whole (its spans, stage visits, evaluations, routing
decisions, redaction log), never cut in the middle, so funnels over what remains
stay true. Spans outside any journey go by their own start time; LLM verdicts
(a cache) by when they were made. The audit log is kept: it is the record that
retention ran. Every run is audited, including runs that found nothing to delete.

The server calls :func:`apply_retention` on a timer (e.g. hourly, with the age from
``[retention] max_age`` in ``privacy.toml``); ``journeyscope retention --older-than 90d``
runs it once and can compact the file afterwards (see :mod:`.erasure` for why
deleted rows need that to leave the file's bytes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from journeyscope.warehouse import audit
from journeyscope.warehouse.erasure import delete_journeys
from journeyscope.warehouse.feed import ERASURE

if TYPE_CHECKING:
    from journeyscope.warehouse.store import Warehouse

_NS = 1_000_000_000

_OLD_JOURNEYS = """
SELECT journey_id FROM spans WHERE journey_id IS NOT NULL
GROUP BY journey_id HAVING max(coalesce(end_time, start_time)) < make_timestamp_ns(?)
"""


@dataclass
class RetentionResult:
    """Rows deleted per table by one retention run, and the cut-off it used."""

    cutoff_ns: int
    journeys: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    audit_id: int | None = None

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        return {"cutoff_ns": self.cutoff_ns, "journeys": self.journeys, "rows": dict(self.rows),
                "total": self.total, "audit_id": self.audit_id}


def apply_retention(
    warehouse: Warehouse,
    older_than_s: float,
    *,
    now_ns: int | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Delete what is older than ``older_than_s`` seconds in one transaction (:meth:`Warehouse.transaction`,
    which publishes an ``erasure`` change), audited.

    ``dry_run`` counts the journeys that would go and changes nothing (not audited).
    """
    if older_than_s <= 0:
        raise ValueError("older_than_s must be positive")
    cutoff = (now_ns if now_ns is not None else time.time_ns()) - int(older_than_s * _NS)
    if dry_run:
        return RetentionResult(cutoff, journeys=len(warehouse.query(_OLD_JOURNEYS, [cutoff])))
    with warehouse.transaction("apply retention") as tx:
        result = _retain(tx.cur, cutoff, older_than_s, actor)
        if result.journeys:
            tx.publish(ERASURE, None)
        return result


def _retain(cur: duckdb.DuckDBPyConnection, cutoff: int, older_than_s: float, actor: str | None) -> RetentionResult:
    """Retention's deletes and its audit entry, in the caller's transaction."""
    result = RetentionResult(cutoff)
    journeys = [r[0] for r in cur.execute(_OLD_JOURNEYS, [cutoff]).fetchall()]
    result.journeys = len(journeys)
    rows = delete_journeys(cur, journeys) if journeys else {}
    loose = cur.execute(
        "DELETE FROM spans WHERE journey_id IS NULL AND start_time < make_timestamp_ns(?)", [cutoff]
    ).fetchone()
    rows["spans"] = rows.get("spans", 0) + (int(loose[0]) if loose else 0)
    records = cur.execute(  # GenAI log records whose span never came, or went with its journey
        "DELETE FROM log_records WHERE time < make_timestamp_ns(?)", [cutoff]
    ).fetchone()
    rows["log_records"] = rows.get("log_records", 0) + (int(records[0]) if records else 0)
    verdicts = cur.execute(
        "DELETE FROM llm_verdicts WHERE created_at < make_timestamp_ns(?)::TIMESTAMP", [cutoff]
    ).fetchone()
    rows["llm_verdicts"] = int(verdicts[0]) if verdicts else 0
    result.rows = rows
    result.audit_id = audit.record(
        cur, audit.RETENTION, rows=result.total, actor=actor,
        detail={"older_than_days": round(older_than_s / 86400, 3), "cutoff_ns": cutoff,
                "journeys": len(journeys), "rows": rows},
    )
    return result

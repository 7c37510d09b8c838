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
from typing import Any

import duckdb

from journeyscope.errors import WarehouseError
from journeyscope.warehouse import audit
from journeyscope.warehouse.dialect import sibling
from journeyscope.warehouse.erasure import delete_journeys

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
    con: duckdb.DuckDBPyConnection,
    older_than_s: float,
    *,
    now_ns: int | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Delete what is older than ``older_than_s`` seconds (one transaction, audited).

    ``dry_run`` counts the journeys that would go and changes nothing (not audited).
    The caller holds the warehouse's writer lock (the server) or has the file to itself.
    """
    if older_than_s <= 0:
        raise ValueError("older_than_s must be positive")
    cutoff = (now_ns if now_ns is not None else time.time_ns()) - int(older_than_s * _NS)
    result = RetentionResult(cutoff)
    cur = sibling(con)
    try:
        cur.execute("BEGIN TRANSACTION")
        journeys = [r[0] for r in cur.execute(_OLD_JOURNEYS, [cutoff]).fetchall()]
        result.journeys = len(journeys)
        if dry_run:
            cur.execute("ROLLBACK")
            return result
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
        cur.execute("COMMIT")
    except duckdb.Error as exc:
        cur.execute("ROLLBACK")
        raise WarehouseError(f"retention failed: {str(exc).splitlines()[0]}") from None
    finally:
        cur.close()
    return result

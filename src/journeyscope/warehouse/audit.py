"""The audit log: every erasure, retention run, privacy-policy change and adopted evaluator threshold, recorded
in the warehouse.

An entry says who (the OS user, or the API key's name the server passes), when,
what, and how many rows; its ``detail`` holds counts per table, the policy as
plain data, an operator's reference such as a ticket number, and never an erased
value (not even the customer id that was forgotten: the reference is what
links an erasure to its request). Entries are written in the same transaction
as the change they describe, so one is never without the other.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime, timezone
from typing import Any, Final

import duckdb

from journeyscope import settings

ERASURE: Final = "erasure"
RETENTION: Final = "retention"
POLICY_CHANGE: Final = "policy_change"
COMPACTION: Final = "compaction"
THRESHOLD_ADOPTED: Final = "threshold_adopted"


def default_actor() -> str:
    """``$JOURNEYSCOPE_ACTOR``, else the OS user (``os:NAME``), else ``os:unknown``."""
    explicit = settings.load().actor
    if explicit:
        return explicit
    try:
        return f"os:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry in a container: still audited
        return "os:unknown"


def record(
    cur: duckdb.DuckDBPyConnection,
    action: str,
    *,
    rows: int,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> int:
    """Append one entry (inside the caller's transaction, if any); return its id."""
    row = cur.execute("SELECT coalesce(max(id), 0) + 1 FROM audit_log").fetchone()
    entry_id = int(row[0]) if row else 1
    cur.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?)",
        [
            entry_id,
            datetime.now(timezone.utc).replace(tzinfo=None),
            actor or default_actor(),
            action,
            int(rows),
            json.dumps(detail or {}, sort_keys=True, default=str),
        ],
    )
    return entry_id


def entries(
    cur: duckdb.DuckDBPyConnection, *, action: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The latest entries, newest first, as plain dicts (``at`` in ISO 8601 UTC)."""
    where = "WHERE action = ?" if action else ""
    params: list[Any] = [action] if action else []
    result = cur.execute(
        f'SELECT id, "at", actor, action, "rows", detail FROM audit_log {where} ORDER BY id DESC LIMIT ?',
        [*params, int(limit)],
    ).fetchall()
    return [
        {
            "id": r[0],
            "at": r[1].replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z"),
            "actor": r[2],
            "action": r[3],
            "rows": r[4],
            "detail": json.loads(r[5]) if r[5] else {},
        }
        for r in result
    ]

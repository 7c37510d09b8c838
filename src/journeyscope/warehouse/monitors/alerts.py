"""The alert lifecycle as stored: ok → firing → resolved, with evidence and every delivery attempt.

Live monitoring hands :func:`record` the alarms firing now (from
:func:`.engine.firing_now`); it opens an alert for each new one (with the
failing visits behind it) and resolves each stored alert no longer firing,
in one transaction, and returns what changed so the caller can emit spans and
notify. Reads serve ``GET /v1/alerts``, the dashboard and its stage badges.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from journeyscope.warehouse.filters import _naive_utc
from journeyscope.warehouse.monitors.engine import Alert, iso
from journeyscope.warehouse.monitors.signals import DIMENSIONS, failing_sql, params_for, signals
from journeyscope.warehouse.store import Warehouse

__all__ = ["AlertEvent", "alert_attributes", "alerts", "deliveries", "failing_visits", "firing_by_stage", "interrupted_deliveries",
           "record", "record_delivery"]

#: Failing visits kept as an alert's evidence.
EVIDENCE_VISITS = 5
_COLUMNS = ("id", "monitor", "signal", "journey_name", "stage", "cohort", "channel", "evaluator", "status",
            "fired_at", "resolved_at", "value", "baseline", "n", "evidence", "monitors_version")


@dataclass(frozen=True)
class AlertEvent:
    """An alert that fired or resolved just now, as stored (:func:`alerts` record)."""

    event: str  # "fired" | "resolved"
    alert: dict[str, Any]


def _key(monitor: str, scope: dict[str, str | None]) -> tuple[str | None, ...]:
    return (monitor, *(scope.get(d) for d in DIMENSIONS))


def record(warehouse: Warehouse, firing: list[Alert], *, version: str = "", now: datetime | None = None
           ) -> list[AlertEvent]:
    """Make the stored alerts match ``firing``: open the new ones, resolve the ones no longer firing.

    Only a monitoring pass writes alerts, one process at a time (:meth:`Warehouse.monitoring`), so reading them
    before taking the write lock is safe.
    """
    now = now or datetime.fromtimestamp(warehouse.clock() / 1e9, timezone.utc)
    wanted = {a.key: a for a in firing}
    stored = warehouse.query(
        "SELECT id, monitor, journey_name, stage, cohort, channel, evaluator FROM alerts WHERE status = 'firing'"
    )
    open_keys = {tuple(row[1:]): row[0] for row in stored}
    resolved = [alert_id for key, alert_id in open_keys.items() if key not in wanted]
    new = [alert for key, alert in wanted.items() if key not in open_keys]
    if not resolved and not new:
        return []  # the usual pass: nothing to write, so no write lock taken from ingest
    opened: list[str] = []
    with warehouse.transaction("record alerts") as tx:
        for alert_id in resolved:
            tx.cur.execute("UPDATE alerts SET status = 'resolved', resolved_at = ?, updated_at = ? WHERE id = ?",
                           [_naive_utc(now), _naive_utc(now), alert_id])
        opened = [_insert(tx.cur, alert, version, now) for alert in new]
    events = [AlertEvent("fired", a) for a in alerts(warehouse, ids=opened)]
    return events + [AlertEvent("resolved", a) for a in alerts(warehouse, ids=resolved)]


def _insert(cur: duckdb.DuckDBPyConnection, alert: Alert, version: str, now: datetime) -> str:
    alert_id = os.urandom(8).hex()
    s = alert.scope
    cur.execute(
        f"INSERT INTO alerts ({', '.join(_COLUMNS)}, updated_at) VALUES ({', '.join('?' * len(_COLUMNS))}, ?)",
        [alert_id, alert.monitor, alert.signal, s.get("journey"), s.get("stage"), s.get("cohort"), s.get("channel"),
         s.get("evaluator"), "firing", _naive_utc(alert.fired_at), None, alert.value, alert.baseline, alert.n,
         json.dumps(alert.evidence), version, _naive_utc(now)],
    )
    for journey_id, stage, visit, observed_at, _value, reason in failing_visits(cur, alert):
        cur.execute("INSERT INTO alert_visits VALUES (?, ?, ?, ?, ?, ?)",
                    [alert_id, journey_id, stage, visit, observed_at, reason])
    return alert_id


def failing_visits(cur: duckdb.DuckDBPyConnection, alert: Alert, limit: int = EVIDENCE_VISITS) -> list[tuple[Any, ...]]:
    """The latest bad observations of the run that made ``alert`` fire:
    ``(journey_id, stage, visit, observed_at, value, reason)``."""
    signal = signals()[alert.signal]
    run = alert.evidence.get("run", {})
    sql, params = failing_sql(signal, alert.scope, limit)
    since = datetime.strptime(run.get("from") or iso(alert.fired_at), "%Y-%m-%dT%H:%M:%SZ")
    threshold = alert.evidence["baseline"]["value"]
    params.update({"since": since, "until": _naive_utc(alert.fired_at), "now_ns": int(alert.fired_at.timestamp() * 1e9),
                   "threshold": math.log1p(threshold) if signal.log_scale else threshold})
    return cur.execute(sql, params_for(sql, params)).fetchall()


def alerts(warehouse: Warehouse, *, status: str | None = None, journey: str | None = None,
           stage: str | None = None, ids: list[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Stored alerts, newest first, with their evidence and failing visits."""
    where, params = ["TRUE"], []
    for column, value in (("status", status), ("journey_name", journey), ("stage", stage)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if ids is not None:
        if not ids:
            return []
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params.extend(ids)
    rows = warehouse.query(
        f"SELECT {', '.join(_COLUMNS)} FROM alerts WHERE {' AND '.join(where)} ORDER BY fired_at DESC, id LIMIT ?",
        [*params, limit],
    )
    out = []
    for row in rows:
        record_ = dict(zip(_COLUMNS, row))
        record_["journey"] = record_.pop("journey_name")
        record_["fired_at"], record_["resolved_at"] = _iso(record_["fired_at"]), _iso(record_["resolved_at"])
        record_["evidence"] = json.loads(record_["evidence"]) if record_["evidence"] else {}
        out.append(record_)
    if out:
        visits = warehouse.query(
            f"SELECT alert_id, journey_id, stage, visit, observed_at, reason FROM alert_visits "
            f"WHERE alert_id IN ({', '.join('?' * len(out))}) ORDER BY observed_at DESC",
            [r["id"] for r in out],
        )
        by_alert: dict[str, list[dict[str, Any]]] = {}
        for alert_id, journey_id, stage_, visit, observed_at, reason in visits:
            by_alert.setdefault(alert_id, []).append(
                {"journey_id": journey_id, "stage": stage_, "visit": visit, "at": observed_at, "reason": reason})
        for r in out:
            r["failing_visits"] = by_alert.get(r["id"], [])
    return out


def _iso(value: datetime | None) -> str | None:
    return iso(value.replace(tzinfo=timezone.utc)) if value is not None else None


def firing_by_stage(warehouse: Warehouse) -> dict[tuple[str | None, str | None], int]:
    """Alerts firing now per (journey type, stage): the dashboard's badges."""
    rows = warehouse.query(
        "SELECT journey_name, stage, count(*) FROM alerts WHERE status = 'firing' GROUP BY ALL"
    )
    return {(journey, stage): int(n) for journey, stage, n in rows}


def record_delivery(warehouse: Warehouse, alert_id: str, event: str, url: str, attempt: int, status: str,
                    http_status: int | None = None, error: str | None = None) -> None:
    """Log one webhook delivery attempt (``status``: delivered, retrying or failed)."""
    with warehouse.transaction("record a webhook delivery") as tx:
        tx.cur.execute(
            "INSERT INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [alert_id, event, url, attempt, _naive_utc(datetime.fromtimestamp(warehouse.clock() / 1e9, timezone.utc)),
             status, http_status, error],
        )


def interrupted_deliveries(warehouse: Warehouse) -> list[tuple[AlertEvent, str, int]]:
    """Deliveries whose last recorded attempt was to be retried (the server stopped meanwhile):
    ``(event, url, attempts so far)``, so a restarted server carries on where it left off."""
    rows = warehouse.query(
        "SELECT alert_id, event, url, max(attempt) FROM alert_deliveries GROUP BY ALL "
        "HAVING arg_max(status, attempt) = 'retrying' ORDER BY min(attempted_at)"
    )
    stored = {a["id"]: a for a in alerts(warehouse, ids=sorted({r[0] for r in rows}), limit=len(rows) or 1)}
    return [(AlertEvent(event, stored[alert_id]), url, int(attempts))
            for alert_id, event, url, attempts in rows if alert_id in stored]


def deliveries(warehouse: Warehouse, alert_id: str | None = None) -> list[dict[str, Any]]:
    """Delivery attempts, oldest first (of one alert, or all)."""
    where, params = ("WHERE alert_id = ?", [alert_id]) if alert_id else ("", [])
    rows = warehouse.query(
        f"SELECT alert_id, event, url, attempt, attempted_at, status, http_status, error FROM alert_deliveries "
        f"{where} ORDER BY attempted_at, attempt",
        params,
    )
    names = ("alert_id", "event", "url", "attempt", "attempted_at", "status", "http_status", "error")
    return [{**dict(zip(names, r)), "attempted_at": _iso(r[4])} for r in rows]


def alert_attributes(event: AlertEvent) -> dict[str, Any]:
    """An alert firing or resolving as ``journey.alert`` span attributes."""
    a = event.alert
    return {
        "alert.id": a["id"],
        "alert.event": event.event,
        "alert.monitor": a["monitor"],
        "alert.signal": a["signal"],
        "alert.stage": a["stage"] or "",
        "alert.cohort": a["cohort"] or "",
        "alert.channel": a["channel"] or "",
        "alert.evaluator": a["evaluator"] or "",
        "alert.value": a["value"],
        "alert.baseline": a["baseline"],
        "alert.n": a["n"],
        "alert.fired_at": a["fired_at"],
        "alert.resolved_at": a["resolved_at"] or "",
        "alert.evidence": json.dumps(a["evidence"]),
    }

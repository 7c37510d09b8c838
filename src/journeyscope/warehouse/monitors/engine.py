"""Evaluating monitors over the warehouse: one replay that serves backtests and live monitoring alike.

For each monitor the signal's hourly sums per scope come from one SQL query
(:func:`.signals.bucket_sql`, ``*`` grouping by each value seen); Python builds
each scope's baseline per hour (its own history before the recent window, its
journey's other stages, another cohort/stage/channel over the same hours, or a
target) and runs the sequential rule (:mod:`.rules`) hour by hour. The result is every alarm episode, with when
it fired and resolved.

A backtest (:func:`backtest`) replays a stretch of history; live monitoring
(:func:`firing_now`) replays up to now and keeps the episodes still firing, so
both apply the same definition to the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from journeyscope.warehouse.filters import _naive_utc
from journeyscope.warehouse.monitors.rules import Baseline, Episode, run_rule
from journeyscope.warehouse.monitors.signals import DIMENSIONS, Signal, bucket_sql, params_for, signals
from journeyscope.warehouse.monitors.spec import Monitor, MonitorSet, check_scopes
from journeyscope.warehouse.store import Warehouse

__all__ = ["Alert", "backtest", "data_span", "firing_now", "iso", "known_scopes", "lookback", "validate"]

_HOUR = timedelta(hours=1)
Key = tuple[str | None, ...]


@dataclass(frozen=True)
class Alert:
    """One alarm of one monitor on one scope: when it fired, resolved, and the evidence."""

    monitor: str
    signal: str
    scope: dict[str, str | None]
    fired_at: datetime
    resolved_at: datetime | None
    value: float
    baseline: float
    n: int
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> Key:
        return (self.monitor, *(self.scope.get(d) for d in DIMENSIONS))

    def as_dict(self) -> dict[str, Any]:
        """The backtest JSON record (docs/contracts.md), with the scope's other dimensions after it."""
        return {
            "monitor": self.monitor,
            "journey": self.scope.get("journey"),
            "stage": self.scope.get("stage"),
            "cohort": self.scope.get("cohort"),
            "signal": self.signal,
            "fired_at": iso(self.fired_at),
            "resolved_at": iso(self.resolved_at),
            "value": self.value,
            "baseline": self.baseline,
            "n": self.n,
            "channel": self.scope.get("channel"),
            "evaluator": self.scope.get("evaluator"),
        }


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def lookback(monitors: MonitorSet) -> timedelta:
    """How much history a replay needs before its first hour: the longest baseline plus recent window."""
    if not monitors.monitors:
        return timedelta(0)
    return timedelta(seconds=max(m.baseline_window_s + m.window_s for m in monitors.monitors))


def data_span(warehouse: Warehouse) -> tuple[datetime, datetime] | None:
    """The first and last visit start in the warehouse (UTC), or None when it holds none."""
    row = warehouse.query("SELECT min(started_at), max(ended_at) FROM stage_visits")[0]
    if row[0] is None:
        return None
    return row[0].replace(tzinfo=timezone.utc), row[1].replace(tzinfo=timezone.utc)


@dataclass
class _Grid:
    start: datetime  # the first hour (naive UTC)
    hours: int
    until: datetime  # UTC

    def end_of(self, index: int) -> datetime:
        return min((self.start + (index + 1) * _HOUR).replace(tzinfo=timezone.utc), self.until)

    def start_of(self, index: int) -> datetime:
        return (self.start + index * _HOUR).replace(tzinfo=timezone.utc)


def _fold(warehouse: Warehouse, signal: Signal, spec: dict[str, str | None], grid: _Grid,
          now_ns: int) -> dict[Key, np.ndarray]:
    """Hourly (n, k, s, ss) per scope key, from SQL: ``None`` pools a dimension, ``*`` splits it."""
    sql, params = bucket_sql(signal, spec)
    params.update({"now_ns": now_ns, "since": grid.start, "until": _naive_utc(grid.until)})
    cur = warehouse.cursor()
    try:
        rows = cur.execute(sql, params_for(sql, params)).fetchall()
    finally:
        cur.close()
    out: dict[Key, np.ndarray] = {}
    nd = len(DIMENSIONS)
    for row in rows:
        index = int((row[nd] - grid.start) / _HOUR)
        if 0 <= index < grid.hours:
            series = out.setdefault(tuple(row[:nd]), np.zeros((4, grid.hours)))
            series[:, index] = (row[nd + 1], row[nd + 2], row[nd + 3] or 0.0, row[nd + 4] or 0.0)
    return out


def _window_sums(series: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per hour ``i``, the sums of ``series`` over hours ``[lo[i], hi[i])`` (clipped to the grid)."""
    cum = np.concatenate([np.zeros((4, 1)), np.cumsum(series, axis=1)], axis=1)
    size = series.shape[1]
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    return cum[:, hi] - cum[:, lo]


def _baselines(monitor: Monitor, signal: Signal, own: np.ndarray, other: np.ndarray | None) -> list[Baseline | None]:
    hours = own.shape[1]
    index = np.arange(hours)
    w, r = int(monitor.baseline_window_s // 3600), int(monitor.window_s // 3600)
    if monitor.baseline == "history":
        sums = _window_sums(own, index - r - w, index - r)
    elif monitor.baseline == "target":
        sums = _window_sums(own, index - w + 1, index + 1)  # only for a mean's spread
    else:
        assert other is not None
        sums = _window_sums(other, index - w + 1, index + 1)
    out: list[Baseline | None] = []
    for n, k, s, ss in sums.T:
        if monitor.baseline == "target":
            sd = _sd(n, s, ss) if signal.kind == "mean" and n >= 2 else None
            out.append(Baseline(monitor.target or 0.0, int(n), sd, exact=True))
        elif n < monitor.min_baseline:
            out.append(None)
        elif signal.kind == "rate":
            out.append(Baseline((k + 0.5) / (n + 1), int(n), k=float(k)))
        else:
            out.append(Baseline(s / n, int(n), _sd(n, s, ss)))
    return out


def _sd(n: float, s: float, ss: float) -> float:
    mean = s / n
    return float(np.sqrt(max(ss / n - mean * mean, 0.0) * n / max(n - 1, 1)))


def _comparison(monitor: Monitor, key: Key, folds: dict[str, dict[Key, np.ndarray]],
                fold: Any) -> np.ndarray | None:
    """The series a peer or other-cohort/stage/channel baseline reads for scope ``key``."""
    dims = dict(zip(DIMENSIONS, key))
    if monitor.baseline == "peers":
        if "peers" not in folds:
            folds["peers"] = fold({**monitor.scope, "stage": None})
        pooled = folds["peers"].get(tuple(None if d == "stage" else dims[d] for d in DIMENSIONS))
        return None if pooled is None else pooled - folds["own"][key]
    dim, value = monitor.baseline, monitor.baseline_value
    if dim not in folds:
        folds[dim] = fold({**monitor.scope, dim: value})
    return folds[dim].get(tuple(value if d == dim else dims[d] for d in DIMENSIONS))


def _evaluate(warehouse: Warehouse, monitors: MonitorSet, grid: _Grid, now_ns: int) -> list[Alert]:
    known = signals()
    alerts: list[Alert] = []
    for monitor in monitors.monitors:
        signal = known[monitor.signal]

        def fold(spec: dict[str, str | None], signal: Signal = signal) -> dict[Key, np.ndarray]:
            return _fold(warehouse, signal, spec, grid, now_ns)

        folds = {"own": fold(monitor.scope)}
        for key, own in sorted(folds["own"].items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            scope = dict(zip(DIMENSIONS, key))
            other = None
            if monitor.baseline not in ("history", "target"):
                if monitor.baseline != "peers" and scope.get(monitor.baseline) == monitor.baseline_value:
                    continue  # the comparison group itself
                if monitor.baseline == "peers" and scope.get("stage") is None:
                    continue  # peers of a stage need the stage split out
                other = _comparison(monitor, key, folds, fold)
                if other is None:
                    continue
            shift = monitor.shift if monitor.shift is not None else (2.0 if signal.kind == "rate" else 0.5)
            episodes = run_rule(
                signal.kind, signal.worse, own[0], own[1], own[2], own[3], _baselines(monitor, signal, own, other),
                shift=shift, threshold=monitor.threshold, resolve_threshold=monitor.resolve_threshold,
                min_window=monitor.min_window, min_events=monitor.min_events,
            )
            alerts.extend(_alert(monitor, signal, scope, e, grid, own, shift) for e in episodes)
    return alerts


def _shown(signal: Signal, value: float) -> float:
    return float(np.expm1(value)) if signal.log_scale else float(value)


def _alert(monitor: Monitor, signal: Signal, scope: dict[str, str | None], e: Episode, grid: _Grid,
           own: np.ndarray, shift: float) -> Alert:
    fired_at = grid.end_of(e.fired)
    recent = own[:, max(0, e.fired + 1 - int(monitor.window_s // 3600)): e.fired + 1].sum(axis=1)
    evidence = {
        "signal": signal.name,
        "description": signal.description,
        "unit": signal.unit,
        "kind": signal.kind,
        "baseline": {"kind": monitor.baseline, "of": monitor.describe_baseline(), "value": _shown(signal, e.baseline.value),
                     "n": e.baseline.n, "sd": e.baseline.sd},
        "run": {"from": iso(grid.start_of(e.run_start)), "to": iso(fired_at), "n": e.n,
                "bad": e.k if signal.kind == "rate" else None, "value": _shown(signal, e.value),
                "ci_low": _shown(signal, e.ci_low), "ci_high": _shown(signal, e.ci_high)},
        "window": {"from": iso(fired_at - timedelta(seconds=monitor.window_s)), "to": iso(fired_at),
                   "n": int(recent[0]), "bad": int(recent[1]) if signal.kind == "rate" else None},
        "rule": {"cusum": round(e.cusum, 3), "threshold": monitor.threshold,
                 "resolve_threshold": monitor.resolve_threshold, "shift": shift,
                 "min_window": monitor.min_window, "min_events": monitor.min_events},
    }
    return Alert(
        monitor=monitor.name,
        signal=signal.name,
        scope=scope,
        fired_at=fired_at,
        resolved_at=grid.end_of(e.resolved) if e.resolved is not None else None,
        value=_shown(signal, e.value),
        baseline=_shown(signal, e.baseline.value),
        n=e.n,
        evidence=evidence,
    )


def _grid(start: datetime, until: datetime) -> _Grid:
    first = _floor_hour(_naive_utc(start))
    hours = max(1, int(np.ceil((_naive_utc(until) - first) / _HOUR)))
    return _Grid(first, hours, until.astimezone(timezone.utc) if until.tzinfo else until.replace(tzinfo=timezone.utc))


def backtest(warehouse: Warehouse, monitors: MonitorSet, *, since: datetime | None = None,
             until: datetime | None = None) -> list[Alert]:
    """Replay history as if live: every alarm that fired or was still firing in ``[since, until)``.

    ``since`` defaults to the first data, ``until`` to an hour after the last visit ended (never past
    the warehouse clock): an alarm still open then stays open, as it would live. History before ``since`` (up to :func:`lookback`) warms the baselines up.
    """
    now = datetime.fromtimestamp(warehouse.clock() / 1e9, timezone.utc)
    span = data_span(warehouse)
    if until is None:
        until = min(now, span[1] + _HOUR) if span else now
    if since is None:
        since = span[0] if span else until
    since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    until = until if until.tzinfo else until.replace(tzinfo=timezone.utc)
    if since >= until:
        return []
    grid = _grid(since - lookback(monitors), until)
    alerts = _evaluate(warehouse, monitors, grid, int(until.timestamp() * 1e9))
    kept = [a for a in alerts if a.fired_at >= since or a.resolved_at is None or a.resolved_at > since]
    return sorted(kept, key=lambda a: (a.fired_at, a.key))


def firing_now(warehouse: Warehouse, monitors: MonitorSet, *, since: datetime,
               now_ns: int | None = None) -> list[Alert]:
    """The alarms firing at the warehouse clock (``now_ns``), replaying from ``since``.

    Live monitoring calls this whenever data changed; ``since`` stays fixed while the server runs,
    so an episode keeps its fire time from one call to the next.
    """
    now_ns = now_ns if now_ns is not None else warehouse.clock()
    now = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
    if since >= now:
        return []
    return [a for a in _evaluate(warehouse, monitors, _grid(since, now), now_ns) if a.resolved_at is None]


def validate(warehouse: Warehouse, monitors: MonitorSet) -> None:
    """Refuse monitors naming a journey type, stage or evaluator this warehouse does not know (a ConfigError)."""
    from journeyscope.evaluators import registered

    check_scopes(monitors, known_scopes(warehouse), set(registered()))


def known_scopes(warehouse: Warehouse) -> dict[str, set[str]]:
    """Each journey type's stages, from the journey map and the visits."""
    known: dict[str, set[str]] = {}
    for name, journey in warehouse.journey_map.journeys.items():
        known.setdefault(name, set()).update(journey.stages)
    for name, stage in warehouse.query(
        "SELECT DISTINCT journey_name, stage FROM stage_visits WHERE journey_name IS NOT NULL"
    ):
        known.setdefault(name, set()).add(stage)
    return known

"""``serve --monitors FILE``: evaluate monitors within seconds of data arriving; thin glue over the library.

The engine (:mod:`journeyscope.warehouse.monitors`) does the work; this module
only decides when. It is the last consumer of the project's derive loop
(:mod:`journeyscope.warehouse.derive`): it runs when the change feed says visits or
evaluations changed (at most every ``min_interval_s``, and at most ``share`` of a core:
a pass is mostly Python, the baselines and rules of every scope hour by hour, which holds
the interpreter lock the API needs, so it rests in proportion to the CPU time it took,
:class:`~journeyscope.warehouse.derive.CpuShare`), and every ``idle_interval_s`` anyway, since
the clock alone ends alarms' windows. Each pass replays from a start fixed while any alert is firing (so an
alarm keeps its history; else it trails the clock by twice the monitors'
look-back), stores what fired and resolved, emits each change as
a ``journey.alert`` span through the write door, and queues the webhooks (at start,
also the deliveries a previous server left waiting for a retry).

The file is reloaded when it changes; an invalid file is logged and kept as
``last_error`` (``GET /v1/alerts`` shows it) while the previous monitors stay in force.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

from journeyscope import conventions as cv
from journeyscope.errors import ConfigError
from journeyscope.tomlconfig import FileWatch
from journeyscope.server.webhooks import WebhookSender
from journeyscope.warehouse import Warehouse, feed
from journeyscope.warehouse.derive import CpuShare
from journeyscope.warehouse.feed import ChangeBatch
from journeyscope.warehouse.monitors import MonitorSet, firing_now, load_monitors
from journeyscope.warehouse.monitors.alerts import AlertEvent, alert_attributes, interrupted_deliveries, record
from journeyscope.warehouse.monitors.engine import lookback, validate
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.writer import Overloaded, Writer

logger = logging.getLogger(__name__)


def alert_rows(events: list[AlertEvent], now_ns: int) -> SpanRows:
    """One ``journey.alert`` span per event, tagged with the journey type (no customer: it is about many)."""
    rows = SpanRows()
    for event in events:
        journey = event.alert.get("journey")
        rows.add(
            trace_id=os.urandom(16).hex(),
            span_id=os.urandom(8).hex(),
            parent_span_id=None,
            name=cv.ALERT_SPAN,
            start_ns=now_ns,
            end_ns=now_ns,
            attributes={**({cv.JOURNEY_NAME: journey} if journey else {}), **alert_attributes(event)},
            kind="internal",
            status_code="unset",
            scope_name="journeyscope.server",
        )
    return rows


class MonitorService:
    """Live monitoring of one project's warehouse (a consumer of its derive loop)."""

    name = "monitors"
    kinds = frozenset({feed.VISITS, feed.SCORES, feed.FEEDBACK, feed.ERASURE})
    durable = False  # each pass replays the monitors' window: nothing to resume

    def __init__(self, warehouse: Warehouse, writer: Writer, path: str, sender: WebhookSender, *,
                 min_interval_s: float = 1.0, idle_interval_s: float = 60.0, share: float = 0.25) -> None:
        self.warehouse = warehouse
        self.writer = writer
        self.path = path
        self.min_interval_s = min_interval_s
        self.idle_interval_s = idle_interval_s
        self.pacing = CpuShare(share)
        self.active: MonitorSet = load_monitors(path)  # an invalid file at start is a start-up error
        validate(warehouse, self.active)
        self.last_error: str | None = None
        self.passes = 0
        self._watch = FileWatch(path)
        now = datetime.fromtimestamp(warehouse.clock() / 1e9, timezone.utc)
        self.since = now - lookback(self.active)
        self.sender = sender
        self._last = 0.0  # monotonic time of the last pass

    def start(self) -> MonitorService:
        """Resume the webhook deliveries a previous server left waiting for a retry."""
        by_url = {w.url: w for w in self.active.webhooks}
        for event, url, attempts in interrupted_deliveries(self.warehouse):
            if url in by_url:
                self.sender.resume(event, by_url[url], attempts)
        return self

    def stop(self) -> None:
        self.sender.close()

    # -- the derive loop's consumer ----------------------------------------------------
    def consume(self, batch: ChangeBatch, now: float) -> None:
        self._last = now
        with self.pacing.measure():
            self.run_pass()

    def not_before(self) -> float:
        return max(self._last + self.min_interval_s, self.pacing.not_before)

    def backlog(self) -> bool:
        return False

    def next_tick(self) -> float | None:
        return self._last + self.idle_interval_s

    def reload(self) -> bool:
        """Re-read the file; ``True`` when the new monitors took effect (else the previous ones stay)."""
        try:
            candidate = load_monitors(self.path)
            validate(self.warehouse, candidate)
        except ConfigError as exc:
            self.last_error = str(exc)
            logger.error("journeyscope: monitors file rejected, previous monitors stay in force: %s", exc)
            return False
        self.active, self.last_error = candidate, None
        now = datetime.fromtimestamp(self.warehouse.clock() / 1e9, timezone.utc)
        self.since = min(self.since, now - lookback(candidate))
        logger.warning("journeyscope: monitors %s loaded from %s", candidate.version, self.path)
        return True

    def run_pass(self) -> list[AlertEvent]:
        """One pass: store what fired and resolved, emit spans, queue webhooks; return the changes. On a lake
        that other receivers write too, a pass while another process's runs is skipped: that one records."""
        if self._watch.changed():
            self.reload()
        with self.warehouse.monitoring() as ours:
            return self._pass() if ours else []

    def _pass(self) -> list[AlertEvent]:
        monitors = self.active
        now_ns = self.warehouse.clock()
        firing = firing_now(self.warehouse, monitors, since=self.since, now_ns=now_ns)
        events = record(self.warehouse, firing, version=monitors.version)
        if not firing:
            # Nothing open: the replay may start later without changing any alert, so it stays the
            # look-back long instead of growing with the server's uptime.
            now = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
            self.since = max(self.since, now - 2 * lookback(monitors))
        self.passes += 1
        if events:
            try:
                self.writer.ingest(alert_rows(events, now_ns), kind=feed.EVENTS)
            except Overloaded as exc:  # the alerts are stored; only their spans wait for a quieter moment
                logger.warning("journeyscope: alert spans not written: %s", exc)
            for event in events:
                self.sender.send(event, monitors.webhooks)
        return events

    def describe(self) -> dict[str, Any]:
        return {"source": self.active.source, "version": self.active.version,
                "monitors": [m.name for m in self.active.monitors], "last_error": self.last_error,
                "passes": self.passes}

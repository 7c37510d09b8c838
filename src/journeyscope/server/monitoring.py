"""``serve --monitors FILE``: evaluate monitors within seconds of data arriving; thin glue over the library.

The engine (:mod:`journeyscope.warehouse.monitors`) does the work; this module
only decides when: whenever the writer derived visits or online scoring wrote
evaluations (at most every ``min_interval_s``), and every ``idle_interval_s``
anyway, since the clock alone turns idle visits abandoned and ends alarms'
windows. Each pass replays from a start fixed while any alert is firing (so an
alarm keeps its history; else it trails the clock by twice the monitors'
look-back), stores what fired and resolved, emits each change as
a ``journey.alert`` span through the writer, and queues the webhooks (at start,
also the deliveries a previous server left waiting for a retry).

The file is reloaded when it changes; an invalid file is logged and kept as
``last_error`` (``GET /v1/alerts`` shows it) while the previous monitors stay in force.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from journeyscope.errors import ConfigError, JourneyscopeError
from journeyscope import conventions as cv
from journeyscope.server.priority import lower_this_thread
from journeyscope.server.webhooks import WebhookSender
from journeyscope.server.writer import BatchWriter, Overloaded
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.monitors import MonitorSet, firing_now, load_monitors
from journeyscope.warehouse.monitors.alerts import AlertEvent, alert_attributes, interrupted_deliveries, record
from journeyscope.warehouse.monitors.engine import lookback, validate
from journeyscope.warehouse.rows import SpanRows

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
    """Live monitoring of one project's warehouse."""

    def __init__(self, warehouse: Warehouse, writer: BatchWriter, path: str, *, min_interval_s: float = 1.0,
                 idle_interval_s: float = 60.0, sender: WebhookSender | None = None) -> None:
        self.warehouse = warehouse
        self.writer = writer
        self.path = path
        self.min_interval_s = min_interval_s
        self.idle_interval_s = idle_interval_s
        self.active: MonitorSet = load_monitors(path)  # an invalid file at start is a start-up error
        validate(warehouse, self.active)
        self.last_error: str | None = None
        self.passes = 0
        self._mtime = self._current_mtime()
        now = datetime.fromtimestamp(warehouse.clock() / 1e9, timezone.utc)
        self.since = now - lookback(self.active)
        self.sender = sender or WebhookSender(warehouse)
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="journeyscope-monitors", daemon=True)

    def start(self) -> MonitorService:
        by_url = {w.url: w for w in self.active.webhooks}
        for event, url, attempts in interrupted_deliveries(self.warehouse):
            if url in by_url:
                self.sender.resume(event, by_url[url], attempts)
        self._thread.start()
        return self

    def changed(self, _journeys: Any = None) -> None:
        """Data changed (a writer or scoring callback): evaluate soon."""
        self._changed.set()

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()
        self._thread.join(timeout=30)
        self.sender.close()

    def _current_mtime(self) -> float | None:
        try:
            return Path(self.path).stat().st_mtime
        except OSError:
            return None

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

    def evaluate_now(self) -> list[AlertEvent]:
        """One pass: store what fired and resolved, emit spans, queue webhooks; return the changes."""
        mtime = self._current_mtime()
        if mtime is not None and mtime != self._mtime:
            self._mtime = mtime
            self.reload()
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
                self.writer.submit(self.warehouse.prepare(alert_rows(events, now_ns)))
            except Overloaded as exc:  # the alerts are stored; only their spans wait for a quieter moment
                logger.warning("journeyscope: alert spans not written: %s", exc)
            for event in events:
                self.sender.send(event, monitors.webhooks)
        return events

    def describe(self) -> dict[str, Any]:
        return {"source": self.active.source, "version": self.active.version,
                "monitors": [m.name for m in self.active.monitors], "last_error": self.last_error,
                "passes": self.passes}

    def _loop(self) -> None:
        lower_this_thread()
        last = 0.0
        while not self._stop.is_set():
            self._changed.wait(timeout=self.idle_interval_s)
            if self._stop.is_set():
                return
            wait = last + self.min_interval_s - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            self._changed.clear()
            last = time.monotonic()
            try:
                self.evaluate_now()
            except JourneyscopeError as exc:
                logger.warning("journeyscope: monitor pass failed: %s", exc)
            except Exception:  # noqa: BLE001 - keep monitoring; the next pass tries again
                logger.exception("journeyscope: monitor pass failed")

"""Stage signals for the API, precomputed and refreshed in the background.

An orchestrator asks for stage signals on every turn; recomputing a funnel
over a million journeys per request would cost a second each time. Instead each
filter that has been asked for recently is recomputed by a background thread
whenever the warehouse has changed (and at most every ``refresh_s``), and
requests answer from memory. The first request for a new filter computes it
once, synchronously. Stage visits themselves are the incrementally maintained
rollup of spans (the writer re-derives only touched journeys); this cache is the
layer on top that makes reads O(1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from journeyscope.server.priority import lower_this_thread
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport
from journeyscope.warehouse.stage_signals import StageSignal
from journeyscope.warehouse.stage_signals import signals_by_stage as _signals_by_stage

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    report: FunnelReport
    computed_at: float
    version: Any
    last_used: float
    views: dict[str, Any] = field(default_factory=dict)  #: answers rendered from ``report``, by name
    #: How each view asked for so far is rendered: a refresh renders them again before swapping the report in.
    renderers: dict[str, Callable[[FunnelReport], Any]] = field(default_factory=dict)


class SignalCache:
    """Funnel reports per filter, served from memory and refreshed when the data changes.

    ``compute`` builds a report for a filter; ``version`` tells whether the
    warehouse changed since (any value that changes with every commit).
    """

    def __init__(
        self,
        compute: Callable[[Filters], FunnelReport],
        version: Callable[[], Any],
        *,
        refresh_s: float = 1.0,
        forget_after_s: float = 600.0,
    ) -> None:
        self._compute = compute
        self._version = version
        self.refresh_s = refresh_s
        self.forget_after_s = forget_after_s
        self._entries: dict[Filters, _Entry] = {}
        self._computing: dict[Filters, threading.Lock] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, prime: Callable[[], list[Filters]] | None = None) -> SignalCache:
        """Start refreshing; first compute the reports of ``prime()`` (the filters routing will ask for)."""
        self._thread = threading.Thread(target=self._loop, args=(prime,), name="journeyscope-signals", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def report(self, filters: Filters) -> tuple[FunnelReport, float]:
        """The report for ``filters`` and its age in seconds (computed once, however many ask at once)."""
        held = self.cached(filters)
        if held is not None:
            return held
        with self._lock:
            computing = self._computing.setdefault(filters, threading.Lock())
        with computing:
            held = self.cached(filters)
            if held is not None:
                return held
            version = self._version()
            report = self._compute(filters)
            now = time.monotonic()
            with self._lock:
                self._entries[filters] = _Entry(report, now, version, now)
                self._computing.pop(filters, None)
        return report, 0.0

    def cached(self, filters: Filters) -> tuple[FunnelReport, float] | None:
        """The report for ``filters`` and its age if held (never computes: safe on the event loop)."""
        entry, age = self._touch(filters)
        return None if entry is None else (entry.report, age)

    def _touch(self, filters: Filters) -> tuple[_Entry | None, float]:
        """The held entry (marked as used now) and its age."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(filters)
            if entry is not None:
                entry.last_used = now
                return entry, now - entry.computed_at
        return None, 0.0

    def view(self, filters: Filters, name: str, render: Callable[[FunnelReport], Any]) -> tuple[Any, float] | None:
        """``render(report)`` for a held report (``None`` if not held).

        An answer built from the report (the ``/v1/stages`` body) is then as cheap
        to serve as the report itself: it is rendered on its first request, and
        from then on by the refresher, with each new report, off the event loop.
        """
        entry, age = self._touch(filters)
        if entry is None:
            return None
        with self._lock:
            view = entry.views.get(name)
            report = entry.report
        if view is None:
            view = render(report)
            with self._lock:
                entry.renderers[name] = render
                if entry.report is report:
                    entry.views[name] = view
        return view, age

    def stage_signals(
        self, filters: Filters, journey: str | None, stage: str | None, *, compute: bool = True
    ) -> dict[str, StageSignal] | None:
        """Routing signals of one stage (empty when the stage has no data for the filter).

        With ``compute=False`` a report not held yet gives ``None`` instead of being computed.
        """
        held = self.view(filters, "stage_signals", _signals_by_stage)
        if held is None:
            if not compute:
                return None
            self.report(filters)  # held now, and just used: not forgotten before the next line
            held = self.view(filters, "stage_signals", _signals_by_stage)
            assert held is not None
        by_stage = held[0]
        if journey is not None:
            return by_stage.get((journey, stage), {})
        return next((signals for (_, s), signals in by_stage.items() if s == stage), {})

    def refresh_once(self) -> int:
        """Recompute every stale, recently used filter; return how many were recomputed."""
        now = time.monotonic()
        version = self._version()
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.last_used > self.forget_after_s]:
                del self._entries[key]
            stale = [k for k, e in self._entries.items() if e.version != version and now - e.computed_at >= self.refresh_s]
        for filters in stale:
            report = self._compute(filters)
            with self._lock:
                held = self._entries.get(filters)
                renderers = dict(held.renderers) if held is not None else {}
            views = {name: render(report) for name, render in renderers.items()}
            with self._lock:
                entry = self._entries.get(filters)
                if entry is not None:
                    entry.report, entry.computed_at, entry.version = report, time.monotonic(), version
                    entry.views = {name: view for name, view in views.items()
                                   if entry.renderers.get(name) is renderers[name]}
        return len(stale)

    def _loop(self, prime: Callable[[], list[Filters]] | None) -> None:
        lower_this_thread()
        if prime is not None:
            try:
                for filters in prime():
                    if self._stop.is_set():
                        return
                    self.report(filters)
            except Exception:  # noqa: BLE001 - an unprimed filter is computed on its first request
                logger.exception("journeyscope: precomputing stage signals failed")
        while not self._stop.wait(self.refresh_s / 2):
            try:
                self.refresh_once()
            except Exception:  # noqa: BLE001 - a failed refresh keeps serving the last good report
                logger.exception("journeyscope: refreshing stage signals failed")

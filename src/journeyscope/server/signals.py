"""Stage signals for the API, precomputed and refreshed in the background.

An orchestrator asks for stage signals on every turn; recomputing a funnel
over a million journeys per request would cost a second each time. Instead each
filter that has been asked for recently is recomputed in the project's derive loop
(:mod:`journeyscope.warehouse.derive`) whenever the change feed says visits,
evaluations or feedback changed (at most every ``refresh_s``), and requests answer
from memory. The first request for a new filter computes it once, synchronously.
Stage visits themselves are the incrementally maintained rollup of spans (upkeep
re-derives only touched journeys); this cache is the layer on top that makes reads O(1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from journeyscope.warehouse import feed
from journeyscope.warehouse.feed import ChangeBatch
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport
from journeyscope.warehouse.stage_signals import StageSignal
from journeyscope.warehouse.stage_signals import signals_by_stage as _signals_by_stage

logger = logging.getLogger(__name__)


@dataclass
class _Entry:
    report: FunnelReport
    computed_at: float
    stale: bool
    last_used: float
    views: dict[str, Any] = field(default_factory=dict)  #: answers rendered from ``report``, by name
    #: How each view asked for so far is rendered: a refresh renders them again before swapping the report in.
    renderers: dict[str, Callable[[FunnelReport], Any]] = field(default_factory=dict)


class SignalCache:
    """Funnel reports per filter, served from memory and refreshed when the data changes.

    ``compute`` builds a report for a filter; ``prime`` lists the filters to compute before anyone asks
    (those routing will ask for). A consumer of the derive loop.
    """

    name = "signals"
    kinds = frozenset({feed.VISITS, feed.SCORES, feed.FEEDBACK, feed.ERASURE})
    durable = False

    def __init__(
        self,
        compute: Callable[[Filters], FunnelReport],
        *,
        prime: Callable[[], list[Filters]] | None = None,
        refresh_s: float = 1.0,
        forget_after_s: float = 600.0,
    ) -> None:
        self._compute = compute
        self._prime = prime
        self.refresh_s = refresh_s
        self.forget_after_s = forget_after_s
        self._entries: dict[Filters, _Entry] = {}
        self._computing: dict[Filters, threading.Lock] = {}
        self._lock = threading.Lock()
        self._not_before = 0.0

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
            report = self._compute(filters)
            now = time.monotonic()
            with self._lock:
                self._entries[filters] = _Entry(report, now, False, now)
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

    def mark_stale(self) -> None:
        """Every held report is stale (recomputed by the next :meth:`refresh_once`): the feed said data changed."""
        with self._lock:
            for entry in self._entries.values():
                entry.stale = True

    def refresh_once(self) -> int:
        """Recompute every stale, recently used filter; return how many were recomputed."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.last_used > self.forget_after_s]:
                del self._entries[key]
            stale = [k for k, e in self._entries.items() if e.stale]
            for key in stale:
                self._entries[key].stale = False  # a change from here on makes it stale again
        for filters in stale:
            report = self._compute(filters)
            with self._lock:
                held = self._entries.get(filters)
                renderers = dict(held.renderers) if held is not None else {}
            views = {name: render(report) for name, render in renderers.items()}
            with self._lock:
                entry = self._entries.get(filters)
                if entry is not None:
                    entry.report, entry.computed_at = report, time.monotonic()
                    entry.views = {name: view for name, view in views.items()
                                   if entry.renderers.get(name) is renderers[name]}
        return len(stale)

    # -- the derive loop's consumer ----------------------------------------------------
    def consume(self, batch: ChangeBatch, now: float) -> None:
        """Prime the filters routing will ask for (first pass); recompute the held reports when data changed."""
        if self._prime is not None:
            prime, self._prime = self._prime, None
            for filters in prime():
                self.report(filters)
        if batch:
            self.mark_stale()
            self.refresh_once()
            self._not_before = time.monotonic() + self.refresh_s

    def not_before(self) -> float:
        return self._not_before

    def backlog(self) -> bool:
        return False

    def next_tick(self) -> float | None:
        return None if self._prime is None else 0.0

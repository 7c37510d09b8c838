"""Live journey state in memory, so ``/v1/route`` and ``/v1/journeys/{id}`` need no query.

A point lookup in DuckDB costs a millisecond or more (two of them per journey,
more under write load), and an orchestrator asks on every turn. So the server
keeps the stored rows of the journeys it has been asked about and re-reads them in the background,
in one batch, when the writer reports that their stage visits changed or their
evaluations were written. A request renders the state from memory as of its own
moment (:func:`journeyscope.warehouse.journey_state.render_state`), so silence
and idle timeouts are exact even between refreshes. The first request for a
journey reads it synchronously.

Memory is bounded by ``max_journeys`` (the server's ``state_journeys`` setting; the least recently
asked are forgotten past it), and a journey idle past its timeout is let go (checked every
``evict_every_s``): nothing but a new span moves it, and a request for it reads it again, with the
same answer.

Freshness: a change is visible once the writer has derived the journey's visits
(under a second, see :mod:`journeyscope.server.writer`) plus one refresh round
(``refresh_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from journeyscope.server.priority import lower_this_thread
from journeyscope.warehouse.journey_state import JourneyRows, journey_rows, render_state
from journeyscope.warehouse.store import Warehouse

logger = logging.getLogger(__name__)


class JourneyStates:
    """The rows of recently asked-about journeys, refreshed when they change."""

    def __init__(
        self, warehouse: Warehouse, *, max_journeys: int = 10_000, warm_journeys: int = 10_000, refresh_s: float = 0.05,
        evict_every_s: float = 5.0,
    ) -> None:
        if max_journeys < 1:
            raise ValueError("max_journeys must be >= 1")
        self.warehouse = warehouse
        self.max_journeys = max_journeys
        self.evict_every_s = evict_every_s
        self.warm_journeys = min(warm_journeys, max_journeys)
        self.refresh_s = refresh_s
        #: Set once the recently active journeys are read (the server then freezes its long-lived heap).
        self.warmed = threading.Event()
        self._rows: OrderedDict[str, JourneyRows] = OrderedDict()
        self._changed: set[str] = set()
        self._fetching: set[str] = set()  # first reads under way: a change meanwhile must not be lost
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> JourneyStates:
        """Start refreshing; first read the most recently active journeys (the ones orchestrators ask about)."""
        self._thread = threading.Thread(target=self._run, name="journeyscope-journey-states", daemon=True)
        self._thread.start()
        return self

    def warm(self) -> int:
        """Read the ``warm_journeys`` most recently active journeys into memory; return how many."""
        if self.warm_journeys <= 0:
            return 0
        recent = self.warehouse.query(
            "SELECT journey_id FROM stage_visits GROUP BY journey_id ORDER BY max(ended_at) DESC LIMIT ?",
            [self.warm_journeys],
        )
        rows = journey_rows(self.warehouse, [r[0] for r in recent])
        with self._lock:
            for journey_id, held in rows.items():
                if journey_id not in self._rows:  # a request may have read it meanwhile, fresher
                    self._remember(journey_id, held)
        return len(rows)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def state(self, journey_id: str, now_ns: int | None = None) -> dict[str, Any] | None:
        """The journey's live state (``None`` if it has no stage visits); reads it if not held."""
        held = self.held_state(journey_id, now_ns)
        if held is not None:
            return held
        with self._lock:
            self._fetching.add(journey_id)
        rows = None
        try:
            rows = journey_rows(self.warehouse, [journey_id]).get(journey_id)
        finally:
            with self._lock:
                self._fetching.discard(journey_id)
                if rows is not None:
                    self._remember(journey_id, rows)
        return None if rows is None else render_state(journey_id, rows, now_ns)

    def held_state(self, journey_id: str, now_ns: int | None = None) -> dict[str, Any] | None:
        """The state if this journey is held, else ``None`` (never queries: safe on the event loop)."""
        with self._lock:
            rows = self._rows.get(journey_id)
            if rows is None:
                return None
            self._rows.move_to_end(journey_id)
        return render_state(journey_id, rows, now_ns)

    def changed(self, journey_ids: Iterable[str]) -> None:
        """The writer's notice: these journeys' visits or evaluations changed (re-read the cached ones)."""
        with self._wake:
            held = [j for j in journey_ids if j in self._rows or j in self._fetching]
            if held:
                self._changed.update(held)
                self._wake.notify()

    def forget(self) -> None:
        """Drop every journey held: after an erasure or retention run, nothing of them stays here."""
        with self._lock:
            self._rows.clear()
            self._changed.clear()

    def refresh_once(self) -> int:
        """Re-read every changed journey still held; return how many were re-read."""
        with self._lock:
            ids, self._changed = self._changed, set()
        if not ids:
            return 0
        try:
            fresh = journey_rows(self.warehouse, ids)
        except BaseException:
            with self._lock:
                self._changed.update(ids)  # still stale: the next round tries them again
            raise
        with self._lock:
            for j in ids:
                if j not in self._rows:
                    continue  # forgotten meanwhile
                if j in fresh:
                    self._rows[j] = fresh[j]
                else:
                    del self._rows[j]  # erased
        return len(ids)

    def evict_idle(self, now_ns: int | None = None) -> int:
        """Let go of the journeys idle past their timeout as of ``now_ns`` (default: now); return how many."""
        now_ns = now_ns if now_ns is not None else time.time_ns()
        with self._lock:
            held = list(self._rows.items())
        idle = [(j, rows) for j, rows in held if rows.idle_after_ns() <= now_ns]
        evicted = 0
        with self._lock:
            for journey_id, rows in idle:
                if self._rows.get(journey_id) is rows:  # not re-read meanwhile (a new span may have moved it)
                    del self._rows[journey_id]
                    evicted += 1
        return evicted

    def __len__(self) -> int:
        return len(self._rows)

    def _remember(self, journey_id: str, rows: JourneyRows) -> None:
        self._rows[journey_id] = rows
        self._rows.move_to_end(journey_id)
        while len(self._rows) > self.max_journeys:
            self._rows.popitem(last=False)

    def _run(self) -> None:
        lower_this_thread()
        try:
            self.warm()
        except Exception:  # noqa: BLE001 - a cold start only costs the first request of each journey
            logger.exception("journeyscope: reading recent journeys into memory failed")
        finally:
            self.warmed.set()
        self._loop()

    def _loop(self) -> None:
        evict_at = time.monotonic() + self.evict_every_s
        while True:
            with self._wake:
                while not self._changed and not self._stopping and time.monotonic() < evict_at:
                    self._wake.wait(max(0.0, evict_at - time.monotonic()))
                if self._stopping:
                    return
            if time.monotonic() >= evict_at:
                self.evict_idle()
                evict_at = time.monotonic() + self.evict_every_s
            try:
                self.refresh_once()
            except Exception:  # noqa: BLE001 - keep serving the rows held; the next change retries
                logger.exception("journeyscope: refreshing journey states failed")
            with self._wake:
                self._wake.wait(self.refresh_s)  # let changes gather: one batch serves many

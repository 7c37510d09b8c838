"""Live journey state in memory, so ``/v1/route`` and ``/v1/journeys/{id}`` need no query.

A point lookup in DuckDB costs a millisecond or more (two of them per journey,
more under write load), and an orchestrator asks on every turn. So the server
keeps the stored rows of the journeys it has been asked about (least recently
asked are forgotten past ``max_journeys``) and re-reads them, in one batch, when
the change feed says their stage visits or evaluations changed: it is a consumer
of the project's derive loop (:mod:`journeyscope.warehouse.derive`), run after
visit upkeep. A request renders the state from memory as of its own moment
(:func:`journeyscope.warehouse.journey_state.render_state`), so silence and idle
timeouts are exact even between refreshes. The first request for a journey reads
it synchronously; the first pass reads the most recently active journeys.

Freshness: a change is visible once upkeep has derived the journey's visits (see
:class:`~journeyscope.warehouse.derive.VisitUpkeep`) plus one pass (``refresh_s`` at most).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from journeyscope.warehouse import feed
from journeyscope.warehouse.feed import ChangeBatch
from journeyscope.warehouse.journey_state import JourneyRows, journey_rows, recent_journeys, render_state
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import outcome_at

logger = logging.getLogger(__name__)


class JourneyStates:
    """The rows of recently asked-about journeys, refreshed when the feed says they changed."""

    name = "journey-states"
    kinds = frozenset({feed.VISITS, feed.SCORES, feed.ERASURE})
    durable = False

    def __init__(
        self, warehouse: Warehouse, *, max_journeys: int = 50_000, warm_journeys: int = 10_000, refresh_s: float = 0.05,
        prune_s: float = 60.0,
    ) -> None:
        """``prune_s``: how often journeys with no open visit left, not asked about since, are forgotten."""
        self.warehouse = warehouse
        self.prune_s = prune_s
        self._asked: set[str] = set()  # asked about since the last prune
        self._prune_at = time.monotonic() + prune_s
        self.max_journeys = max_journeys
        self.warm_journeys = min(warm_journeys, max_journeys)
        self.refresh_s = refresh_s
        #: Set once the recently active journeys are read.
        self.warmed = threading.Event()
        self._rows: OrderedDict[str, JourneyRows] = OrderedDict()
        self._fetching: set[str] = set()  # first reads under way: a change meanwhile must not be lost
        self._stale: set[str] = set()  # changed while being read for the first time
        self._lock = threading.Lock()
        self._not_before = 0.0

    def warm(self) -> int:
        """Read the ``warm_journeys`` most recently active journeys into memory; return how many."""
        if self.warm_journeys <= 0:
            return 0
        rows = journey_rows(self.warehouse, recent_journeys(self.warehouse, self.warm_journeys))
        with self._lock:
            for journey_id, held in rows.items():
                if journey_id not in self._rows:  # a request may have read it meanwhile, fresher
                    self._remember(journey_id, held)
        return len(rows)

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
                if rows is not None and journey_id not in self._stale:
                    self._remember(journey_id, rows)
                    self._asked.add(journey_id)
                self._stale.discard(journey_id)
        return None if rows is None else render_state(journey_id, rows, now_ns)

    def held_state(self, journey_id: str, now_ns: int | None = None) -> dict[str, Any] | None:
        """The state if this journey is held, else ``None`` (never queries: safe on the event loop)."""
        with self._lock:
            rows = self._rows.get(journey_id)
            if rows is None:
                return None
            self._rows.move_to_end(journey_id)
            self._asked.add(journey_id)
        return render_state(journey_id, rows, now_ns)

    # -- the derive loop's consumer ----------------------------------------------------
    def consume(self, batch: ChangeBatch, now: float) -> None:
        """Re-read the held journeys that changed (all of them after an erasure: it names none)."""
        if not self.warmed.is_set():
            try:
                self.warm()
            finally:
                self.warmed.set()
        if now >= self._prune_at:
            self._prune_at = now + self.prune_s
            self.prune()
        if not batch:
            return
        changed = batch.journeys()
        with self._lock:
            if any(c.kind == feed.ERASURE for c in batch.changes):
                self._rows.clear()  # nothing of an erased journey stays here
                self._stale |= self._fetching
                return
            held = list(self._rows) if changed is None else [j for j in changed if j in self._rows]
            self._stale |= self._fetching if changed is None else (changed & self._fetching)
        self._not_before = now + self.refresh_s  # let changes gather: one batch serves many
        if not held:
            return
        fresh = journey_rows(self.warehouse, held)
        with self._lock:
            for j in held:
                if j not in self._rows:
                    continue  # forgotten meanwhile
                if j in fresh:
                    self._rows[j] = fresh[j]
                else:
                    del self._rows[j]  # erased

    def prune(self, now_ns: int | None = None) -> int:
        """Forget the journeys whose visits are all closed (or idle past their timeout) and that nobody asked about
        since the last prune: memory holds live journeys, not every journey ever asked about. Returns how many."""
        now_ns = self.warehouse.clock() if now_ns is None else now_ns
        with self._lock:
            held, asked, self._asked = list(self._rows.items()), self._asked, set()
        done = [j for j, rows in held
                if j not in asked and not any(outcome_at(v[4], v[5], now_ns) == "open" for v in rows.visits)]
        with self._lock:
            for j in done:
                self._rows.pop(j, None)
        return len(done)

    def __len__(self) -> int:
        return len(self._rows)

    def not_before(self) -> float:
        return self._not_before

    def backlog(self) -> bool:
        return False

    def next_tick(self) -> float | None:
        return self._prune_at if self.warmed.is_set() else 0.0

    def _remember(self, journey_id: str, rows: JourneyRows) -> None:
        self._rows[journey_id] = rows
        self._rows.move_to_end(journey_id)
        while len(self._rows) > self.max_journeys:
            self._rows.popitem(last=False)

"""One project as the server holds it: its warehouse, write door, derive loop and timers.

Each project has its own warehouse file (see :mod:`journeyscope.server.auth`),
so everything here is per project and nothing is shared between two of them.
A project runs three threads of its own:

- ``journeyscope-writer``: the write door's commits (:class:`~journeyscope.warehouse.writer.Writer`);
- ``journeyscope-derive-NAME``: the derive loop (:class:`~journeyscope.warehouse.derive.DeriveLoop`),
  which follows the change feed and runs, in this order, stage-visit upkeep (and the idle-visit
  timer), journey states, stage signals, online scoring and monitors (with ``serve --no-derive``, on a
  lake whose ``journeyscope derive`` workers do the upkeep and scoring, only the ones held in memory for
  the API: journey states, stage signals, and monitors);
- ``journeyscope-timers-NAME``: buffered routing decisions handed to the write door, and retention.

Webhook deliveries (``--monitors``) wait on other servers, so they run as tasks on the server's event loop
(:mod:`journeyscope.server.webhooks`), not on a thread of their own, and never hold up the derive loop.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from journeyscope.server.decisions import DecisionLog
from journeyscope.server.journey_states import JourneyStates
from journeyscope.server.monitoring import MonitorService
from journeyscope.server.policy_store import PolicyStore
from journeyscope.server.priority import lower_this_thread
from journeyscope.server.runtime import Runtime
from journeyscope.server.scoring import OnlineScoring
from journeyscope.server.settings import ServerSettings
from journeyscope.server.signals import SignalCache
from journeyscope.server.timers import Timers
from journeyscope.server.webhooks import WebhookSender
from journeyscope.server.workers import WorkerPool
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.derive import Consumer, DeriveLoop, VisitUpkeep
from journeyscope.warehouse.funnel import funnel, routing_filters
from journeyscope.warehouse.retention import apply_retention
from journeyscope.warehouse.writer import Writer

logger = logging.getLogger(__name__)


class Project:
    """A project's runtime (warehouse + write door) and what the derive loop keeps up to date on top of it."""

    def __init__(self, name: str, settings: ServerSettings, policies: PolicyStore, loop: asyncio.AbstractEventLoop,
                 workers: WorkerPool | None = None) -> None:
        """``loop``: the server's event loop, where webhook deliveries wait on their receivers."""
        self.name = name
        self.loop = loop
        self.workers = workers
        self.settings = settings
        self.runtime = Runtime(settings)
        self.policies = policies
        self.states: JourneyStates | None = None
        self.signals: SignalCache | None = None
        self.decisions: DecisionLog | None = None
        self.monitors: MonitorService | None = None
        self.scoring: OnlineScoring | None = None
        self.upkeep: VisitUpkeep | None = None
        self.derive: DeriveLoop | None = None
        self.timers: Timers | None = None
        self._stopping = False

    @property
    def warehouse(self) -> Warehouse:
        assert self.runtime.warehouse is not None, "project not started"
        return self.runtime.warehouse

    @property
    def writer(self) -> Writer:
        assert self.runtime.writer is not None, "project not started"
        return self.runtime.writer

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Commit everything accepted so far (buffered decisions, queued spans) and derive what follows."""
        if self.decisions is not None and not self.decisions.flush():
            return False
        if not self.writer.force_flush(timeout_s):
            return False
        return self.derive is None or self.derive.flush(timeout_s)

    def caught_up(self, timeout_s: float = 30.0) -> bool:
        """Wait until what memory holds reflects every commit so far (after an erasure, say)."""
        return self.derive is None or self.derive.caught_up(timeout_s=timeout_s)

    def start(self) -> Project:
        settings = self.settings
        self.runtime.start()
        warehouse = self.warehouse
        self.states = JourneyStates(warehouse, max_journeys=settings.state_journeys)
        self.signals = SignalCache(partial(funnel, warehouse), prime=partial(routing_filters, warehouse),
                                   refresh_s=settings.signals_refresh_s)
        consumers: list[Consumer] = [self.states, self.signals]
        if settings.derive:
            self.upkeep = VisitUpkeep(warehouse, idle_sweep_s=settings.idle_sweep_s, ingest_idle=self.writer.idle)
            consumers.insert(0, self.upkeep)
        if settings.derive and settings.evaluate_online:
            self.scoring = OnlineScoring(
                warehouse, scorer=lambda: self.workers.executor if self.workers is not None else None,
                share=settings.evaluate_share, stop=lambda: self._stopping)
            consumers.append(self.scoring)
        if settings.monitors_file is not None:
            self.monitors = MonitorService(warehouse, self.writer, settings.monitors_file,
                                           WebhookSender(warehouse, self.loop)).start()
            consumers.append(self.monitors)
        self.derive = DeriveLoop(warehouse, consumers, name=f"journeyscope-derive-{self.name}",
                                 thread_init=lower_this_thread).start()
        self.decisions = DecisionLog(self.writer)
        self.timers = Timers(f"journeyscope-timers-{self.name}", thread_init=lower_this_thread)
        self.timers.every(self.decisions.flush_s, "handing routing decisions to the writer", self.decisions.flush)
        privacy = warehouse.privacy
        if privacy is not None and privacy.policy.retention_s:
            self.timers.every(settings.retention_interval_s, "retention",
                              partial(self._retention, privacy.policy.retention_s), at_once=True)
        self.timers.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self.timers is not None:
            self.timers.stop()
        if self.decisions is not None:
            self.decisions.close()
        if self.runtime.writer is not None:
            self.writer.force_flush(60)
        if self.derive is not None:
            self.derive.stop()
        if self.upkeep is not None:
            try:  # the last commits' visits, so the file is complete for its next reader
                self.warehouse.update_visits()
            except Exception:  # noqa: BLE001 - the backlog stays in the file; its next opening derives it
                logger.exception("journeyscope: deriving the last stage visits failed")
        if self.monitors is not None:
            self.monitors.stop()
        self.runtime.stop()

    def _retention(self, max_age_s: float) -> None:
        """Delete journeys older than the privacy policy's ``[retention] max_age`` (the feed tells the rest)."""
        result = apply_retention(self.warehouse, max_age_s, actor="journeyscope-serve:retention")
        if result.journeys:
            logger.warning("journeyscope: retention deleted %d journeys older than %.0f days",
                           result.journeys, max_age_s / 86400)

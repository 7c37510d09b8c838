"""One project as the server holds it: its warehouse and writer, signal cache, policies, online scoring.

Each project has its own warehouse file (see :mod:`journeyscope.server.auth`),
so everything here is per project and nothing is shared between two of them.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from journeyscope.errors import JourneyscopeError
from journeyscope.server.decisions import DecisionLog
from journeyscope.server.journey_states import JourneyStates
from journeyscope.server.monitoring import MonitorService
from journeyscope.server.policy_store import PolicyStore
from journeyscope.server.priority import lower_this_thread
from journeyscope.server.runtime import Runtime
from journeyscope.server.settings import ServerSettings
from journeyscope.server.signals import SignalCache
from journeyscope.server.workers import WorkerPool
from journeyscope.server.writer import BatchWriter
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import funnel

logger = logging.getLogger(__name__)


class Project:
    """A project's runtime (warehouse + single writer) and the services on top of it."""

    def __init__(self, name: str, settings: ServerSettings, policies: PolicyStore,
                 workers: WorkerPool | None = None) -> None:
        self.name = name
        self.workers = workers
        self.settings = settings
        self.runtime = Runtime(settings)
        self.policies = policies
        self.evaluations_written = 0
        self.erasures = 0
        self.signals = SignalCache(lambda f: funnel(self.warehouse, f), self.data_version, refresh_s=settings.signals_refresh_s)
        self.states: JourneyStates | None = None
        self.decisions: DecisionLog | None = None
        self.monitors: MonitorService | None = None
        self._to_score: set[str] | None = None  # journeys whose visits changed since the last pass (None: all)
        self._to_score_lock = threading.Lock()
        self._stop = threading.Event()
        self._evaluator: threading.Thread | None = None

    @property
    def warehouse(self) -> Warehouse:
        assert self.runtime.warehouse is not None, "project not started"
        return self.runtime.warehouse

    @property
    def writer(self) -> BatchWriter:
        assert self.runtime.writer is not None, "project not started"
        return self.runtime.writer

    def data_version(self) -> Any:
        """Changes whenever stage visits or evaluations change (what the signal cache watches).

        Not with every commit: a routing decision is a span too, and must not make
        the server recompute every funnel it holds.
        """
        return (self.writer.stats.visit_updates, self.evaluations_written, self.erasures)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Commit everything accepted so far (buffered decisions, queued spans) and derive its visits."""
        if self.decisions is not None and not self.decisions.flush():
            return False
        return self.writer.force_flush(timeout_s)

    def _routing_filters(self) -> list[Filters]:
        """The filters ``/v1/route`` reads: each journey type, and each journey type and cohort."""
        pairs = self.warehouse.query(
            "SELECT DISTINCT journey_name, cohort FROM stage_visits WHERE journey_name IS NOT NULL ORDER BY ALL"
        )
        names = sorted({name for name, _ in pairs})
        return [Filters(journey=n) for n in names] + [Filters(journey=n, cohort=c) for n, c in pairs if c]

    def evaluations_changed(self) -> None:
        """Stored evaluations were decided again (an adopted threshold): signals held on them are stale."""
        self.evaluations_written += 1

    def data_erased(self) -> None:
        """Journeys were deleted (erasure, retention): forget what memory holds of them."""
        self.erasures += 1
        if self.states is not None:
            self.states.forget()

    def start(self) -> Project:
        self.runtime.start()
        self.states = JourneyStates(self.warehouse, max_journeys=self.settings.state_journeys).start()
        self.writer.on_visits_changed.append(self.states.changed)
        self.decisions = DecisionLog(self.writer)
        self.signals.start(prime=self._routing_filters)
        if self.settings.monitors_file is not None:
            self.monitors = MonitorService(self.warehouse, self.writer, self.settings.monitors_file).start()
            self.writer.on_visits_changed.append(self.monitors.changed)
        privacy = self.warehouse.privacy
        if privacy is not None and privacy.policy.retention_s:
            threading.Thread(target=self._retention_loop, args=(privacy.policy.retention_s,),
                             name=f"journeyscope-retention-{self.name}", daemon=True).start()
        if self.settings.evaluate_online:
            self.writer.on_visits_changed.append(self._visits_changed)
            self._evaluator = threading.Thread(target=self._evaluate_loop, name=f"journeyscope-eval-{self.name}", daemon=True)
            self._evaluator.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.signals.stop()
        if self._evaluator is not None:
            self._evaluator.join(timeout=30)
        if self.monitors is not None:
            self.monitors.stop()
        if self.decisions is not None:
            self.decisions.close()
        if self.states is not None:
            self.states.stop()
        self.runtime.stop()

    def _visits_changed(self, journey_ids: list[str]) -> None:
        with self._to_score_lock:
            if self._to_score is not None:
                self._to_score.update(journey_ids)

    def evaluate_now(self) -> int:
        """Score what is due (local engine); return how many results were written.

        The first pass looks at every journey (a backlog from before a restart); later passes only
        at the journeys whose visits the writer changed since, so a pass costs what changed.
        """
        from journeyscope.warehouse.evaluations import evaluate_pending

        with self._to_score_lock:
            journeys, self._to_score = self._to_score, set()
        if journeys is not None and not journeys:
            return 0
        scorer = self.workers.executor if self.workers is not None else None
        try:
            # Small batches: every read and write of a batch is one call that holds the GIL the API needs.
            summary = evaluate_pending(self.warehouse, "local", scorer=scorer, journeys=journeys, batch_journeys=50,
                                       stop=self._stop.is_set)
        except BaseException:
            self._rescore(journeys)
            raise
        if summary.changed or summary.stopped:
            self._rescore(journeys)  # some moved on while being read, or were not reached: again next pass
        if summary.results:
            self.evaluations_written += summary.results
            if self.states is not None:
                self.states.changed(summary.journeys)
            if self.monitors is not None:
                self.monitors.changed(summary.journeys)
        return summary.results

    def _rescore(self, journeys: set[str] | None) -> None:
        with self._to_score_lock:
            if journeys is None or self._to_score is None:
                self._to_score = None
            else:
                self._to_score.update(journeys)

    def _retention_loop(self, max_age_s: float) -> None:
        """Delete journeys older than the privacy policy's ``[retention] max_age``, at start and hourly."""
        from journeyscope.warehouse.retention import apply_retention

        lower_this_thread()
        while True:
            try:
                with self.warehouse.writing() as cur:
                    result = apply_retention(cur, max_age_s, actor="journeyscope-serve:retention")
                if result.journeys:
                    self.data_erased()
                    logger.warning("journeyscope: retention deleted %d journeys older than %.0f days",
                                   result.journeys, max_age_s / 86400)
            except Exception:  # noqa: BLE001 - retry at the next round; the audit log shows each run
                logger.exception("journeyscope: retention run failed")
            if self._stop.wait(self.settings.retention_interval_s):
                return

    def _evaluate_loop(self) -> None:
        """Online scoring: visits are scored within a few seconds of closing."""
        lower_this_thread()
        while not self._stop.wait(self.settings.evaluate_interval_s):
            try:
                self.evaluate_now()
            except JourneyscopeError as exc:
                logger.warning("journeyscope: online evaluation failed: %s", exc)
            except Exception:  # noqa: BLE001 - keep serving; the next round tries again
                logger.exception("journeyscope: online evaluation failed")

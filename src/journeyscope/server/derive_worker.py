"""``journeyscope derive``: a derive worker, one of several on a lake, each deriving a partition of the journeys.

On a lake with many receivers (``journeyscope serve --no-derive``), stage-visit upkeep and online scoring run
in derive workers instead: ``journeyscope derive --partition K/N`` follows the lake's change feed
(:class:`~journeyscope.warehouse.feed.LakeFeed`, commits of every process) and, for the journeys of its
partition only (:class:`~journeyscope.warehouse.partition.Partition`), derives their visits (and closes idle
ones) and scores them, in one derive loop like a server's (:class:`~journeyscope.warehouse.derive.DeriveLoop`).

What makes a crash harmless: visit upkeep's position on the change feed is stored per partition in the catalog
once the visits derived from the journeys before it are committed (a crash in between derives them again, and a
journey derived twice comes out the same), and so is scoring's after what it scored is committed; evaluations
are keyed by visit and evaluator and only visits not yet scored are scored, so a restarted worker resumes where
the last recorded position was and writes no second result for a visit. Its writes take the lake's derived-data
lock (DuckLake refuses overlapping transactions deleting from one table), so workers take turns committing while
their reading and scoring run side by side.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from journeyscope.errors import ConfigError, WarehouseError
from journeyscope.server.priority import database_threads
from journeyscope.server.scoring import OnlineScoring
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.derive import Consumer, DeriveLoop, VisitUpkeep
from journeyscope.warehouse.lake import LakeLocation, describe, is_lake
from journeyscope.warehouse.partition import Partition

logger = logging.getLogger(__name__)

__all__ = ["DeriveWorker", "WorkerSettings", "stop_on_signals"]


@dataclass(frozen=True)
class WorkerSettings:
    """What one derive worker derives, and where."""

    db: str
    partition: Partition
    data_path: str | None = None
    map_file: str | None = None
    evaluate: bool = True
    #: Seconds between sweeps that mark idle journeys' open visits ``abandoned`` (of this partition).
    idle_sweep_s: float = 30.0
    #: Threads per DuckDB query (``None``: :func:`~journeyscope.server.priority.database_threads`, as a receiver's).
    db_threads: int | None = None


class DeriveWorker:
    """A warehouse on the lake and a derive loop over it: visit upkeep and online scoring of one partition."""

    def __init__(self, settings: WorkerSettings) -> None:
        if not is_lake(settings.db) or LakeLocation.parse(settings.db, settings.data_path).conninfo is None:
            raise ConfigError(f"journeyscope derive needs a lake in PostgreSQL (--db ducklake:postgres:<conninfo>), "
                              f"not {describe(settings.db)}: a warehouse file or a DuckDB-file catalog has one "
                              "writer process, the 'journeyscope serve' that derives it")
        self.settings = settings
        self.warehouse = Warehouse(settings.db, data_path=settings.data_path,
                                   journey_map=load_journey_map(settings.map_file))
        # A worker shares its machine with receivers or other workers: a query's threads beyond the cores left
        # over cost it more CPU than they save (the README's lake benchmark notes).
        self.warehouse.set_threads(database_threads(settings.db_threads))
        partition = settings.partition
        self.upkeep = VisitUpkeep(self.warehouse, idle_sweep_s=settings.idle_sweep_s, partition=partition)
        consumers: list[Consumer] = [self.upkeep]
        self.scoring: OnlineScoring | None = None
        if settings.evaluate:
            self.scoring = OnlineScoring(self.warehouse, share=1.0, partition=partition)
            consumers.append(self.scoring)
        self.loop = DeriveLoop(self.warehouse, consumers, name=f"journeyscope-derive-{partition}")

    def run(self, *, once: bool = False, ready: Callable[[str], None] | None = None,
            stop: threading.Event | None = None) -> None:
        """Derive until ``stop`` is set (SIGTERM/SIGINT when run from the command line); with ``once``, until
        everything committed so far is derived. ``ready`` is told one line when the loop runs."""
        try:
            if once:
                if ready is not None:
                    ready(self._describe())
                if not self.loop.flush(timeout_s=3600):
                    raise WarehouseError("journeyscope derive --once did not catch up within an hour")
                return
            stop = stop if stop is not None else threading.Event()
            self.loop.start()
            if ready is not None:
                ready(self._describe())
            while not stop.wait(1.0):
                pass
        finally:
            self.close()

    def _describe(self) -> str:
        parts = ["visits"] + (["scores"] if self.scoring is not None else [])
        return (f"journeyscope derive: partition {self.settings.partition} of {describe(self.settings.db)} "
                f"({', '.join(parts)}), from generation {self.warehouse.feed.generation()}")

    def close(self) -> None:
        self.loop.stop()
        self.warehouse.close()


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the main thread waits on it; the loop's thread keeps deriving)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop

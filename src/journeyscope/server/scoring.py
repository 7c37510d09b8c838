"""Online scoring: stage visits scored by the local evaluators within seconds of changing.

A consumer of the project's derive loop (:mod:`journeyscope.warehouse.derive`): it
reads the ``visits`` changes, keeps the journeys they name as its backlog, and scores
``chunk_journeys`` of them per pass (the evaluators themselves run in the worker
processes when there are some), so the loop's other consumers (journey states, stage
signals) stay fresh between chunks.

What a chunk costs this process is mostly DuckDB finding the pending visits and reading
their transcripts, and most of that does not grow with the chunk: the reads plan and
run the same large queries for ten journeys as for a hundred. Small chunks therefore
spend the server's CPU on those fixed costs, and under steady ingest never catch up.
Its share of this process's CPU is capped: after a chunk that took ``c`` seconds of
the derive thread's CPU time (``time.thread_time``: not the time spent waiting for
the write lock, which costs the API nothing) and of the worker processes for it, it rests
``c * (1 - share) / share`` (``share`` 1 scores flat out). Its position is durable: a
restarted server scores what changed since; a server that never scored (or fell
further behind than the feed keeps) scores every journey once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from journeyscope.warehouse import feed
from journeyscope.warehouse.derive import CpuShare
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.feed import ChangeBatch
from journeyscope.warehouse.partition import Partition
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.visits import visited_journeys

logger = logging.getLogger(__name__)

__all__ = ["OnlineScoring"]


class OnlineScoring:
    """The derive loop's scorer; ``scorer()`` gives the executor for the local evaluators (``None``: here)."""

    name = "online-scoring"
    kinds = frozenset({feed.VISITS})
    durable = True

    def __init__(self, warehouse: Warehouse, *, scorer: Callable[[], Executor | None] = lambda: None,
                 chunk_journeys: int = 100, share: float = 0.5, stop: Callable[[], bool] = lambda: False,
                 partition: Partition | None = None) -> None:
        """``partition``: score only its journeys (a derive worker's share), with a position of its own."""
        self.pacing = CpuShare(share)
        self.warehouse = warehouse
        self.partition = partition
        if partition is not None:
            self.name = f"{OnlineScoring.name} {partition}"
        self.scorer = scorer
        self.chunk_journeys = chunk_journeys
        self.stop = stop
        self.results = 0  #: evaluation rows written since start
        self._backlog: list[str] = []
        self._queued: set[str] = set()

    def consume(self, batch: ChangeBatch, now: float) -> None:
        """Queue the journeys that changed (every journey when the feed cannot say which), score one chunk."""
        if batch:
            changed = batch.journeys()
            if changed is None:
                cur = self.warehouse.cursor()
                try:
                    changed = visited_journeys(cur)
                finally:
                    cur.close()
            self._queue(sorted(changed) if self.partition is None else self.partition.select(sorted(changed)))
        if not self._backlog:
            return
        chunk, self._backlog = self._backlog[:self.chunk_journeys], self._backlog[self.chunk_journeys:]
        self._queued.difference_update(chunk)
        try:
            with self.pacing.measure():
                scorer = self.scorer()
                metered = _Metered(scorer, self.pacing.add) if scorer is not None else None
                summary = evaluate_pending(self.warehouse, "local", scorer=metered, journeys=chunk,
                                           batch_journeys=self.chunk_journeys, stop=self.stop)
        except BaseException:
            self._queue(chunk)  # still to score: the next pass tries again
            raise
        if summary.stopped:
            self._queue(chunk)  # not reached (the server is stopping): its position stays before them
        # A journey that moved on while being read is scored again when upkeep publishes its new visits.
        self.results += summary.results

    def _queue(self, journeys: list[str]) -> None:
        for journey in journeys:
            if journey not in self._queued:
                self._queued.add(journey)
                self._backlog.append(journey)

    @property
    def seconds(self) -> float:
        """CPU time spent scoring: the derive thread's, and the worker processes' for it."""
        return self.pacing.seconds

    def not_before(self) -> float:
        return self.pacing.not_before

    def backlog(self) -> bool:
        return bool(self._backlog)

    def next_tick(self) -> float | None:
        return None


def _cpu_of(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """In a worker process: ``fn(*args)`` and the CPU time it took there."""
    started = time.process_time()
    result = fn(*args)
    return result, time.process_time() - started


class _Metered(Executor):
    """An executor that runs calls on ``inner`` and reports the CPU time each took there (``add``), so the
    scorer's share counts what its worker processes spend, not only the derive thread."""

    def __init__(self, inner: Executor, add: Callable[[float], None]) -> None:
        self.inner = inner
        self.add = add

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        assert not kwargs, "positional arguments only"
        outer: Future[Any] = Future()

        def done(inner: Future[tuple[Any, float]]) -> None:
            try:
                result, cpu = inner.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
                outer.set_exception(exc)
                return
            self.add(cpu)
            outer.set_result(result)

        self.inner.submit(_cpu_of, fn, *args).add_done_callback(done)
        return outer

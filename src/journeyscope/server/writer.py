"""The single writer: a bounded queue of decoded batches, one thread that commits them, one that derives visits.

Shaped like OpenTelemetry's ``BatchSpanProcessor``: a bounded queue, one worker
woken by a condition, ``force_flush``/``shutdown``, and counted refusals. It
differs where a receiver must: a full queue keeps a batch waiting in line for a
moment, then *refuses* it (:class:`Overloaded`, which the receiver turns into 503 /
UNAVAILABLE with a short retry hint so the sender retries) instead of dropping it, and each submitted batch gets a future
that resolves only once the batch is committed in DuckDB, so a sender is
acknowledged only for spans that are durably stored.

Queued batches are committed together (group commit): under load, one DuckDB
transaction serves many requests. Stage-visit upkeep runs on a second thread, in
DuckDB transactions of its own beside the commits (the warehouse lets a span
append and an upkeep overlap, and DuckDB runs each on its caller's thread, so
they use both cores; acks never wait for upkeep). It runs when spans were
committed: at once when ingest pauses (``pause_s`` with nothing queued or
committing), and under load at most every ``visit_interval_s`` or twice the last
upkeep's duration, whichever is longer: upkeep re-derives whole journeys, so one
upkeep serves many transactions and re-derives a busy journey a few times a second at most.

Checkpoints are the writer's too: DuckDB's default (checkpoint whenever the
write-ahead log passes 16 MB) compresses and rewrites the table's open row
group and its key index every few thousand spans, which costs more than the
inserts themselves. The writer raises that threshold to ``checkpoint_threshold``
and checkpoints when ingest pauses (``checkpoint_idle_s`` without a commit), so
under load the log grows and is folded into the file in few, large steps.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass


from journeyscope.errors import JourneyscopeError, WarehouseError
from journeyscope.server.priority import lower_this_thread
from journeyscope.warehouse import IngestResult, PreparedBatch, Warehouse

logger = logging.getLogger(__name__)

__all__ = ["BatchWriter", "Overloaded", "WriterStats"]


class Overloaded(JourneyscopeError):
    """The queue is full (or the writer is stopping): try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class WriterStats:
    """Counters since start (read without a lock: monotonic ints, for status and tests)."""

    requests: int = 0
    spans_submitted: int = 0
    spans_stored: int = 0
    duplicates: int = 0
    refused_requests: int = 0
    refused_spans: int = 0
    transactions: int = 0
    failed_transactions: int = 0
    queued_spans: int = 0
    waiting_spans: int = 0  #: spans waiting in line for room in the queue
    waited_requests: int = 0  #: batches that found the queue full and waited in line
    write_seconds: float = 0.0
    visit_seconds: float = 0.0
    visit_updates: int = 0  #: upkeeps and idle sweeps that changed at least one journey's visits
    checkpoint_seconds: float = 0.0
    checkpoints: int = 0
    checkpoint_failures: int = 0  #: checkpoints DuckDB refused (each one logged as a warning)


@dataclass
class _Job:
    batch: PreparedBatch
    future: Future[IngestResult]
    admit_by: float = 0.0  #: monotonic time by which a batch waiting for room must be in the queue

    @property
    def spans(self) -> int:
        """Spans and log records: what the queue is bounded by."""
        return self.batch.rows


class BatchWriter:
    """Commits queued span batches to one :class:`Warehouse` from one thread, derives their visits on another."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        max_queue_spans: int = 200_000,
        max_batch_spans: int = 100_000,
        retry_after_s: float = 1.0,
        max_retry_after_s: float = 2.0,
        idle_sweep_s: float = 30.0,
        visit_interval_s: float = 0.5,
        pause_s: float = 0.1,
        checkpoint_threshold: str | None = "256MB",
        checkpoint_idle_s: float = 2.0,
    ) -> None:
        if max_queue_spans <= 0 or max_batch_spans <= 0:
            raise ValueError("max_queue_spans and max_batch_spans must be positive")
        self.warehouse = warehouse
        self.max_queue_spans = max_queue_spans
        self.max_batch_spans = max_batch_spans
        self.retry_after_s = retry_after_s
        self.max_retry_after_s = max_retry_after_s
        self.idle_sweep_s = idle_sweep_s
        self.visit_interval_s = visit_interval_s
        self.pause_s = pause_s
        self.checkpoint_idle_s = checkpoint_idle_s
        if checkpoint_threshold is not None and not warehouse.read_only:
            try:
                warehouse.query(f"SET GLOBAL checkpoint_threshold = '{checkpoint_threshold}'")
            except Exception as exc:  # noqa: BLE001 - a tuning knob, never a reason not to start
                logger.warning("journeyscope: cannot set checkpoint_threshold: %s", exc)
        self.stats = WriterStats()
        #: Called from the writer thread with the journeys whose stage visits were just derived again.
        self.on_visits_changed: list[Callable[[list[str]], None]] = []
        self._queue: deque[_Job] = deque()
        self._queued_spans = 0
        self._waiting: deque[_Job] = deque()  # batches waiting for room in the queue, in arrival order
        self._waiting_spans = 0
        self._busy = False  # the writer thread is committing
        self._stopping = False
        self._writer_done = False  # the writer thread committed the last batch and ended
        self._visits_pending = False  # spans committed whose visits are not derived yet
        self._visits_busy = False  # the visits thread is deriving
        self._flush_waiters = 0  # force_flush calls waiting: the visits thread runs at once for them
        self._last_commit = 0.0  # monotonic time the last commit ended
        self._flush_requested = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="journeyscope-writer", daemon=True)
        self._visits_thread = threading.Thread(target=self._run_visits, name="journeyscope-visits", daemon=True)
        self._thread.start()
        self._visits_thread.start()

    # -- producers -------------------------------------------------------------------
    def would_refuse(self, spans: int = 1) -> bool:
        """A cheap pre-check before decoding a request: the queue and the line waiting for it are both full
        (the answer may change; :meth:`submit` decides)."""
        return self._stopping or (not self._fits(spans) and self._waiting_spans + spans > self.max_queue_spans)

    def retry_hint(self) -> float:
        """Seconds a refused sender should wait: ``retry_after_s`` to ``max_retry_after_s``, at random so
        refused senders do not all come back at once.

        Never more: the OTel exporters give an export ``timeout`` (10 s by default) for all its attempts
        and give up as soon as a hint is longer than what is left of it, so a long hint loses the batch
        where a short one only costs the sender another attempt (up to six); the wait for room in
        :meth:`submit` is what paces senders to the writer.
        """
        return random.uniform(self.retry_after_s, max(self.retry_after_s, self.max_retry_after_s))

    def submit(self, batch: PreparedBatch, wait_s: float = 0.0) -> Future[IngestResult]:
        """Queue a batch; the future resolves once it is committed (or fails with WarehouseError).

        Callers :meth:`~Warehouse.prepare` (redact) the batch on their own thread, so the
        writer thread only inserts.

        With the queue full, a batch may wait for room up to ``wait_s``, in line behind the batches
        that came first (so a sender turned away before is not overtaken by one just acknowledged); the
        line holds another queue's worth of spans at most, and a batch still in it after ``wait_s`` fails
        with :class:`Overloaded`. Raises :class:`Overloaded` at once when the line is full too (or
        ``wait_s`` is 0). A batch larger than the whole queue is still taken when the queue is empty,
        so no batch is refused forever (the request size limit bounds it). Never blocks.
        """
        future: Future[IngestResult] = Future()
        n = batch.rows
        now = time.monotonic()
        with self._cond:
            self.stats.requests += 1
            self._expire(now)
            if self._stopping:
                self._refuse(n)
                raise Overloaded("the receiver is shutting down", self.retry_hint())
            job = _Job(batch, future, now + wait_s)
            if not self._waiting and self._fits(n):
                self._enqueue(job)
            elif wait_s > 0 and self._waiting_spans + n <= self.max_queue_spans:
                self._waiting.append(job)
                self._waiting_spans += n
                self.stats.waited_requests += 1
                self.stats.waiting_spans = self._waiting_spans
            else:
                self._refuse(n)
                raise Overloaded(f"ingest queue full ({self._queued_spans} spans queued, {self._waiting_spans} "
                                 f"waiting for room, limit {self.max_queue_spans} each)", self.retry_hint())
            self._cond.notify_all()  # the writer thread, not the visits thread that shares the condition
        return future

    def _fits(self, n: int) -> bool:
        return not self._queue or self._queued_spans + n <= self.max_queue_spans

    def _enqueue(self, job: _Job) -> None:
        self._queue.append(job)
        self._queued_spans += job.spans
        self.stats.queued_spans = self._queued_spans
        self.stats.spans_submitted += job.spans

    def _admit(self) -> None:
        """Move batches waiting in line into the queue while they fit, first come first."""
        while self._waiting and self._fits(self._waiting[0].spans):
            job = self._waiting.popleft()
            self._waiting_spans -= job.spans
            self._enqueue(job)
        self.stats.waiting_spans = self._waiting_spans

    def _expire(self, now: float) -> None:
        """Fail the batches that waited in line past their time (their senders retry after the hint)."""
        if not self._waiting or self._waiting[0].admit_by > now:
            return
        kept: deque[_Job] = deque()
        for job in self._waiting:
            if job.admit_by > now:
                kept.append(job)
                continue
            self._waiting_spans -= job.spans
            self._refuse(job.spans)
            if not job.future.cancelled():
                job.future.set_exception(Overloaded(
                    f"ingest queue full ({self._queued_spans} spans queued, limit {self.max_queue_spans})",
                    self.retry_hint()))
        self._waiting = kept
        self.stats.waiting_spans = self._waiting_spans

    def _refuse(self, n: int) -> None:
        self.stats.refused_requests += 1
        self.stats.refused_spans += n

    # -- lifecycle -------------------------------------------------------------------
    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued so far is committed and its visits derived; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested = True
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while (self._queue or self._waiting or self._busy or self._flush_requested
                       or self._visits_pending or self._visits_busy):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._flush_waiters -= 1
        return True

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, commit the queued ones, derive their visits, stop both threads. Idempotent."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in (self._thread, self._visits_thread):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not (self._thread.is_alive() or self._visits_thread.is_alive())

    # -- the writer thread: commits ------------------------------------------------------
    def _take(self) -> list[_Job]:
        jobs: list[_Job] = []
        spans = 0
        while self._queue and (not jobs or spans + self._queue[0].spans <= self.max_batch_spans):
            job = self._queue.popleft()
            job.future.set_running_or_notify_cancel()  # a cancelled wait is still written
            jobs.append(job)
            spans += job.spans
        self._queued_spans -= spans
        self.stats.queued_spans = self._queued_spans
        self._admit()  # what waited in line is next
        self._expire(time.monotonic())
        return jobs

    def _run(self) -> None:
        lower_this_thread()
        checkpoint_due: float | None = None  # set by a commit: checkpoint once ingest pauses this long
        while True:
            with self._cond:
                while not self._queue and not self._stopping and not self._flush_requested:
                    wait = None if checkpoint_due is None else checkpoint_due - time.monotonic()
                    if not self._cond.wait(None if wait is None else max(0.0, wait)):
                        break
                jobs = self._take()
                stopping = self._stopping and not self._queue
                self._flush_requested = False
                self._busy = bool(jobs)
            if jobs:
                self._commit(jobs)
                checkpoint_due = time.monotonic() + self.checkpoint_idle_s
            with self._cond:
                self._busy = False
                if jobs:
                    self._visits_pending = True
                    self._last_commit = time.monotonic()
                if stopping:
                    self._writer_done = True
                self._cond.notify_all()
                if stopping:
                    return
                idle = not self._queue and not self._visits_pending and not self._visits_busy
            if (not jobs and idle and checkpoint_due is not None and time.monotonic() >= checkpoint_due):
                checkpoint_due = None if self._checkpoint() else time.monotonic() + self.checkpoint_idle_s

    def _commit(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            batch = PreparedBatch.combine([job.batch for job in jobs])
            result = self.warehouse.ingest(batch, update_visits=False)
        except Exception as exc:  # noqa: BLE001 - a failed write fails its requests, never the thread
            self.stats.failed_transactions += 1
            error = exc if isinstance(exc, WarehouseError) else WarehouseError(f"write failed: {exc!r}")
            logger.error("journeyscope: committing %d requests failed: %s", len(jobs), error)
            for job in jobs:
                if not job.future.cancelled():
                    job.future.set_exception(error)
            return
        took = time.perf_counter() - started
        self.stats.write_seconds += took
        self.stats.transactions += 1
        self.stats.spans_stored += result.accepted
        self.stats.duplicates += result.duplicates
        # The group's split between new and duplicate spans is not known per request; each
        # request learns that all its spans are stored, which is what an OTLP ack means.
        for job in jobs:
            if not job.future.cancelled():
                job.future.set_result(IngestResult(job.spans, 0))

    # -- the visits thread: stage-visit upkeep -------------------------------------------
    def _run_visits(self) -> None:
        """Derive the visits of committed spans, in a DuckDB transaction of its own beside the commits.

        Runs when spans were committed and the last upkeep is far enough back, at once when a
        flush or a shutdown waits for it; also closes idle journeys' visits every ``idle_sweep_s``.
        """
        lower_this_thread()
        last_sweep = time.monotonic()
        visits_due = 0.0
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    pending = self._visits_pending
                    # Ingest paused (nothing queued or committing for a moment): the last spans' visits now,
                    # not at the next due time.
                    paused_at = self._last_commit + self.pause_s
                    paused = not self._queue and not self._busy and now >= paused_at
                    run = pending and (now >= visits_due or paused or self._flush_waiters > 0 or self._stopping)
                    sweep = now - last_sweep >= self.idle_sweep_s
                    if run or sweep or (self._writer_done and not pending):
                        break
                    due = [self.idle_sweep_s - (now - last_sweep)]
                    if pending:
                        due += [visits_due - now] + ([paused_at - now] if not self._queue and not self._busy else [])
                    self._cond.wait(max(0.0, min(due)))
                if not run and not sweep:
                    return  # the writer is done and every commit's visits are derived
                if run:
                    self._visits_pending = False
                    self._visits_busy = True
            if run:
                took = self._update_visits()
                visits_due = time.monotonic() + max(self.visit_interval_s, 2 * took)
                with self._cond:
                    self._visits_busy = False
                    self._cond.notify_all()
            if sweep:
                last_sweep = time.monotonic()
                self._sweep()

    def _update_visits(self) -> float:
        started = time.perf_counter()
        touched: list[str] = []
        try:
            touched = self.warehouse.update_visits()
        except JourneyscopeError as exc:  # the spans are stored; the backlog stays for the next try
            logger.warning("journeyscope: stage-visit upkeep failed: %s", exc)
        took = time.perf_counter() - started
        self.stats.visit_seconds += took
        if touched:
            self.stats.visit_updates += 1
            self._notify(touched)
        return took

    def _notify(self, journey_ids: list[str]) -> None:
        for listener in self.on_visits_changed:
            try:
                listener(journey_ids)
            except Exception:  # noqa: BLE001 - a listener's failure must not stop the writer
                logger.exception("journeyscope: a visit-change listener failed")

    def _checkpoint(self) -> bool:
        """Fold the write-ahead log into the file; False (a warning, counted) when DuckDB refuses.

        The warehouse holds off this process's own writes meanwhile, so a refusal means a transaction
        is open elsewhere (a long read); the writer tries again after ``checkpoint_idle_s``. A log that
        is never folded grows past DuckDB's threshold and makes the next start replay all of it.
        """
        started = time.perf_counter()
        try:
            self.warehouse.checkpoint()
        except WarehouseError as exc:
            self.stats.checkpoint_failures += 1
            logger.warning("journeyscope: checkpoint refused (%d so far), trying again in %.0f s: %s",
                           self.stats.checkpoint_failures, self.checkpoint_idle_s, exc)
            return False
        finally:
            self.stats.checkpoint_seconds += time.perf_counter() - started
        self.stats.checkpoints += 1
        return True

    def _sweep(self) -> None:
        try:
            closed = self.warehouse.close_idle_visits()
        except JourneyscopeError as exc:
            logger.warning("journeyscope: closing idle visits failed: %s", exc)
            return
        if closed:
            self.stats.visit_updates += 1
            self._notify(closed)  # newly abandoned visits are ready to be scored

"""The write door for concurrent sources: a bounded queue of batches, one thread that commits them.

Every batch of spans the server stores (OTLP over HTTP and gRPC, routing decisions,
alerts) enters through :meth:`Writer.ingest`, which redacts it on the caller's
thread, queues it, and returns a future that resolves once the batch is committed
(:meth:`Warehouse.ingest`, which also publishes the change on the feed), so a
sender is acknowledged only for spans durably stored. The importer and the
in-process exporter, which have the file to themselves, call
:meth:`Warehouse.ingest` directly: the same storage door without the queue.

Shaped like OpenTelemetry's ``BatchSpanProcessor``: a bounded queue, one worker
woken by a condition, ``force_flush``/``shutdown``, counted refusals. It differs
where a receiver must: a full queue keeps a batch waiting in line for a moment,
then *refuses* it (:class:`Overloaded`, which a receiver turns into 503 /
UNAVAILABLE with a short retry hint) instead of dropping it. Queued batches are
committed together (group commit): under load one transaction serves many
requests, and with ``commit_wait_s`` (a lake's receiver) a short queue waits a
moment for more, so requests that arrive apart share a commit too. What follows
from a commit (stage-visit upkeep, scoring) is not the writer's: consumers of the
change feed derive it (:mod:`journeyscope.warehouse.derive`).

Checkpoints are the writer's: DuckDB's default (checkpoint whenever the write-ahead
log passes 16 MB) compresses and rewrites the table's open row group and its key
index every few thousand spans, which costs more than the inserts themselves. The
writer raises that threshold to ``checkpoint_threshold`` and checkpoints when ingest
pauses (``checkpoint_idle_s`` without a commit).
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

import pyarrow as pa

from journeyscope.errors import JourneyscopeError, WarehouseError, WarehouseUnavailable
from journeyscope.warehouse import feed
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.store import IngestResult, PreparedBatch, Warehouse

logger = logging.getLogger(__name__)

__all__ = ["COMMIT_WAIT_SPANS", "LAKE_COMMIT_WAIT_S", "Overloaded", "Writer", "WriterStats"]


class Overloaded(JourneyscopeError):
    """The queue is full (or the writer is stopping): try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class WriterStats:
    """Counters since start: the producers' under the writer's lock, the commits' by the writer thread only."""

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
    checkpoint_seconds: float = 0.0
    checkpoints: int = 0
    checkpoint_failures: int = 0  #: checkpoints DuckDB refused (each one logged as a warning)
    unavailable_transactions: int = 0  #: failed because a lake's catalog or object store could not be reached


@dataclass
class _Job:
    batch: PreparedBatch
    kind: str
    future: Future[IngestResult]
    admit_by: float = 0.0  #: monotonic time by which a batch waiting for room must be in the queue
    queued_at: float = 0.0  #: monotonic time it entered the queue

    @property
    def spans(self) -> int:
        """Spans and log records: what the queue is bounded by."""
        return self.batch.rows


#: Spans in the queue past which a batch stops waiting for others to commit with (``commit_wait_s``).
COMMIT_WAIT_SPANS = 4096
#: How long a batch waits for company on a lake, where every commit costs a round of catalog writes and a Parquet
#: file per table it touches, and each file is read by every later query until compaction merges it (the README's
#: lake benchmarks measure both); a sender's acknowledgement comes that much later at most.
LAKE_COMMIT_WAIT_S = 0.05

#: Seconds between the log lines of one storage outage.
_OUTAGE_LOG_EVERY_S = 60.0


@dataclass
class _Outage:
    since: float
    failures: int
    logged: float


class Writer:
    """Commits queued batches to one :class:`Warehouse` from one thread (``journeyscope-writer``)."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        max_queue_spans: int = 200_000,
        max_batch_spans: int = 100_000,
        retry_after_s: float = 1.0,
        max_retry_after_s: float = 2.0,
        checkpoint_threshold: str | None = "256MB",
        checkpoint_idle_s: float = 2.0,
        commit_wait_s: float = 0.0,
        thread_init: Callable[[], None] | None = None,
    ) -> None:
        """``thread_init`` runs first on the writer's thread (the server lowers its priority there).

        ``commit_wait_s``: how long a short queue (fewer than :data:`COMMIT_WAIT_SPANS` spans) waits for more
        batches to commit with, counted from its oldest batch's arrival or the last commit's end, whichever is
        later (:data:`LAKE_COMMIT_WAIT_S` suits a lake).
        """
        if max_queue_spans <= 0 or max_batch_spans <= 0:
            raise ValueError("max_queue_spans and max_batch_spans must be positive")
        self.warehouse = warehouse
        self.max_queue_spans = max_queue_spans
        self.max_batch_spans = max_batch_spans
        self.retry_after_s = retry_after_s
        self.max_retry_after_s = max_retry_after_s
        self.checkpoint_idle_s = checkpoint_idle_s
        self.commit_wait_s = commit_wait_s
        if checkpoint_threshold is not None:
            try:
                warehouse.set_checkpoint_threshold(checkpoint_threshold)
            except WarehouseError as exc:  # a tuning knob, never a reason not to start
                logger.warning("journeyscope: %s", exc)
        self.stats = WriterStats()
        self._queue: deque[_Job] = deque()
        self._queued_spans = 0
        self._waiting: deque[_Job] = deque()  # batches waiting for room in the queue, in arrival order
        self._waiting_spans = 0
        self._accepted = 0  # jobs taken in (queued or waiting), ever
        self._finished = 0  # jobs committed, failed or expired, ever: force_flush waits for the difference
        self._stopping = False
        self._outage: _Outage | None = None  # the storage unreachable since (writer thread only)
        self._committed_at: float | None = None  # when the last commit ended (monotonic)
        self._cond = threading.Condition()
        self._thread_init = thread_init
        self._thread = threading.Thread(target=self._run, name="journeyscope-writer", daemon=True)
        self._thread.start()

    # -- the door --------------------------------------------------------------------
    def ingest(self, batch: SpanRows | pa.Table | PreparedBatch, *, logs: bool = False, kind: str = feed.SPANS,
               wait_s: float = 0.0) -> Future[IngestResult]:
        """Redact ``batch`` here (spans, or GenAI log records with ``logs``), queue it, and return a future that
        resolves once it is committed (or fails with :class:`WarehouseError` or :class:`Overloaded`).

        ``kind`` is what the commit publishes on the change feed (:data:`feed.SPANS`, or
        :data:`feed.EVENTS` for spans that derive no visits). With the queue full, a batch may wait
        for room up to ``wait_s``, in line behind the batches that came first (so a sender turned away
        before is not overtaken); the line holds another queue's worth of spans at most, and a batch
        still in it after ``wait_s`` fails with :class:`Overloaded`. Raises :class:`Overloaded` at once
        when the line is full too (or ``wait_s`` is 0). A batch larger than the whole queue is still
        taken when the queue is empty, so no batch is refused forever. Never blocks on the queue.
        """
        if isinstance(batch, PreparedBatch):
            prepared = batch
        else:
            table = batch.to_table() if isinstance(batch, SpanRows) else batch
            prepared = self.warehouse.prepare_logs(table) if logs else self.warehouse.prepare(table)
        return self._submit(prepared, kind, wait_s)

    def check_room(self, spans: int = 1) -> None:
        """Raise :class:`Overloaded` (counted as a refused request) when the queue and its line are both full: a
        cheap test before decoding a request (the answer may change; :meth:`ingest` decides)."""
        with self._cond:
            if self._stopping or (not self._fits(spans) and self._waiting_spans + spans > self.max_queue_spans):
                self.stats.requests += 1
                self._refuse(0)
                raise Overloaded("ingest queue full; retry later", self.retry_hint())

    def retry_hint(self) -> float:
        """Seconds a refused sender should wait: ``retry_after_s`` to ``max_retry_after_s``, at random so
        refused senders do not all come back at once.

        Never more: the OTel exporters give an export ``timeout`` (10 s by default) for all its attempts
        and give up as soon as a hint is longer than what is left of it, so a long hint loses the batch
        where a short one only costs the sender another attempt; the wait for room in :meth:`ingest` is
        what paces senders to the writer.
        """
        return random.uniform(self.retry_after_s, max(self.retry_after_s, self.max_retry_after_s))

    def _submit(self, batch: PreparedBatch, kind: str, wait_s: float) -> Future[IngestResult]:
        future: Future[IngestResult] = Future()
        n = batch.rows
        now = time.monotonic()
        with self._cond:
            self.stats.requests += 1
            self._expire(now)
            if self._stopping:
                self._refuse(n)
                raise Overloaded("the receiver is shutting down", self.retry_hint())
            job = _Job(batch, kind, future, now + wait_s)
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
            self._accepted += 1
            self._cond.notify_all()
        return future

    def _fits(self, n: int) -> bool:
        return not self._queue or self._queued_spans + n <= self.max_queue_spans

    def _enqueue(self, job: _Job) -> None:
        job.queued_at = time.monotonic()
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
            self._finished += 1
            if not job.future.cancelled():
                job.future.set_exception(Overloaded(
                    f"ingest queue full ({self._queued_spans} spans queued, limit {self.max_queue_spans})",
                    self.retry_hint()))
        self._waiting = kept
        self.stats.waiting_spans = self._waiting_spans
        self._cond.notify_all()

    def _refuse(self, n: int) -> None:
        self.stats.refused_requests += 1
        self.stats.refused_spans += n

    # -- lifecycle -------------------------------------------------------------------
    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every batch taken in before this call is committed (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._accepted
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def idle(self) -> float | None:
        """When its last commit ended (monotonic) if every batch taken in since has been committed or failed;
        ``None`` while one is queued, waiting or being committed, or before the first commit.

        Stage-visit upkeep reads it to see that this receiver's burst is over as soon as it is
        (:class:`~journeyscope.warehouse.derive.VisitUpkeep`); the writer wakes the change feed's waiters then.
        """
        with self._cond:
            return self._committed_at if self._finished == self._accepted else None

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Refuse new batches, commit the queued and waiting ones, stop the thread. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # -- the writer thread -----------------------------------------------------------
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
        if self._thread_init is not None:
            self._thread_init()
        checkpoint_due: float | None = None  # set by a commit: checkpoint once ingest pauses this long
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    wait = None if checkpoint_due is None else max(0.0, checkpoint_due - time.monotonic())
                    if not self._cond.wait(wait):
                        break  # ingest paused
                self._wait_for_company()
                jobs = self._take()
                if not jobs and self._stopping and not self._waiting:
                    return
            if jobs:
                self._commit(jobs)
                checkpoint_due = time.monotonic() + self.checkpoint_idle_s
                with self._cond:
                    self._finished += len(jobs)
                    self._committed_at = time.monotonic()
                    idle = self._finished == self._accepted
                    self._cond.notify_all()
                if idle:
                    self.warehouse.feed.wake()
            elif checkpoint_due is not None and time.monotonic() >= checkpoint_due:
                checkpoint_due = None if self._checkpoint() else time.monotonic() + self.checkpoint_idle_s

    def _wait_for_company(self) -> None:
        """Hold a small queue up to ``commit_wait_s`` after its oldest batch arrived or the last commit ended,
        whichever is later (under ``_cond``), so batches that arrive apart commit together.

        From the commit's end too, because the senders that commit answered send again right after it: a batch
        that came in during a commit would otherwise go alone, and theirs make the next commit. Under load the
        queue holds :data:`COMMIT_WAIT_SPANS` by then and nothing waits.
        """
        if self.commit_wait_s <= 0:
            return
        while self._queue and self._queued_spans < COMMIT_WAIT_SPANS and not self._stopping:
            since = max(self._queue[0].queued_at, self._committed_at or 0.0)
            remaining = since + self.commit_wait_s - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

    def _commit(self, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        try:
            batch = PreparedBatch.combine([job.batch for job in jobs])
            result = self.warehouse.ingest(batch, update_visits=False, kinds=frozenset(job.kind for job in jobs))
        except Exception as exc:  # noqa: BLE001 - a failed write fails its requests, never the thread
            self.stats.failed_transactions += 1
            error = exc if isinstance(exc, WarehouseError) else WarehouseError(f"write failed: {exc!r}")
            if isinstance(error, WarehouseUnavailable):
                self._unavailable(error)
            else:
                logger.error("journeyscope: committing %d requests failed: %s", len(jobs), error)
            for job in jobs:
                if not job.future.cancelled():
                    job.future.set_exception(error)
            return
        self.stats.write_seconds += time.perf_counter() - started
        if self._outage is not None:
            logger.warning("journeyscope: storage reachable again after %.0f s (%d commits refused meanwhile); "
                           "ingest resumed", time.monotonic() - self._outage.since, self._outage.failures)
            self._outage = None
        self.stats.transactions += 1
        self.stats.spans_stored += result.accepted
        self.stats.duplicates += result.duplicates
        # The group's split between new and duplicate spans is not known per request; each
        # request learns that all its spans are stored, which is what an OTLP ack means.
        for job in jobs:
            if not job.future.cancelled():
                job.future.set_result(IngestResult(job.spans, 0))

    def _unavailable(self, error: WarehouseUnavailable) -> None:
        """Count a commit refused because the storage is unreachable; log the outage when it begins and then
        once a minute (its senders are answered 503 / ``UNAVAILABLE`` and retry), not once per commit."""
        self.stats.unavailable_transactions += 1
        now = time.monotonic()
        if self._outage is None:
            self._outage = _Outage(now, 0, now)
            logger.error("journeyscope: storage unreachable, refusing ingest with a retry hint until it is back: %s",
                         error)
        self._outage.failures += 1
        if now - self._outage.logged >= _OUTAGE_LOG_EVERY_S:
            self._outage.logged = now
            logger.error("journeyscope: storage still unreachable after %.0f s (%d commits refused): %s",
                         now - self._outage.since, self._outage.failures, error)

    def _checkpoint(self) -> bool:
        """Fold the write-ahead log into the file; False (a warning, counted) when DuckDB refuses.

        A refusal means a transaction is open elsewhere (a long read); the writer tries again after
        ``checkpoint_idle_s``. A log that is never folded grows and makes the next start replay all of it.
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

"""The derive loop: one thread that brings everything derived from the data up to date, in a fixed order.

Each :class:`Consumer` reads the change feed (:mod:`journeyscope.warehouse.feed`)
after its own position, handles what changed, and moves its position on; a
*durable* consumer's position is stored in the file once it has no work left over,
so after a restart it resumes there (a change handled but not yet recorded is
handled again: consumers are idempotent, none skips a change). Consumers run in the
order given, each pass: what one publishes (upkeep's ``visits``, scoring's
``scores``) is read by the ones after it in the same pass.

A consumer paces itself: ``not_before`` holds it back under load (upkeep
re-derives whole journeys, so it runs at most every so often), ``backlog`` says it
left work for the next pass (scoring a batch at a time), ``next_tick`` asks for a
pass without changes (a timer: idle visits, monitors' windows). :meth:`DeriveLoop.flush`
runs every consumer until the feed's newest generation is handled, ignoring pacing.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from journeyscope.errors import JourneyscopeError, WarehouseError
from journeyscope.warehouse import feed
from journeyscope.warehouse.feed import ChangeBatch
from journeyscope.warehouse.partition import Partition
from journeyscope.warehouse.store import Warehouse

logger = logging.getLogger(__name__)

__all__ = ["Consumer", "CpuShare", "DeriveLoop", "FeedPause", "VisitUpkeep"]

#: The longest the loop sleeps with nothing to do (a safety net: wakes come from the feed and the timers).
_MAX_SLEEP_S = 5.0


class Consumer(Protocol):
    """Something derived from the data, kept up to date from the change feed."""

    name: str  #: its position's key in the file
    kinds: frozenset[str]  #: the kinds of change it reads
    durable: bool  #: its position is stored (it writes what it derives); else it starts at the newest generation

    def consume(self, batch: ChangeBatch, now: float) -> None:
        """Handle ``batch`` (maybe empty: a tick or leftover work). Raising leaves the position where it was."""

    def not_before(self) -> float:
        """Monotonic time before which it would rather not run (pacing; a flush ignores it)."""

    def backlog(self) -> bool:
        """Whether it holds work for a later pass."""

    def next_tick(self) -> float | None:
        """Monotonic time it wants a pass even without changes, or ``None``."""


class CpuShare:
    """Pacing for a consumer whose work competes with the API for the process's CPU and interpreter lock.

    After work that took ``c`` seconds of the calling thread's CPU time (``time.thread_time``: waiting for
    a lock, the disk or another process does not count, since it costs the API nothing) the consumer
    rests ``c * (1 - share) / share``, so over time it takes at most ``share`` of a core (1: no rest).
    """

    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.seconds = 0.0  #: CPU time measured so far
        self.not_before = 0.0  #: monotonic time before which the consumer rests
        self._elsewhere = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        """Time the enclosed work (also when it raises) and set :attr:`not_before` from it."""
        started, self._elsewhere = time.thread_time(), 0.0
        try:
            yield
        finally:
            took = time.thread_time() - started + self._elsewhere
            self.seconds += took
            self.not_before = time.monotonic() + took * (1 - self.share) / self.share

    def add(self, seconds: float) -> None:
        """Count CPU time the measured work had spent for it elsewhere (in a worker process)."""
        self._elsewhere += seconds


class FeedPause:
    """When the commits on the feed count as paused: no new generation for ``gaps`` times their usual spacing
    (the median of the last few gaps between generations seen), and at least ``min_s``.

    A consumer that batches commits under load uses it to stop waiting once they stop coming: a pause
    much longer than the spacing of the commits so far means the burst is over, whatever its rate.
    """

    def __init__(self, min_s: float, gaps: float = 3.0, remember: int = 8) -> None:
        self.min_s = min_s
        self.gaps = gaps
        self._gaps: deque[float] = deque(maxlen=remember)
        self._generation: int | None = None
        self._moved_at = 0.0

    def observe(self, generation: int, now: float) -> None:
        """Note the feed's newest generation as seen at ``now`` (monotonic)."""
        if generation == self._generation:
            return
        if self._generation is not None:
            self._gaps.append(now - self._moved_at)
        self._generation, self._moved_at = generation, now

    def paused_from(self) -> float:
        """Monotonic time from which the commits count as paused if no new one comes."""
        spacing = statistics.median(self._gaps) if self._gaps else 0.0
        return self._moved_at + max(self.min_s, self.gaps * spacing)


class VisitUpkeep:
    """Stage visits of the journeys whose spans arrived, and abandoned visits of idle journeys.

    Upkeep derives a journey's visits whole, so while commits stream in it rests between rounds and one
    round serves many commits: ``interval_s`` at least, and ``rest`` times its last round's duration. That
    is wall clock, not its CPU time, on purpose: on a busy machine the longer rests mean fewer rounds, and
    each round derives every live journey again, so more rounds would take CPU from ingest. Once the
    commits pause (:class:`FeedPause`) it runs without waiting out its rest: the rest leaves the machine
    to ingest, and the round is what makes the last commits queryable. In a receiver, ``ingest_idle`` (its
    writer's :meth:`~journeyscope.warehouse.writer.Writer.idle`) says sooner that its own burst is over: once
    the writer has committed since the last round began and has nothing left to commit for ``interval_s``,
    the round runs (once per burst: another receiver's commits still wait for the pause). ``idle_sweep_s`` is
    how often visits of journeys silent past their timeout are closed (the one timer for that rule). With a
    ``partition`` (a derive worker's), only its journeys: the others' workers derive theirs.
    """

    name = "visits"
    kinds = frozenset({feed.SPANS})
    durable = False  # its position is the warehouse's, shared by a lake's processes (Warehouse.update_visits)

    def __init__(self, warehouse: Warehouse, *, interval_s: float = 0.25, rest: float = 2.0,
                 idle_sweep_s: float = 30.0, partition: Partition | None = None,
                 ingest_idle: Callable[[], float | None] | None = None) -> None:
        self.warehouse = warehouse
        self.ingest_idle = ingest_idle
        self.partition = partition
        self.interval_s = interval_s
        self.idle_sweep_s = idle_sweep_s
        self.seconds = 0.0  #: time spent in upkeep
        self.rest = rest
        self.pause = FeedPause(interval_s)
        self._not_before = 0.0
        self._round_began = float("-inf")
        self._sweep_at = time.monotonic() + idle_sweep_s
        self._started = False  # the first pass derives from upkeep's stored position whatever the loop's says

    def consume(self, batch: ChangeBatch, now: float) -> None:
        if now >= self._sweep_at:
            self._sweep_at = now + self.idle_sweep_s
            self.warehouse.close_idle_visits(self.partition)
        if batch or not self._started:
            self._started = True
            self._round_began = time.monotonic()
            started = time.perf_counter()
            self.warehouse.update_visits(self.partition)
            took = time.perf_counter() - started
            self.seconds += took
            self._not_before = time.monotonic() + max(self.interval_s, self.rest * took)

    def not_before(self) -> float:
        self.pause.observe(self.warehouse.feed.generation(), time.monotonic())
        paused = self.pause.paused_from()
        idle = self.ingest_idle() if self.ingest_idle is not None else None
        if idle is not None and idle > self._round_began:
            paused = min(paused, idle + self.interval_s)
        return min(self._not_before, paused)

    def backlog(self) -> bool:
        return not self._started

    def next_tick(self) -> float | None:
        return self._sweep_at


class DeriveLoop:
    """Runs ``consumers`` in order on one thread (``journeyscope-derive``) whenever the feed moves on."""

    def __init__(self, warehouse: Warehouse, consumers: list[Consumer], *, name: str = "journeyscope-derive",
                 min_pass_s: float = 0.05, thread_init: Callable[[], None] | None = None) -> None:
        """``thread_init`` runs first on the loop's thread (the server lowers its priority there)."""
        self._thread_init = thread_init
        self.warehouse = warehouse
        self.min_pass_s = min_pass_s  #: passes at most this often while commits stream in
        self.feed = warehouse.feed
        self.consumers = consumers
        self.passes = 0
        self._positions: dict[str, int | None] = {}
        for consumer in consumers:
            self._positions[consumer.name] = (self.feed.position(consumer.name) if consumer.durable
                                              else self.feed.generation())
        self._lock = threading.Lock()  # one pass at a time: the loop's, or a caller's flush
        self._failures: dict[str, int] = {}  # consumer -> passes failed in a row (logged on the first and on recovery)
        self._read_cache: ChangeBatch | None = None  # the feed as read in this pass
        self._passed = threading.Condition()  # notified after each pass (caught_up waits on it)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> DeriveLoop:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self.feed.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def position(self, consumer: str) -> int | None:
        return self._positions.get(consumer)

    def caught_up(self, generation: int | None = None, timeout_s: float = 30.0) -> bool:
        """Wait until every consumer has read the feed up to ``generation`` (default: the newest now), so what
        memory holds reflects a write just made (a forgotten customer's journeys are gone from it)."""
        target = self.feed.generation() if generation is None else generation
        deadline = time.monotonic() + timeout_s
        with self._passed:
            while any((self._positions[c.name] or 0) < target for c in self.consumers):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self.feed.wake()
                self._passed.wait(min(remaining, 0.05))
        return True

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Run passes, without pacing, until every consumer has handled the newest generation and holds no
        backlog; ``False`` when that takes longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            target = self.feed.generation()
            self.run_once(flushing=True)
            if all((self._positions[c.name] or 0) >= target and not c.backlog() for c in self.consumers) \
                    and self.feed.generation() == target:
                return True
        return False

    def run_once(self, *, flushing: bool = False) -> float:
        """One pass over the consumers, in order; return when the next is due (monotonic)."""
        with self._lock:
            self.passes += 1
            self._read_cache: ChangeBatch | None = None
            wake = time.monotonic() + _MAX_SLEEP_S
            for consumer in self.consumers:
                if self._stop.is_set() and not flushing:
                    break
                wake = min(wake, self._step(consumer, flushing))
        with self._passed:
            self._passed.notify_all()
        return wake

    def _step(self, consumer: Consumer, flushing: bool) -> float:
        now = time.monotonic()
        position = self._positions[consumer.name]
        tick = consumer.next_tick()
        ticked = tick is not None and now >= tick
        moved = position is None or position < self.feed.generation()
        if not (moved or ticked or consumer.backlog()):
            return tick if tick is not None else now + _MAX_SLEEP_S
        if not flushing and now < consumer.not_before():
            return consumer.not_before()
        try:
            batch = self._read(position, consumer.kinds)
            consumer.consume(batch, now)
        except Exception as exc:  # noqa: BLE001 - keep deriving; the next pass tries again
            self._failed(consumer.name, exc)
            return now + 1.0
        failed = self._failures.pop(consumer.name, 0)
        if failed:
            logger.warning("journeyscope: deriving %s works again (after %d failed pass%s)", consumer.name, failed,
                           "" if failed == 1 else "es")
        if consumer.durable and not consumer.backlog() and batch.upto != position:
            try:
                self.feed.record(consumer.name, batch.upto)
            except WarehouseError as exc:  # handled again after a restart (consumers are idempotent)
                self._failed(consumer.name, exc)
                return now + 1.0
        self._positions[consumer.name] = batch.upto
        after = [consumer.not_before()] if consumer.backlog() else []
        tick = consumer.next_tick()
        return min([*after, *([tick] if tick is not None else []), now + _MAX_SLEEP_S])

    def _failed(self, consumer: str, exc: Exception) -> None:
        """Log a consumer's failure once, when it starts (an outage fails every pass until it ends; the
        recovery is logged too), with the traceback only for what is not one of journeyscope's errors."""
        failed = self._failures.get(consumer, 0)
        self._failures[consumer] = failed + 1
        if failed:
            logger.debug("journeyscope: deriving %s failed again: %s", consumer, exc)
        elif isinstance(exc, JourneyscopeError):
            logger.warning("journeyscope: deriving %s failed (tried again every second): %s", consumer, exc)
        else:
            logger.error("journeyscope: deriving %s failed (tried again every second)", consumer, exc_info=exc)

    def _read(self, position: int | None, kinds: frozenset[str]) -> ChangeBatch:
        """The changes of ``kinds`` after ``position``: one read of the feed serves every consumer of a pass
        (read again only for what was committed since, such as upkeep's own ``visits``)."""
        if position is None:  # no position: everything is new, whatever the feed still holds
            return ChangeBatch(0, self.feed.generation(), (), False)
        start = position
        held = self._read_cache
        if held is None or held.after > start:
            held = self.feed.read(start, feed.ALL_KINDS)
        elif held.upto < self.feed.generation():
            more = self.feed.read(held.upto, feed.ALL_KINDS)
            held = ChangeBatch(held.after, more.upto, held.changes + more.changes, held.complete)
        self._read_cache = held
        complete = self.feed.read(start, kinds, upto=start).complete
        changes = tuple(c for c in held.changes if c.generation > start and c.kind in kinds)
        return ChangeBatch(start, held.upto, changes, complete)

    def _run(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        seen = -1  # the generation the last pass started from
        wake = last = 0.0  # when a consumer is next due; when the last pass began
        while not self._stop.is_set():
            now = time.monotonic()
            generation = self.feed.generation()
            if now < wake and (generation == seen or now < last + self.min_pass_s):
                if generation == seen:
                    if self.feed.wait(seen, wake - now) == seen and time.monotonic() < wake:
                        wake = 0.0  # woken before its time, not by a commit: what a consumer paces on moved
                else:
                    self._stop.wait(min(wake, last + self.min_pass_s) - now)
                continue
            seen, last = generation, now
            try:
                wake = self.run_once()
            except Exception:  # noqa: BLE001 - a failure belongs to one pass, not to the loop
                logger.exception("journeyscope: a derive pass failed")
                wake = time.monotonic() + 1.0

"""The change feed: every commit says what it changed, and derived data follows from it.

A commit that changes data publishes one :class:`Change` per kind (spans, visits,
scores, erasure, ...), all under one *generation*, a number that grows with every
such commit in commit order. Whatever is derived from the data (stage-visit upkeep,
online scoring, the server's journey states and stage signals, monitors) is a
consumer: it reads the changes after the last generation it handled, handles them,
and records its position; a durable consumer's position is stored, so after a
restart it resumes where it stopped, neither handling a change twice nor skipping one.

:class:`ChangeFeed` is the interface (publish in a commit, read since a generation,
record a position); :class:`DuckDBFeed` keeps it in the warehouse file (tables
``changes`` and ``feed_positions``). A storage whose commits are numbered snapshots
(a lake) implements it with generation = snapshot id.

The feed keeps the last ``retain`` generations; a consumer further behind is told
(``ChangeBatch.complete`` false) and derives everything again, as on its first start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import duckdb

from journeyscope.warehouse.dialect import insert_replacing, set_meta

__all__ = [
    "ALL_KINDS", "ERASURE", "EVENTS", "FEEDBACK", "SCORES", "SPANS", "VISITS",
    "Change", "ChangeBatch", "ChangeFeed", "DuckDBFeed",
]

#: Kinds of change. ``journeys`` ``None`` means "any journey" (a threshold adopted, an erasure).
SPANS = "spans"            #: spans or GenAI log records stored (their journeys' visits are due for upkeep)
EVENTS = "events"          #: routing decisions or alerts stored (spans that derive no visits)
VISITS = "visits"          #: stage visits derived again (upkeep, an idle journey closed)
SCORES = "scores"          #: evaluations written or decided again
FEEDBACK = "feedback"      #: reviews or human labels written
ERASURE = "erasure"        #: journeys deleted (a customer forgotten, retention)
ALL_KINDS = frozenset({SPANS, EVENTS, VISITS, SCORES, FEEDBACK, ERASURE})


@dataclass(frozen=True, slots=True)
class Change:
    """What one commit changed of one kind: the journeys (``None``: any), under the commit's generation."""

    generation: int
    kind: str
    journeys: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """The changes after a consumer's position up to ``upto``, of the kinds it reads.

    ``complete`` is false when the feed no longer holds all of them (the consumer was too far behind, or
    has no position yet): it must then treat every journey as changed.
    """

    after: int
    upto: int
    changes: tuple[Change, ...]
    complete: bool = True

    def journeys(self) -> set[str] | None:
        """The journeys changed (``None``: any journey may have)."""
        if not self.complete:
            return None
        out: set[str] = set()
        for change in self.changes:
            if change.journeys is None:
                return None
            out.update(change.journeys)
        return out

    def __bool__(self) -> bool:
        return bool(self.changes) or not self.complete


class ChangeFeed(Protocol):
    """Publish on commit, read changes since a generation, remember consumers' positions."""

    def generation(self) -> int:
        """The newest committed generation (0 before the first)."""

    def read(self, after: int | None, kinds: frozenset[str], upto: int | None = None) -> ChangeBatch:
        """The changes of ``kinds`` after generation ``after`` (``None``: no position: none listed, incomplete)."""

    def wait(self, after: int, timeout_s: float | None) -> int:
        """Block until a generation after ``after`` is committed or ``timeout_s`` passes; the newest."""

    def wake(self) -> None:
        """Wake every :meth:`wait` (a consumer's loop stopping)."""

    def position(self, consumer: str) -> int | None:
        """The stored position of a durable consumer (``None`` if it never recorded one)."""

    def record(self, consumer: str, generation: int) -> None:
        """Store a durable consumer's position."""


class DuckDBFeed:
    """:class:`ChangeFeed` in the warehouse file.

    Generations are handed out at commit, under a lock held from the ``INSERT`` of the
    change rows to the ``COMMIT``: so generation order is commit order, and a reader
    that has seen generation G has seen every commit before it. Only commits that
    publish take the lock; the statements of a transaction before its commit run in parallel.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, retain: int = 100_000,
                 cursor: Callable[[], duckdb.DuckDBPyConnection] | None = None) -> None:
        self._con = con
        # ``cursor``: how to open a cursor on the warehouse's tables (a lake's sets its catalog first).
        self._cursor = cursor if cursor is not None else con.cursor
        self.retain = retain
        self._commit = threading.Lock()
        self._published = threading.Condition()
        cur = self._cursor()
        try:
            row = cur.execute("SELECT max(generation) FROM changes").fetchone()
            self._generation = int(row[0]) if row and row[0] is not None else 0
            row = cur.execute("SELECT value FROM meta WHERE key = 'feed_pruned_through'").fetchone()
            self._pruned_through = int(row[0]) if row else 0
            row = cur.execute("SELECT max(generation) FROM feed_positions").fetchone()
            self._generation = max(self._generation, int(row[0]) if row and row[0] is not None else 0)
        finally:
            cur.close()

    # -- writing (inside a transaction of :meth:`Warehouse.transaction`) ----------------------------------
    def commit(self, cur: duckdb.DuckDBPyConnection, changes: dict[str, set[str] | None]) -> int:
        """Insert ``changes`` (journeys by kind) under the next generation, then ``COMMIT``; the generation
        (0: nothing to publish, committed plainly)."""
        if not changes:
            cur.execute("COMMIT")
            return 0
        with self._commit:
            generation = self._generation + 1
            cur.executemany(
                "INSERT INTO changes VALUES (?, ?, ?, now()::TIMESTAMP)",
                [[generation, kind, None if ids is None else sorted(ids)] for kind, ids in sorted(changes.items())],
            )
            prune = generation - self.retain
            if prune > self._pruned_through and generation % 1000 == 0:
                cur.execute("DELETE FROM changes WHERE generation <= ?", [prune])
                set_meta(cur, "feed_pruned_through", str(prune))
            cur.execute("COMMIT")
            self._generation = generation
            if prune > self._pruned_through and generation % 1000 == 0:
                self._pruned_through = prune
        self.wake()
        return generation

    # -- reading ---------------------------------------------------------------------------------------
    def generation(self) -> int:
        return self._generation

    def read(self, after: int | None, kinds: frozenset[str], upto: int | None = None) -> ChangeBatch:
        newest = self._generation if upto is None else min(upto, self._generation)
        if after is None:  # no position: everything is new, whatever the feed still holds
            return ChangeBatch(0, newest, (), False)
        start = after
        complete = start >= self._pruned_through
        if newest <= start:
            return ChangeBatch(start, start, (), complete)
        cur = self._cursor()
        try:
            rows = cur.execute(
                "SELECT generation, kind, journey_ids FROM changes WHERE generation > ? AND generation <= ? "
                "AND list_contains(?, kind) ORDER BY generation, kind",
                [start, newest, sorted(kinds)],
            ).fetchall()
        finally:
            cur.close()
        changes = tuple(Change(int(g), k, None if ids is None else tuple(ids)) for g, k, ids in rows)
        return ChangeBatch(start, newest, changes, complete)

    def wait(self, after: int, timeout_s: float | None) -> int:
        with self._published:
            if self._generation <= after:
                self._published.wait(timeout_s)
        return self._generation

    def wake(self) -> None:
        with self._published:
            self._published.notify_all()

    def position(self, consumer: str) -> int | None:
        cur = self._cursor()
        try:
            row = cur.execute("SELECT generation FROM feed_positions WHERE consumer = ?", [consumer]).fetchone()
        finally:
            cur.close()
        return int(row[0]) if row else None

    def record(self, consumer: str, generation: int) -> None:
        # A write of its own, outside the write locks: one small row, no change published.
        cur = self._cursor()
        try:
            insert_replacing(cur, "feed_positions", "SELECT ?::VARCHAR AS consumer, ?::BIGINT AS generation, "
                             "now()::TIMESTAMP AS updated_at", ("consumer",), params=[consumer, generation])
        finally:
            cur.close()


def scrub_journeys(cur: duckdb.DuckDBPyConnection, journey_ids: list[str]) -> None:
    """Take deleted journeys out of the stored changes, in the deleting transaction (erasure covers the feed)."""
    if journey_ids:
        cur.execute(
            "UPDATE changes SET journey_ids = list_filter(journey_ids, j -> NOT list_contains($ids, j)) "
            "WHERE list_has_any(journey_ids, $ids)", {"ids": journey_ids})


def union(journeys: Iterable[set[str] | None]) -> set[str] | None:
    """Several journey sets as one (``None``, any journey, absorbs the rest)."""
    out: set[str] = set()
    for ids in journeys:
        if ids is None:
            return None
        out |= ids
    return out

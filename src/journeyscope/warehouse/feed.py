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
``changes`` and ``feed_positions``), for the one process that writes it; :class:`LakeFeed`
keeps it on a lake whose catalog is in PostgreSQL, for any number of writer and consumer
processes on any machines (generations from a PostgreSQL sequence, taken under an advisory
lock held to the end of the commit; other processes' commits found by polling).

The feed keeps the last ``retain`` generations; a consumer further behind is told
(``ChangeBatch.complete`` false) and derives everything again, as on its first start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import duckdb
import pyarrow as pa

from journeyscope.errors import WarehouseError
from journeyscope.settings import load as load_settings
from journeyscope.warehouse.dialect import insert_replacing, set_meta
from journeyscope.warehouse.lake import FEED_LOCK, Catalog

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_KINDS", "ERASURE", "EVENTS", "FEEDBACK", "SCORES", "SPANS", "VISITS",
    "Change", "ChangeBatch", "ChangeFeed", "DuckDBFeed", "LakeFeed",
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
    """What one commit changed of one kind: the journeys (``None``: any), under the commit's generation.

    ``first_seq``: the lowest ``seq`` (arrival number) of the spans the commit stored, or of the staged spans its
    GenAI log records belong to (``None``: none): stage-visit upkeep reads the spans of the journeys it derives
    from there on, not from the first span stored.
    """

    generation: int
    kind: str
    journeys: tuple[str, ...] | None
    first_seq: int | None = None


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

    def latest(self) -> int:
        """:meth:`generation`, asked now of what every process shares (``generation`` may answer from a look
        taken a moment ago): for a reader that must see every commit ended before it asked."""

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

    def positions(self, prefix: str) -> dict[str, int]:
        """The stored positions of the consumers whose name starts with ``prefix``."""


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
    def commit(self, cur: duckdb.DuckDBPyConnection, changes: dict[str, set[str] | None],
               first_seq: int | None = None) -> int:
        """Insert ``changes`` (journeys by kind, each with ``first_seq``: :attr:`Change.first_seq`) under the next
        generation, then ``COMMIT``; the generation (0: nothing to publish, committed plainly)."""
        if not changes:
            cur.execute("COMMIT")
            return 0
        with self._commit:
            generation = self._generation + 1
            _insert_changes(cur, generation, changes, first_seq)
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

    def latest(self) -> int:
        return self._generation  # one process writes the file: nothing to ask

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
            changes = _read_changes(cur, start, newest, kinds)
        finally:
            cur.close()
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

    def positions(self, prefix: str) -> dict[str, int]:
        cur = self._cursor()
        try:
            rows = cur.execute("SELECT consumer, generation FROM feed_positions WHERE starts_with(consumer, ?)",
                               [prefix]).fetchall()
        finally:
            cur.close()
        return {str(name): int(generation) for name, generation in rows}


def _insert_changes(cur: duckdb.DuckDBPyConnection, generation: int, changes: dict[str, set[str] | None],
                    first_seq: int | None) -> None:
    """One commit's changes as rows of ``changes``, handed over as Arrow: as statement parameters, a list of
    thousands of journey ids costs DuckDB far more to take in than the insert itself."""
    kinds = sorted(changes)
    ids = [None if changes[kind] is None else sorted(changes[kind]) for kind in kinds]  # type: ignore[arg-type]
    rows = pa.table({"generation": pa.array([generation] * len(kinds), pa.int64()),
                     "kind": pa.array(kinds, pa.string()), "journey_ids": pa.array(ids, pa.list_(pa.string())),
                     "first_seq": pa.array([first_seq] * len(kinds), pa.int64())})
    cur.register("js_changes", rows)
    try:
        cur.execute("INSERT INTO changes BY NAME SELECT generation, kind, journey_ids, first_seq, "
                    "now()::TIMESTAMP AS committed_at FROM js_changes")
    finally:
        cur.unregister("js_changes")


def _read_changes(cur: duckdb.DuckDBPyConnection, after: int, upto: int, kinds: frozenset[str]) -> tuple[Change, ...]:
    rows = cur.execute(
        "SELECT generation, kind, journey_ids, first_seq FROM changes WHERE generation > ? AND generation <= ? "
        "AND list_contains(?, kind) ORDER BY generation, kind",
        [after, upto, sorted(kinds)],
    ).fetchall()
    return tuple(Change(int(g), k, None if ids is None else tuple(ids), None if seq is None else int(seq))
                 for g, k, ids, seq in rows)


# The feed's state in the lake's PostgreSQL catalog database, beside DuckLake's own tables: the generation
# sequence, the head (the newest generation whose commit has ended, and where pruning reached) and consumers'
# positions (an upsert each: no lake snapshot, no conflict between two consumers recording at once).
_LAKE_SETUP = """
CREATE SEQUENCE IF NOT EXISTS journeyscope_generation;
CREATE TABLE IF NOT EXISTS journeyscope_feed (head BIGINT NOT NULL, pruned_through BIGINT NOT NULL);
INSERT INTO journeyscope_feed SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM journeyscope_feed);
CREATE TABLE IF NOT EXISTS journeyscope_feed_positions (
    consumer VARCHAR PRIMARY KEY, generation BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now());
"""


#: Generations a :class:`LakeFeed` keeps in memory, and journey ids in all of them together (whichever bound
#: is reached first: a commit's change may name thousands of journeys).
_KEPT = 10_000
_KEPT_IDS = 1_000_000


class LakeFeed:
    """:class:`ChangeFeed` on a lake whose catalog is in PostgreSQL: many writer and consumer processes.

    **Generations are commit order across processes.** A commit that publishes takes the advisory lock
    :data:`~journeyscope.warehouse.lake.FEED_LOCK`, draws its generation from the PostgreSQL sequence
    ``journeyscope_generation``, inserts its change rows, commits to the lake, raises the head
    (``journeyscope_feed.head``) to its generation and only then releases the lock. So generation ``G`` is drawn
    only after every commit with a smaller one has ended (committed, or failed and never to appear: a gap), and
    the head names only ended commits. A reader reads the head first and then the changes up to it in a lake
    snapshot taken after: it sees every commit at or below the head, never a later one filling in below.
    (DuckLake's own snapshot ids are not used: a commit learns its id only once committed, too late to stamp
    its change rows, and every commit makes one, publishing or not.)

    **Other processes' commits** are found by polling the head (one primary-key row in PostgreSQL) at most every
    ``poll_s`` seconds (``JOURNEYSCOPE_FEED_POLL``); this process's own commits are seen at once. What its own
    commits published, and every generation it has read from the lake, is kept in memory (the last :data:`_KEPT`
    generations, :data:`_KEPT_IDS` journey ids at most): a lake query of one generation costs more the more rows
    the table holds inlined in PostgreSQL (until compaction flushes them), so a read asks the lake only for
    generations it has not seen, once, and consumers behind one another (upkeep paced, the server's states at once)
    share what the first one read.

    A writer killed between its lake commit and raising the head leaves the head below its generation until the
    next publishing commit raises it past (that commit cannot end before the killed one has: DuckLake's commits
    take its snapshot ids in turn); opening the feed also raises the head to the newest stored generation.
    """

    def __init__(self, catalog: Catalog, cursor: Callable[[], duckdb.DuckDBPyConnection], *,
                 read_only: bool = False, retain: int = 100_000, poll_s: float | None = None) -> None:
        """``catalog``: a connection of the feed's own (its lock is held across commits); ``cursor`` opens a
        cursor on the lake's tables."""
        self._catalog = catalog
        self._cursor = cursor
        self.retain = retain
        self.poll_s = load_settings().feed_poll_s if poll_s is None else poll_s
        self._state = threading.Lock()
        self._generation = 0
        self._pruned_through = 0
        self._polled_at = float("-inf")
        self._wakes = 0
        self._woken = threading.Condition()
        self._failing = False
        self._known: dict[int, tuple[Change, ...]] = {}  # generation -> its changes (own commits, lake reads)
        self._known_ids = 0
        if not read_only:  # a reader's first look at the head is its first generation()
            self._open()
            self._poll(strict=True)

    def _open(self) -> None:
        """Make the feed's tables and raise the sequence and head past what the lake stores (a lake written
        before, or a commit whose writer died before raising the head)."""
        with self._catalog.locked([FEED_LOCK]):
            for statement in filter(str.strip, _LAKE_SETUP.split(";")):
                self._catalog.query(statement)
            cur = self._cursor()
            try:
                row = cur.execute("SELECT max(generation) FROM changes").fetchone()
            finally:
                cur.close()
            stored = int(row[0]) if row and row[0] is not None else 0
            if stored:
                self._catalog.query("SELECT setval('journeyscope_generation', greatest(%s, "
                                    "(SELECT last_value FROM journeyscope_generation)))", (stored,))
                self._catalog.query("UPDATE journeyscope_feed SET head = greatest(head, %s)", (stored,))

    def _poll(self, *, strict: bool = False) -> None:
        from psycopg.errors import UndefinedTable  # a lake feed has a PostgreSQL catalog, so psycopg is there

        try:
            rows = self._catalog.query("SELECT head, pruned_through FROM journeyscope_feed")
            self._failing = False
        except WarehouseError as exc:  # the catalog away: keep the last head, look again next time
            if strict:
                raise
            if not self._failing:
                logger.warning("journeyscope: cannot read the change feed's head (looking again): %s", exc)
            self._failing = True
            rows = []
        except UndefinedTable:  # no feed tables yet: a lake no writer of this version has opened
            rows = []
        with self._state:
            self._polled_at = time.monotonic()
            if rows:
                self._generation = max(self._generation, int(rows[0][0]))  # type: ignore[arg-type]
                self._pruned_through = max(self._pruned_through, int(rows[0][1]))  # type: ignore[arg-type]

    # -- writing ---------------------------------------------------------------------------------------
    def commit(self, cur: duckdb.DuckDBPyConnection, changes: dict[str, set[str] | None],
               first_seq: int | None = None) -> int:
        """Insert ``changes`` under the next generation and ``COMMIT``, all under the feed lock; the generation
        (0: nothing to publish, committed plainly)."""
        if not changes:
            cur.execute("COMMIT")
            return 0
        with self._catalog.locked([FEED_LOCK]):
            row = self._catalog.query(
                "SELECT nextval('journeyscope_generation'), pruned_through FROM journeyscope_feed")[0]
            generation, pruned_through = int(row[0]), int(row[1])  # type: ignore[arg-type]
            _insert_changes(cur, generation, changes, first_seq)
            prune = generation - self.retain
            if prune >= pruned_through + 1000:
                # Said before the rows go: a consumer behind it then derives everything, never misses a change.
                self._catalog.query("UPDATE journeyscope_feed SET pruned_through = %s", (prune,))
                cur.execute("DELETE FROM changes WHERE generation <= ?", [prune])
            cur.execute("COMMIT")
            self._keep(generation, changes, first_seq)
            try:
                self._catalog.query("UPDATE journeyscope_feed SET head = greatest(head, %s)", (generation,))
            except WarehouseError as exc:  # committed: the next publishing commit raises the head past it
                logger.warning("journeyscope: committed generation %d, but could not raise the feed's head: %s",
                               generation, exc)
        with self._state:
            self._generation = max(self._generation, generation)
        self.wake()
        return generation

    def _keep(self, generation: int, changes: dict[str, set[str] | None], first_seq: int | None) -> None:
        """Remember what this process's commit of ``generation`` published, as a read of the lake returns it."""
        published = tuple(Change(generation, kind, None if ids is None else tuple(sorted(ids)), first_seq)
                          for kind, ids in sorted(changes.items()))
        with self._state:
            self._remember({generation: published})

    def _remember(self, generations: dict[int, tuple[Change, ...]]) -> None:
        """Keep ``generations`` (under ``_state``), the oldest forgotten past the bounds. An erasure among them
        forgets everything kept before: its commit took the erased journeys out of the stored changes."""
        for generation, changes in sorted(generations.items()):
            if any(c.kind == ERASURE for c in changes):
                self._known.clear()
                self._known_ids = 0
            self._known[generation] = changes
            self._known_ids += sum(len(c.journeys or ()) for c in changes)
        while self._known and (len(self._known) > _KEPT or self._known_ids > _KEPT_IDS):
            oldest = next(iter(self._known))
            self._known_ids -= sum(len(c.journeys or ()) for c in self._known.pop(oldest))

    def _kept(self, after: int, upto: int, kinds: frozenset[str]) -> tuple[Change, ...] | None:
        """The changes of ``kinds`` in ``(after, upto]`` from memory, when every generation there is known
        (``None`` otherwise: the lake's to say)."""
        with self._state:
            if upto - after > len(self._known) or any(g not in self._known for g in range(after + 1, upto + 1)):
                return None
            return tuple(c for g in range(after + 1, upto + 1) for c in self._known[g] if c.kind in kinds)

    def _unknown_from(self, after: int, upto: int) -> int:
        """The last generation at or after ``after`` below which everything in ``(after, upto]`` is known."""
        with self._state:
            start = after
            while start < upto and start + 1 in self._known:
                start += 1
            return start

    # -- reading ---------------------------------------------------------------------------------------
    def generation(self) -> int:
        if time.monotonic() - self._polled_at >= self.poll_s:
            self._poll()
        return self._generation

    def latest(self) -> int:
        self._poll()
        return self._generation

    def read(self, after: int | None, kinds: frozenset[str], upto: int | None = None) -> ChangeBatch:
        head = self.generation()  # before the lake is read: every commit at or below it has ended
        newest = head if upto is None else min(upto, head)
        if after is None:
            return ChangeBatch(0, newest, (), False)
        complete = after >= self._pruned_through
        if newest <= after:
            return ChangeBatch(after, after, (), complete)
        start = self._unknown_from(after, newest)
        if start < newest and newest - start <= _KEPT:  # what it has not seen, every kind, kept for the next read
            fetched: dict[int, tuple[Change, ...]] = dict.fromkeys(range(start + 1, newest + 1), ())
            for change in self._read_lake(start, newest, ALL_KINDS):
                fetched[change.generation] += (change,)  # a generation without rows stays (): a gap
            with self._state:
                self._remember(fetched)
        kept = self._kept(after, newest, kinds)
        if kept is None:  # too far behind to keep, or an erasure read made what was kept before go
            kept = self._read_lake(after, newest, kinds)
        return ChangeBatch(after, newest, kept, complete)

    def _read_lake(self, after: int, upto: int, kinds: frozenset[str]) -> tuple[Change, ...]:
        cur = self._cursor()
        try:
            return _read_changes(cur, after, upto, kinds)
        finally:
            cur.close()

    def wait(self, after: int, timeout_s: float | None) -> int:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._woken:
            wakes = self._wakes
        while True:
            generation = self.generation()
            remaining = None if deadline is None else deadline - time.monotonic()
            if generation > after or (remaining is not None and remaining <= 0):
                return generation
            with self._woken:
                if self._wakes != wakes:
                    return generation
                self._woken.wait(self.poll_s if remaining is None else min(self.poll_s, remaining))
                if self._wakes != wakes:
                    return self._generation

    def wake(self) -> None:
        with self._woken:
            self._wakes += 1
            self._woken.notify_all()

    def position(self, consumer: str) -> int | None:
        rows = self._catalog.query("SELECT generation FROM journeyscope_feed_positions WHERE consumer = %s",
                                   (consumer,))
        return int(rows[0][0]) if rows else None  # type: ignore[arg-type]

    def record(self, consumer: str, generation: int) -> None:
        self._catalog.query(
            "INSERT INTO journeyscope_feed_positions (consumer, generation) VALUES (%s, %s) ON CONFLICT (consumer) "
            "DO UPDATE SET generation = excluded.generation, updated_at = now()", (consumer, generation))

    def positions(self, prefix: str) -> dict[str, int]:
        rows = self._catalog.query("SELECT consumer, generation FROM journeyscope_feed_positions "
                                   "WHERE starts_with(consumer, %s)", (prefix,))
        return {str(name): int(generation) for name, generation in rows}  # type: ignore[call-overload]


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

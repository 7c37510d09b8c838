"""Which journeys' stage visits are due for upkeep: read off the change feed after upkeep's stored positions.

Every commit that stores spans lists their journeys on the change feed (:mod:`~journeyscope.warehouse.feed`), with
the first ``seq`` among them; upkeep (:meth:`~journeyscope.warehouse.store.Warehouse.update_visits`) derives the
journeys listed after its position and then moves the position on. A position is stored, so a process
restarted after a crash derives what it had not, and shared by every process of a lake (in PostgreSQL).

Positions are named :data:`UPKEEP_POSITION` (upkeep of every journey), ``visit-upkeep K/N`` (a derive worker's
partition) and :data:`REBUILT_POSITION` (where a full derivation stood). A position not stored yet starts where every
journey was known derived (:func:`derived_through`): workers split into more or fewer parts start where the parts
before them had all reached, never where only one of them had.
"""

from __future__ import annotations

import math

from journeyscope.errors import ConfigError
from journeyscope.warehouse.feed import Change
from journeyscope.warehouse.partition import Partition

__all__ = [
    "REBUILT_POSITION",
    "UPKEEP_GENERATIONS",
    "UPKEEP_POSITION",
    "derived_through",
    "due_journeys",
    "overlapping_upkeeps",
    "still_due",
    "upkeep_position",
]

#: The change-feed position of stage-visit upkeep of every journey.
UPKEEP_POSITION = "visit-upkeep"
#: The feed position up to which a full derivation (a new journey map, a migration) derived every journey's
#: visits: no upkeep starts before it.
REBUILT_POSITION = f"{UPKEEP_POSITION} rebuilt"
#: Generations of the change feed one step of an upkeep reads at most (it goes on until it is caught up): what it
#: holds of the feed at once is bounded by it, however far behind it fell.
UPKEEP_GENERATIONS = 1000


def upkeep_position(partition: Partition | None) -> str:
    """The name of the feed position of the upkeep of ``partition`` (every journey: ``None`` or ``1/1``)."""
    return UPKEEP_POSITION if partition is None or partition.whole else f"{UPKEEP_POSITION} {partition}"


def _owner(name: str) -> Partition | None:
    """The journeys the upkeep position ``name`` covers, as a partition (``1/1``: every journey); ``None`` for a
    name that is not an upkeep position's."""
    if not name.startswith(UPKEEP_POSITION):
        return None
    spec = name.removeprefix(UPKEEP_POSITION).strip()
    if spec in ("", "rebuilt"):
        return Partition(1, 1)
    try:
        return Partition.parse(spec)
    except ConfigError:
        return None


def _covering(positions: dict[str, int]) -> list[tuple[Partition | None, int]]:
    """Upkeep's stored ``positions`` as (the journeys each covers: ``None`` for every journey, else a partition;
    the position); names that are neither are left out."""
    out: list[tuple[Partition | None, int]] = []
    for name, generation in positions.items():
        owner = _owner(name)
        if owner is not None:
            out.append((None if owner.whole else owner, generation))
    return out


def derived_through(positions: dict[str, int]) -> int:
    """The feed position up to which every journey's visits were derived, from upkeep's stored ``positions``
    (:meth:`~journeyscope.warehouse.feed.ChangeFeed.positions`): a full derivation's, whole upkeep's, or the
    lowest of a set of partitions that covers every journey."""
    through, layouts = 0, {}
    for partition, generation in _covering(positions):
        if partition is None:
            through = max(through, generation)
        else:
            layouts.setdefault(partition.count, {})[partition.index] = generation
    return max([through, *(min(parts.values()) for count, parts in layouts.items() if len(parts) == count)])


def due_journeys(changes: tuple[Change, ...], partition: Partition | None) -> dict[str, int | None] | None:
    """The journeys ``changes`` list (of ``partition``), each with the lowest ``first_seq`` of the changes that
    list it (``None``: none said one); ``None`` when a change names any journey."""
    due: dict[str, int | None] = {}
    # Filled from the highest first_seq down, so the lowest one written for a journey is the one it keeps.
    for change in sorted(changes, key=lambda c: (c.first_seq is not None, -(c.first_seq or 0))):
        if change.journeys is None:
            return None
        due.update(dict.fromkeys(change.journeys, change.first_seq))
    if partition is not None and not partition.whole:
        return {j: seq for j, seq in due.items() if partition.owns(j)}
    return due


def still_due(changes: tuple[Change, ...], positions: dict[str, int]) -> set[str] | None:
    """The journeys ``changes`` list after the position of the upkeep that derives them (whole, or the partition
    owning them); ``None`` when a change names any journey."""
    if any(c.journeys is None for c in changes):
        return None
    latest = {j: c.generation for c in changes for j in c.journeys or ()}
    covering = _covering(positions)
    return {j for j, listed in latest.items()
            if not any(g >= listed and (p is None or p.owns(j)) for p, g in covering)}


def _overlap(a: Partition, b: Partition) -> bool:
    """Whether two upkeeps can own the same journey: parts ``i/n`` and ``j/m`` share the hashes congruent to
    both, which exist exactly when ``i ≡ j`` modulo ``gcd(n, m)`` (every journey, ``1/1``, shares all)."""
    return (a.index - b.index) % math.gcd(a.count, b.count) == 0


def overlapping_upkeeps(name: str, seen: dict[str, int], now: dict[str, int]) -> list[str]:
    """The other upkeeps whose stored position moved between two looks at the positions (``seen``, then ``now``)
    and which derive some of the journeys upkeep ``name`` derives: another process deriving them too, which is
    correct (the same visits) but twice the work (a receiver left deriving beside derive workers)."""
    own = _owner(name)
    if own is None:
        return []
    return sorted(other for other, generation in now.items()
                  if other not in (name, REBUILT_POSITION) and generation > seen.get(other, generation)
                  and (owner := _owner(other)) is not None and _overlap(own, owner))

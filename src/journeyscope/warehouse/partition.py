"""Which journeys a derive worker owns: ``K/N``, the journeys whose stable hash falls in part ``K`` of ``N``.

Derive workers on one lake (``journeyscope derive --partition K/N``) split the journeys between them by a hash
every process computes the same way, in SQL and in Python: the upper 64 bits of the journey id's MD5 (DuckDB's
``md5_number_upper``, the first eight digest bytes read little-endian), modulo ``N``. It does not depend on the
DuckDB version, the machine or the process, so a worker restarted anywhere owns the same journeys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from journeyscope.errors import ConfigError

__all__ = ["Partition"]

_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Partition:
    """Part ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(f"partition {self.index}/{self.count}: K/N needs 1 <= K <= N")

    @classmethod
    def parse(cls, spec: str) -> Partition:
        """``"K/N"`` (``"2/3"``); a :class:`ConfigError` naming the problem otherwise."""
        match = _SPEC.fullmatch(spec)
        if not match:
            raise ConfigError(f"partition {spec!r} is not K/N (e.g. 1/2: the first of two derive workers)")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        """Whether it owns every journey (``1/1``)."""
        return self.count == 1

    def sql(self, column: str = "journey_id") -> str:
        """A SQL condition true for the rows whose ``column`` (a journey id) this partition owns."""
        if self.whole:
            return "true"
        return f"md5_number_upper({column}) % {self.count} = {self.index - 1}"

    def owns(self, journey_id: str) -> bool:
        """:meth:`sql` in Python."""
        if self.whole:
            return True
        digest = hashlib.md5(journey_id.encode(), usedforsecurity=False).digest()
        return int.from_bytes(digest[:8], "little") % self.count == self.index - 1

    def select(self, journeys: Iterable[str]) -> list[str]:
        """The ``journeys`` it owns, in their order."""
        return [j for j in journeys if self.owns(j)]

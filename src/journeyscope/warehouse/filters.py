"""The filter every analytics query takes: journey type, cohort, channel and time window.

One definition, turned into one SQL condition over ``stage_visits``, so the
funnel, the flows, the compare view, the API and the dashboard all mean the same
thing by "cohort trial on chat last week": visits of that journey type, of
journeys in that cohort, on that channel, that started inside the window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from journeyscope.errors import InvalidInputError, JourneyscopeError
from journeyscope.warehouse.journey_map import parse_duration

__all__ = ["EARLIEST", "LATEST", "MAX_WINDOW", "Filters", "check_time", "window_start"]

#: The times a filter may name: inside what the warehouse's nanosecond timestamps hold (1677 to 2262),
#: with room for any time zone; a time outside is a mistake, refused by name rather than sent to a query.
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
#: The longest ``window`` ("the last 36500d"): a hundred years back from now stays inside the range.
MAX_WINDOW = timedelta(days=36_500)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which stage visits to count. ``None`` means "all"; times are UTC, ``until`` exclusive."""

    journey: str | None = None
    cohort: str | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        check_time("since", self.since)
        check_time("until", self.until)
        if self.since and self.until and _utc(self.since) >= _utc(self.until):
            raise InvalidInputError(f"since: the window is empty: since {self.since} is not before until {self.until}")

    @property
    def keeps_whole_journeys(self) -> bool:
        """Whether the filter keeps or drops journeys whole (type, cohort), never some of a journey's visits.

        Then per-journey facts stored on the visits can be counted directly, and the filter's
        condition holds on ``evaluations`` too (which carry ``journey_name`` and ``cohort``,
        :mod:`journeyscope.warehouse.journey_facts`); a channel or time filter selects some visits
        of a journey, and queries must group by journey, or join scores to their visits, instead.
        """
        return self.channel is None and self.since is None and self.until is None

    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """An SQL condition (``TRUE`` when unfiltered) and its parameters."""
        p = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if self.journey is not None:
            clauses.append(f"{p}journey_name = ?")
            params.append(self.journey)
        if self.cohort is not None:
            clauses.append(f"{p}cohort = ?")
            params.append(self.cohort)
        if self.channel is not None:
            clauses.append(f"list_contains({p}channels, ?)")
            params.append(self.channel.strip().lower())
        if self.since is not None:
            clauses.append(f"{p}started_at >= ?")
            params.append(_naive_utc(self.since))
        if self.until is not None:
            clauses.append(f"{p}started_at < ?")
            params.append(_naive_utc(self.until))
        return (" AND ".join(clauses) or "TRUE"), params

    def describe(self) -> str:
        """Human words for the filter, for "no data for ..." messages."""
        parts = [f"{k} {v}" for k, v in self.as_dict().items() if v is not None]
        return ", ".join(parts) or "no filter"

    def as_dict(self) -> dict[str, str | None]:
        return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


def check_time(name: str, value: datetime | None) -> None:
    """Refuse a time outside :data:`EARLIEST`..:data:`LATEST` (:class:`InvalidInputError` naming ``name``)."""
    if value is None:
        return
    try:
        inside = EARLIEST <= _utc(value) < LATEST
    except OverflowError:  # a time zone pushed it past datetime's own range
        inside = False
    if not inside:
        raise InvalidInputError(
            f"{name}: {value.isoformat()} is outside the supported range "
            f"{EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"
        )


def window_start(window: str, now: datetime, name: str = "window") -> datetime:
    """When "the last ``window``" (``15m``, ``24h``, ``7d``...) began, at most :data:`MAX_WINDOW` back.

    Rounded down to the minute, so that repeated "last hour" queries share one cached result.
    """
    try:
        seconds = parse_duration(window, name)
    except JourneyscopeError as exc:
        raise InvalidInputError(str(exc)) from None
    if seconds > MAX_WINDOW.total_seconds():
        raise InvalidInputError(f"{name}: {window!r} is longer than the longest window, {MAX_WINDOW.days}d")
    return _utc(now).replace(second=0, microsecond=0) - timedelta(seconds=seconds)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _naive_utc(value: datetime) -> datetime:
    """The warehouse stores naive UTC timestamps."""
    return _utc(value).replace(tzinfo=None)

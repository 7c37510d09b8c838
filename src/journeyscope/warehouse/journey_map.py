"""The journey map: the ordered stages of each journey type, and when a journey goes idle.

Read from ``journeys.toml`` (docs/contracts.md)::

    [journeys.onboarding]
    stages = ["sign-up", "verify-id", "app-install", "first-payment"]
    idle_timeout = "30m"

A visit is ``completed`` when its journey later reaches a stage further along
this list; a journey type without a map is ordered by what each journey
entered first (see :mod:`journeyscope.warehouse.visits`). The map is part of
how visits are derived, so its :meth:`JourneyMap.digest` is stored with them and
a changed map re-derives them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from journeyscope import settings
from journeyscope.errors import ConfigError
from journeyscope.tomlconfig import parse_toml, read_config_text

__all__ = ["DEFAULT_IDLE_TIMEOUT_S", "JourneyMap", "JourneyType", "load_journey_map", "parse_duration"]

DEFAULT_IDLE_TIMEOUT_S = 30 * 60
DEFAULT_MAP_FILE = "journeys.toml"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, where: str = "idle_timeout") -> float:
    """``"30m"``, ``"90s"``, ``"2h"``, ``"1d"`` or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration like \"30m\", got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{where}: expected a duration like \"30m\", \"90s\" or \"2h\", got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{where}: the duration must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class JourneyType:
    """One ``[journeys.NAME]`` table: its stages in order and its idle timeout."""

    name: str
    stages: tuple[str, ...] = ()
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S


@dataclass(frozen=True)
class JourneyMap:
    """All journey types of a map file; journey types not listed use the defaults."""

    journeys: dict[str, JourneyType] = field(default_factory=dict)
    default_idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    source: str | None = None

    def stage_rows(self) -> list[tuple[str, str, int]]:
        """``(journey_name, stage, position)`` rows, for joining in SQL."""
        return [(j.name, stage, i) for j in self.journeys.values() for i, stage in enumerate(j.stages)]

    def timeout_rows(self) -> list[tuple[str, float]]:
        """``(journey_name, idle_timeout_seconds)`` rows, for joining in SQL."""
        return [(j.name, j.idle_timeout_s) for j in self.journeys.values()]

    def digest(self) -> str:
        """A fingerprint of what the map means (not of its formatting)."""
        data = {
            "default": self.default_idle_timeout_s,
            "journeys": {n: [list(j.stages), j.idle_timeout_s] for n, j in sorted(self.journeys.items())},
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def parse_journey_map(text: str, source: str = "journeys.toml") -> JourneyMap:
    """Parse map text; any problem is a :class:`ConfigError` naming the file and line."""
    toml = parse_toml(text, source)
    document = toml.document
    default_timeout = DEFAULT_IDLE_TIMEOUT_S
    if "idle_timeout" in document:
        where = f"{source}, {toml.line('idle_timeout')}: idle_timeout"
        default_timeout = parse_duration(document["idle_timeout"], where)
    journeys_table = document.get("journeys", {})
    if not isinstance(journeys_table, dict):
        raise ConfigError(f"{source}, {toml.line('journeys')}: 'journeys' must be a table of journey types")
    journeys: dict[str, JourneyType] = {}
    for name, spec in journeys_table.items():
        where = f"{source}, {toml.line(f'journeys.{name}')}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: [journeys.{name}] must be a table with 'stages'")
        stages = spec.get("stages", [])
        if not isinstance(stages, list) or not all(isinstance(s, str) and s.strip() for s in stages):
            where = f"{source}, {toml.line('stages', after=f'journeys.{name}')}"
            raise ConfigError(f"{where}: journeys.{name}.stages must be a list of non-empty stage names")
        cleaned = tuple(s.strip() for s in stages)
        if len(set(cleaned)) != len(cleaned):
            raise ConfigError(f"{where}: journeys.{name}.stages names a stage twice")
        timeout = default_timeout
        if "idle_timeout" in spec:
            line = toml.line("idle_timeout", after=f"journeys.{name}")
            timeout = parse_duration(spec["idle_timeout"], f"{source}, {line}: journeys.{name}.idle_timeout")
        journeys[name] = JourneyType(name, cleaned, timeout)
    return JourneyMap(journeys, default_timeout, source)


def load_journey_map(path: str | Path | None = None) -> JourneyMap:
    """The map named by ``path``, else ``$JOURNEYSCOPE_MAP``, else ``./journeys.toml``, else an empty map.

    A file named explicitly (argument or variable) must exist; the default
    ``./journeys.toml`` is optional.
    """
    explicit = path or settings.load().map_file
    target = Path(explicit) if explicit else Path(DEFAULT_MAP_FILE)
    if not target.exists():
        if explicit:
            raise ConfigError(f"journey map {target} does not exist")
        return JourneyMap()
    return parse_journey_map(read_config_text(target, "journey map"), str(target))

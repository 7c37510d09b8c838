"""Monitors as declared in a TOML file, and the shipped default set.

A monitors file names, per monitor, a signal (:mod:`.signals`), a scope and a
rule; ``[[webhooks]]`` say where alerts go::

    version = "2026-12-01"

    [defaults]                  # every key of a monitor may be given here
    baseline_window = "7d"      # how much history (or peer data) the baseline pools
    window = "24h"              # the recent window shown as evidence; history baselines skip it
    min_baseline = 100          # observations the baseline needs before the monitor may fire
    min_window = 20             # observations in the alarm's run before it may fire
    min_events = 5              # bad observations in the run before it may fire
    shift = 2.0                 # the change to detect fast: a rate's odds of a bad outcome x shift (> 1);
                                # a mean's move, in baseline standard deviations (default 0.5)
    threshold = 8.0             # CUSUM decision threshold (log-likelihood ratio) to fire
    resolve_threshold = 8.0     # the same, for the evidence that the baseline is back

    [[monitors]]
    name = "completion-drop"
    signal = "completion"
    journey = "*"               # "*": each journey type; a name: that one; omitted: all pooled
    stage = "*"                 # likewise stage, cohort, channel, evaluator
    baseline = "history"        # or "peers" (the journey's other stages), "cohort:NAME", "stage:NAME",
                                # "channel:NAME"; or target = 0.5 (the rate or mean to stay within)

    [[webhooks]]
    url = "https://hooks.example.com/journeyscope"
    format = "json"             # or "slack"
    secret_env = "ALERTS_WEBHOOK_SECRET"   # or secret = "..." (HMAC-SHA256 signature)
    monitors = ["completion-drop"]               # optional: only these monitors' alerts

Problems are a :class:`ConfigError` naming the file and line; names of journeys,
stages and evaluators are checked against what the warehouse knows by
:func:`check_scopes`.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from journeyscope.errors import ConfigError
from journeyscope.tomlconfig import parse_toml, read_config_text
from journeyscope.warehouse.journey_map import parse_duration
from journeyscope.warehouse.monitors.signals import DIMENSIONS, signals

__all__ = ["DEFAULT_MONITORS", "Monitor", "MonitorSet", "Webhook", "check_scopes", "load_monitors", "parse_monitors"]

#: The shipped default set (a file in this package).
DEFAULT_MONITORS = "defaults.toml"

_RULE_KEYS = {"baseline_window", "window", "min_baseline", "min_window", "min_events", "shift", "threshold",
              "resolve_threshold"}
_MONITOR_KEYS = {"name", "signal", "baseline", "target", "description", *DIMENSIONS, *_RULE_KEYS}
_WEBHOOK_KEYS = {"url", "format", "secret", "secret_env", "monitors", "max_attempts"}
_BASELINE_KINDS = ("history", "peers", "cohort", "stage", "channel", "target")


@dataclass(frozen=True)
class Monitor:
    """One declared monitor: a signal, a scope (``None`` pooled, ``"*"`` each, or a name) and its rule."""

    name: str
    signal: str
    scope: dict[str, str | None]
    baseline: str = "history"  # history | peers | target | cohort | stage | channel
    baseline_value: str | None = None  # the other cohort/stage/channel
    target: float | None = None
    baseline_window_s: float = 7 * 86400
    window_s: float = 86400
    min_baseline: int = 100
    min_window: int = 20
    min_events: int = 5
    shift: float | None = None  # None: 2.0 (odds ratio) for a rate, 0.5 (standard deviations) for a mean
    threshold: float = 8.0
    resolve_threshold: float = 8.0
    description: str = ""
    line: str = ""  # where it is declared, for errors found later
    key_lines: dict[str, str] = field(default_factory=dict, compare=False)  # and its journey, stage, evaluator

    def describe_baseline(self) -> str:
        if self.baseline == "target":
            return f"target {self.target:g}"
        if self.baseline_value is not None:
            return f"{self.baseline} {self.baseline_value}"
        return self.baseline


@dataclass(frozen=True)
class Webhook:
    """Where alerts are posted: ``format`` ``json`` or ``slack``; signed when there is a secret."""

    url: str
    format: str = "json"
    secret: str | None = None
    monitors: frozenset[str] | None = None
    max_attempts: int = 5

    def wants(self, monitor: str) -> bool:
        return self.monitors is None or monitor in self.monitors


@dataclass(frozen=True)
class MonitorSet:
    """A validated monitors file."""

    monitors: tuple[Monitor, ...]
    webhooks: tuple[Webhook, ...] = ()
    version: str = ""
    source: str = "(built-in monitors)"
    digest: str = ""


class _Problem(ValueError):
    """A problem with one key of an entry (its line is named)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _positive(value: Any, what: str, *, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    if whole and int(value) != value:
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    return float(value)


def _rule(raw: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("baseline_window", "window"):
        if key in raw:
            out[f"{key}_s"] = parse_duration(raw[key], f"{where}: {key}")
    for key in ("min_baseline", "min_window", "min_events"):
        if key in raw:
            out[key] = int(_positive(raw[key], key, whole=True))
    for key in ("threshold", "resolve_threshold"):
        if key in raw:
            out[key] = _positive(raw[key], key)
    if "shift" in raw:
        out["shift"] = _positive(raw["shift"], "shift")
    return out


def _monitor(raw: Any, defaults: dict[str, Any], index: int, where: str) -> Monitor:
    if not isinstance(raw, dict):
        raise ValueError("a [[monitors]] entry must be a table")
    unknown = sorted(set(raw) - _MONITOR_KEYS)
    if unknown:
        raise _Problem(unknown[0], f"unknown key(s): {', '.join(unknown)} (allowed: {', '.join(sorted(_MONITOR_KEYS))})")
    known = signals()
    name = raw.get("signal")
    if name not in known:
        raise _Problem("signal", f"unknown signal {name!r} (known: {', '.join(sorted(known))})")
    signal = known[name]
    scope: dict[str, str | None] = {}
    for dim in DIMENSIONS:
        value = raw.get(dim)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise _Problem(dim, f"{dim} must be a name or \"*\", got {value!r}")
        if value is not None and dim not in signal.dimensions:
            raise _Problem(dim, f"signal {name!r} cannot be split by {dim} (it has: {', '.join(signal.dimensions)})")
        scope[dim] = value
    fields: dict[str, Any] = {**_rule(defaults, where), **_rule(raw, where)}
    baseline = raw.get("baseline", "history" if "target" not in raw else "target")
    if "target" in raw:
        if "baseline" in raw and baseline != "target":
            raise ValueError("give either a baseline or a target, not both")
        target = raw["target"]
        if isinstance(target, bool) or not isinstance(target, (int, float)):
            raise ValueError(f"target must be a number, got {target!r}")
        if signal.kind == "rate" and not 0 < target < 1:
            raise _Problem("target", f"the target of a rate must be between 0 and 1 (exclusive), got {target!r}")
        fields["target"] = float(target)
    if not isinstance(baseline, str):
        raise ValueError(f"baseline must be a string, got {baseline!r}")
    kind, _, other = baseline.partition(":")
    if kind not in _BASELINE_KINDS or (kind in ("cohort", "stage", "channel")) != bool(other):
        raise _Problem("baseline",
                       f"baseline must be history, peers, cohort:NAME, stage:NAME or channel:NAME, got {baseline!r}")
    if kind == "target" and "target" not in raw:
        raise ValueError("baseline = \"target\" needs target = NUMBER")
    if kind == "peers" and "stage" not in signal.dimensions:
        raise ValueError(f"signal {name!r} has no stages to compare with peers")
    if kind in ("cohort", "stage", "channel") and kind not in signal.dimensions:
        raise ValueError(f"signal {name!r} cannot be split by {kind}")
    if signal.kind == "rate" and fields.get("shift", 2.0) <= 1:
        raise ValueError(f"shift of a rate is the odds ratio to detect and must exceed 1, got {fields['shift']!r}")
    for key in ("name", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{key} must be a string")
    return Monitor(
        name=raw.get("name") or f"monitor-{index + 1}",
        signal=name,
        scope=scope,
        baseline=kind,
        baseline_value=other or None,
        description=raw.get("description", ""),
        **fields,
    )


def _webhook(raw: Any) -> Webhook:
    if not isinstance(raw, dict):
        raise ValueError("a [[webhooks]] entry must be a table")
    unknown = sorted(set(raw) - _WEBHOOK_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)} (allowed: {', '.join(sorted(_WEBHOOK_KEYS))})")
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http:// or https:// address, got {url!r}")
    fmt = raw.get("format", "json")
    if fmt not in ("json", "slack"):
        raise ValueError(f"format must be \"json\" or \"slack\", got {fmt!r}")
    secret = raw.get("secret")
    if "secret_env" in raw:
        secret = os.environ.get(str(raw["secret_env"]))
        if not secret:
            raise ValueError(f"the environment variable {raw['secret_env']} (secret_env) is not set")
    if secret is not None and not isinstance(secret, str):
        raise ValueError("secret must be a string")
    only = raw.get("monitors")
    if only is not None and (not isinstance(only, list) or not all(isinstance(m, str) for m in only)):
        raise ValueError("monitors must be a list of monitor names")
    attempts = int(_positive(raw.get("max_attempts", 5), "max_attempts", whole=True))
    return Webhook(url, fmt, secret, frozenset(only) if only is not None else None, attempts)


def _nth_line(text: str, header: str, occurrence: int, key: str | None = None) -> str:
    """The line of the ``occurrence``-th ``header`` table, or of ``key`` inside it."""
    count, inside = -1, False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped.startswith(header) and (count := count + 1) == occurrence
            if inside and key is None:
                return f"line {number}"
        elif inside and key is not None and stripped.split("=", 1)[0].strip() == key:
            return f"line {number}"
    return _nth_line(text, header, occurrence) if key is not None else "the file"


def parse_monitors(text: str, source: str = "monitors.toml") -> MonitorSet:
    """Validate a monitors file; any problem is a :class:`ConfigError` naming the file and line."""
    toml = parse_toml(text, source)
    doc = toml.document
    unknown = sorted(set(doc) - {"version", "defaults", "monitors", "webhooks"})
    if unknown:
        raise ConfigError(f"{source}, {toml.line(unknown[0])}: unknown section or key {unknown[0]!r}")
    defaults = doc.get("defaults", {})
    where = f"{source}, {toml.line('[defaults]')}"
    if not isinstance(defaults, dict) or set(defaults) - _RULE_KEYS:
        extra = sorted(set(defaults) - _RULE_KEYS) if isinstance(defaults, dict) else ["(not a table)"]
        raise ConfigError(f"{where}: [defaults] may hold {', '.join(sorted(_RULE_KEYS))}; got {', '.join(extra)}")
    try:
        _rule(defaults, where)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raw_monitors = doc.get("monitors", [])
    if not isinstance(raw_monitors, list):
        raise ConfigError(f"{source}, {toml.line('monitors')}: monitors must be [[monitors]] tables")
    monitors: list[Monitor] = []
    for i, raw in enumerate(raw_monitors):
        where = f"{source}, {_nth_line(text, '[[monitors]]', i)}"
        try:
            monitor = _monitor(raw, defaults, i, where)
        except ValueError as exc:
            at = _nth_line(text, "[[monitors]]", i, getattr(exc, "key", None))
            raise ConfigError(f"{source}, {at} (monitor {i + 1}): {exc}") from None
        lines = {d: f"{source}, {_nth_line(text, '[[monitors]]', i, d)}" for d in ("journey", "stage", "evaluator")}
        monitors.append(replace(monitor, line=where, key_lines=lines))
    names = [m.name for m in monitors]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"{source}, {toml.line(duplicate)}: two monitors are named {duplicate!r}")
    webhooks: list[Webhook] = []
    for i, raw in enumerate(doc.get("webhooks", [])):
        where = f"{source}, {_nth_line(text, '[[webhooks]]', i)}"
        try:
            webhook = _webhook(raw)
        except ValueError as exc:
            raise ConfigError(f"{where} (webhook {i + 1}): {exc}") from None
        missing = sorted((webhook.monitors or frozenset()) - set(names))
        if missing:
            raise ConfigError(f"{where} (webhook {i + 1}): no monitor named {missing[0]!r}")
        webhooks.append(webhook)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return MonitorSet(tuple(monitors), tuple(webhooks), str(doc.get("version") or digest), source, digest)


def load_monitors(path: str | Path | None) -> MonitorSet:
    """The monitors file at ``path``; without one the shipped default set."""
    if path is None:
        text = resources.files("journeyscope.warehouse.monitors").joinpath(DEFAULT_MONITORS).read_text("utf-8")
        return parse_monitors(text, "(default monitors)")
    target = Path(path)
    return parse_monitors(read_config_text(target, "monitors file"), str(target))


def check_scopes(monitors: MonitorSet, known: dict[str, set[str]], evaluators: set[str]) -> None:
    """Refuse a monitor that names a journey type, stage or evaluator the warehouse does not know.

    ``known`` maps each journey type to its stages (from the journey map and the data). With nothing
    known yet (a new warehouse) names cannot be checked and are accepted.
    """
    all_stages = set().union(*known.values()) if known else set()
    for m in monitors.monitors:
        journey, stage, evaluator = m.scope.get("journey"), m.scope.get("stage"), m.scope.get("evaluator")
        stage_names = [s for s in (stage, m.baseline_value if m.baseline == "stage" else None) if s and s != "*"]
        def at(key: str) -> str:
            return m.key_lines.get(key, m.line)

        if known and journey not in (None, "*") and journey not in known:
            raise ConfigError(f"{at('journey')}: monitor {m.name!r}: unknown journey {journey!r} "
                              f"(known: {', '.join(sorted(known))})")
        stages = known.get(journey, set()) if journey not in (None, "*") else all_stages
        for name in stage_names:
            if stages and name not in stages:
                of = f" of journey {journey!r}" if journey not in (None, "*") else ""
                raise ConfigError(f"{at('stage')}: monitor {m.name!r}: unknown stage {name!r}{of} "
                                  f"(known: {', '.join(sorted(stages))})")
        if evaluator not in (None, "*") and evaluator not in evaluators:
            raise ConfigError(f"{at('evaluator')}: monitor {m.name!r}: unknown evaluator {evaluator!r} "
                              f"(known: {', '.join(sorted(evaluators))})")

"""Routing policies: what they may say, and reading them from ``policies.toml``.

A policy file is declarative so CX operations can change routing without a
release, and reviewable because every rule names the signal, the threshold, the
minimum sample and the action::

    version = "2026-11-23"            # shown in every decision it produced

    [defaults]
    min_sample = 30                   # journeys behind a stage signal before it may fire
    hysteresis = 0.05                 # a fired threshold rule clears only past threshold ± this

    [[stage_rules]]                   # thresholds on per-stage (and per-cohort) signals
    name = "resolution-low"
    signal = "resolution_rate"        # see STAGE_SIGNALS
    below = 0.70                      # or: above = ...
    journey = "onboarding"            # optional filters
    stage = "app-install"
    cohort = "trial"
    action = "human_handoff"

    [[journey_rules]]                 # triggers on this one journey's own state
    name = "keeps-coming-back"
    signal = "reentries"              # see JOURNEY_SIGNALS
    at_least = 2
    action = "clarify"

    [[journey_rules]]
    name = "unhappy-customer"
    signal = "csat_min"               # what the customer reported (absent until they answer)
    at_most = 2                       # or: at_least = ...
    action = "human_handoff"

    [autonomy]                        # graduated autonomy: high-risk stages only recommend
    recommend_only = ["payment"]      # a human decides; routine stages: the orchestrator acts

Rules are checked in the order of :data:`ACTIONS` severity (``escalate`` before
``human_handoff`` before ``clarify``); the most severe fired rule wins and all
fired rules are reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from journeyscope.errors import ConfigError
from journeyscope.tomlconfig import parse_toml, read_config_text
from journeyscope.warehouse.decisions import ACTIONS, Action

#: Per-stage signals a stage rule may test (rates in [0, 1], means of scores in [0, 1]; what customers reported on
#: its own scale: mean CSAT 1-5, mean effort 1-7, NPS -100..100, with ``n`` counting answers).
STAGE_SIGNALS = frozenset(
    {
        "completion_rate",
        "reentry_rate",
        "resolution_rate",
        "resolution_mean",
        "quality_mean",
        "retention_mean",
        "retention_fail_rate",
        "eval_fail_rate",
        "feedback_response_rate",
        "csat_mean",
        "ces_mean",
        "nps",
    }
)

#: Signals of one journey a journey rule may test.
JOURNEY_SIGNALS = frozenset(
    {
        "reentries",  # re-entries so far (visits numbered 2+), all stages
        "stage_reentries",  # re-entries of the current stage
        "retention_failures",  # failed context-retention evaluations so far
        "resolution_failures",  # failed resolution evaluations so far
        "silence_seconds",  # since the journey's last activity
        "channel_switches",
        "visits",
        # what this customer reported (absent until they answer a survey): CSAT 1-5, effort 1-7
        "csat_last",  # their latest CSAT answer
        "csat_min",  # their lowest CSAT answer in the journey
        "ces_last",  # their latest effort answer (higher: more effort)
        "ces_max",
    }
)

_KNOWN_TOP = {"version", "defaults", "stage_rules", "journey_rules", "autonomy"}


@dataclass(frozen=True)
class StageRule:
    """Fire when a stage signal is below (or above) a threshold, given enough journeys."""

    name: str
    signal: str
    action: Action
    below: float | None = None
    above: float | None = None
    journey: str | None = None
    stage: str | None = None
    cohort: str | None = None
    min_sample: int = 30
    hysteresis: float = 0.05

    def applies_to(self, journey: str | None, stage: str | None) -> bool:
        """Whether the rule's journey and stage filters match (cohorts are matched by the caller)."""
        return (self.journey is None or self.journey == journey) and (self.stage is None or self.stage == stage)

    @property
    def threshold(self) -> float:
        return self.below if self.below is not None else self.above  # type: ignore[return-value]

    def describe(self) -> str:
        where = "/".join(x for x in (self.journey, self.stage, self.cohort) if x) or "any stage"
        op = "<" if self.below is not None else ">"
        return f"{self.signal} {op} {self.threshold:g} at {where}"


@dataclass(frozen=True)
class JourneyRule:
    """Fire when one journey's own signal reaches a value."""

    name: str
    signal: str
    at_least: float | None
    action: Action
    stage: str | None = None
    at_most: float | None = None  #: instead of ``at_least``: fire at or below (a low CSAT answer)

    def fires(self, value: float) -> bool:
        return value >= self.at_least if self.at_least is not None else value <= self.at_most  # type: ignore[operator]

    def describe(self) -> str:
        bound = f">= {self.at_least:g}" if self.at_least is not None else f"<= {self.at_most:g}"
        return f"{self.signal} {bound}" + (f" at {self.stage}" if self.stage else "")


@dataclass(frozen=True)
class PolicySet:
    """A validated policy file."""

    version: str
    stage_rules: tuple[StageRule, ...] = ()
    journey_rules: tuple[JourneyRule, ...] = ()
    recommend_only: frozenset[str] = field(default_factory=frozenset)
    source: str = "(built-in)"
    digest: str = ""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _action(value: Any) -> Action:
    if value not in ACTIONS or value == "continue":
        raise ValueError(f"action must be one of clarify, human_handoff, escalate; got {value!r}")
    return value  # type: ignore[no-any-return]


def _check_keys(table: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"unknown key(s) in {what}: {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _stage_rule(raw: Any, defaults: dict[str, Any], index: int) -> StageRule:
    if not isinstance(raw, dict):
        raise ValueError("a [[stage_rules]] entry must be a table")
    allowed = {"name", "signal", "below", "above", "journey", "stage", "cohort", "action", "min_sample", "hysteresis"}
    _check_keys(raw, allowed, "[[stage_rules]]")
    signal = raw.get("signal")
    if signal not in STAGE_SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(sorted(STAGE_SIGNALS))}; got {signal!r}")
    if ("below" in raw) == ("above" in raw):
        raise ValueError("give exactly one of 'below' or 'above'")
    below = _number(raw["below"], "below") if "below" in raw else None
    above = _number(raw["above"], "above") if "above" in raw else None
    min_sample = raw.get("min_sample", defaults.get("min_sample", 30))
    if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < 1:
        raise ValueError(f"min_sample must be a whole number >= 1, got {min_sample!r}")
    hysteresis = _number(raw.get("hysteresis", defaults.get("hysteresis", 0.05)), "hysteresis")
    if not 0 <= hysteresis < 1:
        raise ValueError(f"hysteresis must be in [0, 1), got {hysteresis}")
    for key in ("journey", "stage", "cohort", "name"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{key} must be a string")
    return StageRule(
        name=raw.get("name") or f"stage-rule-{index + 1}",
        signal=signal,
        action=_action(raw.get("action")),
        below=below,
        above=above,
        journey=raw.get("journey"),
        stage=raw.get("stage"),
        cohort=raw.get("cohort"),
        min_sample=min_sample,
        hysteresis=hysteresis,
    )


def _journey_rule(raw: Any, index: int) -> JourneyRule:
    if not isinstance(raw, dict):
        raise ValueError("a [[journey_rules]] entry must be a table")
    _check_keys(raw, {"name", "signal", "at_least", "at_most", "action", "stage"}, "[[journey_rules]]")
    signal = raw.get("signal")
    if signal not in JOURNEY_SIGNALS:
        raise ValueError(f"signal must be one of {', '.join(sorted(JOURNEY_SIGNALS))}; got {signal!r}")
    if ("at_least" in raw) == ("at_most" in raw):
        raise ValueError("a journey rule needs exactly one of 'at_least' and 'at_most'")
    if "stage" in raw and not isinstance(raw["stage"], str):
        raise ValueError("stage must be a string")
    return JourneyRule(
        name=raw.get("name") or f"journey-rule-{index + 1}",
        signal=signal,
        at_least=_number(raw["at_least"], "at_least") if "at_least" in raw else None,
        at_most=_number(raw["at_most"], "at_most") if "at_most" in raw else None,
        action=_action(raw.get("action")),
        stage=raw.get("stage"),
    )


def parse_policies(text: str, source: str = "policies.toml") -> PolicySet:
    """Validate policy text; any problem is a :class:`ConfigError` naming the file and line."""
    toml = parse_toml(text, source)
    doc = toml.document
    unknown = sorted(set(doc) - _KNOWN_TOP)
    if unknown:
        raise ConfigError(f"{toml.where(unknown[0])}: unknown section or key {unknown[0]!r}")
    defaults = doc.get("defaults", {})
    try:
        if not isinstance(defaults, dict):
            raise ValueError("[defaults] must be a table")
        _check_keys(defaults, {"min_sample", "hysteresis"}, "[defaults]")
    except ValueError as exc:
        raise ConfigError(f"{toml.where('defaults')}: {exc}") from None
    stage_rules = []
    for i, raw in enumerate(doc.get("stage_rules", [])):
        try:
            stage_rules.append(_stage_rule(raw, defaults, i))
        except ValueError as exc:
            raise ConfigError(f"{toml.where('[[stage_rules]]', i)} (stage rule {i + 1}): {exc}") from None
    journey_rules = []
    for i, raw in enumerate(doc.get("journey_rules", [])):
        try:
            journey_rules.append(_journey_rule(raw, i))
        except ValueError as exc:
            raise ConfigError(f"{toml.where('[[journey_rules]]', i)} (journey rule {i + 1}): {exc}") from None
    autonomy = doc.get("autonomy", {})
    recommend_only = autonomy.get("recommend_only", []) if isinstance(autonomy, dict) else None
    if not isinstance(recommend_only, list) or not all(isinstance(s, str) for s in recommend_only):
        raise ConfigError(f"{toml.where('recommend_only')}: autonomy.recommend_only must be a list of stages")
    names = [r.name for r in stage_rules] + [r.name for r in journey_rules]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(f"{toml.where(duplicate)}: two rules are named {duplicate!r}")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return PolicySet(
        version=str(doc.get("version") or digest),
        stage_rules=tuple(stage_rules),
        journey_rules=tuple(journey_rules),
        recommend_only=frozenset(recommend_only),
        source=source,
        digest=digest,
    )


#: Used when no policy file is configured: conservative journey-level triggers only.
DEFAULT_POLICIES = """
version = "builtin-1"

[[journey_rules]]
name = "repeated-reentry"
signal = "stage_reentries"
at_least = 2
action = "clarify"

[[journey_rules]]
name = "context-lost"
signal = "retention_failures"
at_least = 1
action = "clarify"

[[journey_rules]]
name = "long-silence"
signal = "silence_seconds"
at_least = 600
action = "human_handoff"

[[journey_rules]]
name = "unresolved-twice"
signal = "resolution_failures"
at_least = 2
action = "human_handoff"
"""


def load_policies(path: str | Path | None) -> PolicySet:
    """The policy file at ``path``; without one the built-in defaults (journey triggers only)."""
    if path is None:
        return parse_policies(DEFAULT_POLICIES, "(built-in policies)")
    target = Path(path)
    return parse_policies(read_config_text(target, "policy file"), str(target))

"""Deciding the next action for one journey: policies applied to signals, with hysteresis.

:func:`decide` is a pure function of the policy set, the journey's own signals,
the stage (and cohort) signals, and the hysteresis memory; the API gathers the
signals and logs the decision. Keeping it pure means a policy can be tested,
replayed and explained without a server.

Confidence: for a threshold rule, the probability that the true stage rate is
on the firing side of the threshold, from a normal approximation whose spread
is the signal's 95% interval (so 12 journeys at 60% against a 70% threshold are
not as convincing as 400); for a journey rule, which reads this journey's own
facts, 0.9; for ``continue``, one minus the strongest near-miss.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from journeyscope.server.routing.policy import JourneyRule, PolicySet, StageRule
from journeyscope.warehouse.decisions import ACTIONS, Action, Decision, Fired, Mode
from journeyscope.warehouse.stage_signals import StageSignal

__all__ = ["Decision", "Fired", "HysteresisMemory", "Signals", "StageSignal", "decide"]


@dataclass(frozen=True)
class Signals:
    """Everything a decision may look at, for one journey at one stage."""

    journey_id: str
    journey_name: str | None
    stage: str | None
    cohort: str | None
    journey: dict[str, float] = field(default_factory=dict)
    stage_signals: dict[str, StageSignal] = field(default_factory=dict)
    cohort_signals: dict[str, StageSignal] = field(default_factory=dict)


HysteresisMemory = dict[tuple[str, str | None, str | None, str | None], bool]


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _confidence(signal: StageSignal, threshold: float, below: bool) -> float:
    assert signal.value is not None
    if signal.low is None or signal.high is None or signal.high <= signal.low:
        # No interval: shrink towards 0.5 by sample size.
        return 0.5 + 0.45 * signal.n / (signal.n + 30)
    sd = (signal.high - signal.low) / (2 * 1.96)
    z = (threshold - signal.value) / sd if below else (signal.value - threshold) / sd
    return round(min(0.999, max(0.001, _phi(z))), 3)


def _stage_rule(rule: StageRule, signals: Signals, memory: HysteresisMemory) -> tuple[Fired | None, float]:
    """The rule's verdict, and how close it came (a confidence of firing) when it did not fire."""
    if rule.cohort is None:
        pool, cohort = signals.stage_signals, None
    elif rule.cohort == "*" or rule.cohort == signals.cohort:
        pool, cohort = signals.cohort_signals, signals.cohort
    else:
        return None, 0.0
    if not rule.applies_to(signals.journey_name, signals.stage):
        return None, 0.0
    signal = pool.get(rule.signal)
    if signal is None or signal.value is None or signal.n < rule.min_sample:
        return None, 0.0
    key = (rule.name, signals.journey_name, signals.stage, cohort)
    active = memory.get(key, False)
    below = rule.below is not None
    # Hysteresis: a rule that fired keeps firing until the signal is clearly back.
    limit = rule.threshold + (rule.hysteresis if active else 0.0) * (1 if below else -1)
    fires = signal.value < limit if below else signal.value > limit
    memory[key] = fires
    confidence = _confidence(signal, rule.threshold, below)
    if not fires:
        return None, confidence
    ci = f" [{signal.low:.2f}–{signal.high:.2f}]" if signal.low is not None and signal.high is not None else ""
    held = " (held by hysteresis)" if active and not (signal.value < rule.threshold if below else signal.value > rule.threshold) else ""
    where = "/".join(x for x in (signals.journey_name, signals.stage, cohort) if x)
    reason = (
        f"{rule.signal} {signal.value:.2f}{ci} over {signal.n} journeys "
        f"{'<' if below else '>'} {rule.threshold:g} at {where}{held}"
    )
    return Fired(rule.name, rule.action, reason, confidence, rule.signal, signal.value), confidence


def _journey_rule(rule: JourneyRule, signals: Signals) -> Fired | None:
    if rule.stage is not None and rule.stage != signals.stage:
        return None
    value = signals.journey.get(rule.signal)
    if value is None or not rule.fires(value):
        return None
    bound = f">= {rule.at_least:g}" if rule.at_least is not None else f"<= {rule.at_most:g}"
    reason = f"{rule.signal} = {value:g} ({bound}) for journey {signals.journey_id}"
    return Fired(rule.name, rule.action, reason, 0.9, rule.signal, value)


def decide(policies: PolicySet, signals: Signals, memory: HysteresisMemory | None = None) -> Decision:
    """The recommended next action for this journey under ``policies``."""
    memory = memory if memory is not None else {}
    fired: list[Fired] = []
    near_miss = 0.0
    for rule in policies.stage_rules:
        verdict, closeness = _stage_rule(rule, signals, memory)
        if verdict is not None:
            fired.append(verdict)
        else:
            near_miss = max(near_miss, closeness)
    for journey_rule in policies.journey_rules:
        verdict = _journey_rule(journey_rule, signals)
        if verdict is not None:
            fired.append(verdict)
    fired.sort(key=lambda f: (-ACTIONS.index(f.action), -f.confidence))
    action: Action
    if fired:
        top = fired[0]
        action, confidence, reason = top.action, top.confidence, top.reason
    else:
        action, confidence = "continue", round(1.0 - near_miss if near_miss else 0.9, 3)
        reason = "no policy rule fired"
    mode: Mode = "recommend" if signals.stage in policies.recommend_only and action != "continue" else "act"
    if mode == "recommend":
        reason += f"; {signals.stage} is a high-risk stage: recommend only, a human decides"
    return Decision(
        decision_id=uuid.uuid4().hex,
        journey_id=signals.journey_id,
        stage=signals.stage,
        action=action,
        mode=mode,
        confidence=confidence,
        reason=reason,
        fired=tuple(fired),
        policy_version=policies.version,
        signals={
            "journey": dict(signals.journey),
            "stage": {k: v.as_dict() for k, v in signals.stage_signals.items()},
            "cohort": {k: v.as_dict() for k, v in signals.cohort_signals.items()},
            "journey_name": signals.journey_name,
            "cohort_name": signals.cohort,
        },
    )

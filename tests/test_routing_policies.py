"""Routing policies: parsing with clear errors, thresholds with minimum samples and hysteresis, autonomy."""

from __future__ import annotations

import pytest

from journeyscope.errors import ConfigError
from journeyscope.server.routing import Signals, decide, load_policies, parse_policies
from journeyscope.server.routing.decide import StageSignal

POLICY = """
version = "test-1"

[defaults]
min_sample = 20
hysteresis = 0.05

[[stage_rules]]
name = "resolution-low"
signal = "resolution_rate"
below = 0.70
journey = "onboarding"
stage = "app-install"
action = "human_handoff"

[[stage_rules]]
name = "trial-completion"
signal = "completion_rate"
below = 0.80
cohort = "trial"
action = "clarify"

[[journey_rules]]
name = "loops"
signal = "stage_reentries"
at_least = 2
action = "escalate"

[autonomy]
recommend_only = ["payment"]
"""


def signals(rate: float, n: int = 100, stage: str = "app-install", **journey: float) -> Signals:
    half = 1.96 * (rate * (1 - rate) / n) ** 0.5
    return Signals(
        "j-1", "onboarding", stage, "trial", journey=journey,
        stage_signals={"resolution_rate": StageSignal(rate, n, rate - half, rate + half)},
        cohort_signals={"completion_rate": StageSignal(0.9, n, 0.85, 0.95)},
    )


def test_threshold_fires_with_reason_and_confidence():
    policies = parse_policies(POLICY)
    decision = decide(policies, signals(0.55))
    assert decision.action == "human_handoff" and decision.mode == "act"
    assert decision.policy_version == "test-1"
    assert "resolution_rate 0.55" in decision.reason and "< 0.7" in decision.reason
    assert decision.confidence > 0.95
    assert decide(policies, signals(0.69, n=30)).confidence < decide(policies, signals(0.55, n=400)).confidence


def test_minimum_sample_blocks_a_rule_on_few_journeys():
    decision = decide(parse_policies(POLICY), signals(0.2, n=5))
    assert decision.action == "continue"


def test_hysteresis_prevents_flapping_on_noise():
    policies = parse_policies(POLICY)
    memory: dict = {}
    sequence = [0.66, 0.72, 0.74, 0.76, 0.73]
    actions = [decide(policies, signals(v), memory).action for v in sequence]
    # fires at 0.66; stays on while below 0.70 + 0.05; clears at 0.76; stays off at 0.73 (above 0.70)
    assert actions == ["human_handoff", "human_handoff", "human_handoff", "continue", "continue"]


def test_journey_rule_and_severity_order():
    decision = decide(parse_policies(POLICY), signals(0.55, stage_reentries=2))
    assert decision.action == "escalate"
    assert [f.rule for f in decision.fired] == ["loops", "resolution-low"]


def test_high_risk_stage_only_recommends():
    decision = decide(parse_policies(POLICY), signals(0.9, stage="payment", stage_reentries=3))
    assert decision.action == "escalate" and decision.mode == "recommend"
    assert "human decides" in decision.reason


def test_cohort_rule_reads_cohort_signals_only_for_that_cohort():
    policies = parse_policies(POLICY)
    low = Signals("j", "onboarding", "payment", "trial", cohort_signals={"completion_rate": StageSignal(0.6, 50, 0.46, 0.72)})
    assert decide(policies, low).fired[0].rule == "trial-completion"
    other = Signals("j", "onboarding", "payment", "premium", cohort_signals={"completion_rate": StageSignal(0.6, 50, 0.46, 0.72)})
    assert decide(policies, other).action == "continue"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[stage_rules]]\nsignal = "vibes"\nbelow = 0.5\naction = "clarify"\n', r"line 1 \(stage rule 1\): signal must be one of"),
        ('[[stage_rules]]\nsignal = "completion_rate"\naction = "clarify"\n', "exactly one of 'below' or 'above'"),
        ('version = "x"\n\n[[journey_rules]]\nsignal = "visits"\nat_least = 3\naction = "teleport"\n', r"line 3 .*action must be one of"),
        ('[[stage_rules]]\nsignal = "completion_rate"\nbelow = "low"\naction = "clarify"\n', "below must be a number"),
        ("[[stage_rules]\n", "line 1: not valid TOML"),
        ('[autonomy]\nrecommend_only = "payment"\n', "line 2: autonomy.recommend_only must be a list"),
        ('colour = "red"\n', "line 1: unknown section or key 'colour'"),
        ('[[journey_rules]]\nname = "a"\nsignal = "visits"\nat_least = 1\naction = "clarify"\n'
         '[[journey_rules]]\nname = "a"\nsignal = "visits"\nat_least = 2\naction = "clarify"\n', "two rules are named 'a'"),
    ],
)
def test_invalid_policy_is_rejected_naming_the_line(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_policies(text)


def test_builtin_policies_load_and_missing_file_is_clear(tmp_path):
    assert load_policies(None).journey_rules
    with pytest.raises(ConfigError, match="cannot read policy file"):
        load_policies(tmp_path / "nope.toml")

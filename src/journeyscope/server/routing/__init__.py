"""Routing: declarative policies that turn journey and stage signals into a next action."""

from journeyscope.server.routing.decide import Decision, Signals, decide
from journeyscope.server.routing.policy import (
    ACTIONS,
    JourneyRule,
    PolicySet,
    StageRule,
    load_policies,
    parse_policies,
)

__all__ = [
    "ACTIONS",
    "Decision",
    "JourneyRule",
    "PolicySet",
    "Signals",
    "StageRule",
    "decide",
    "load_policies",
    "parse_policies",
]

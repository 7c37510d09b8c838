"""Evaluators: pure functions that score one stage visit with the journey's history as context.

Importing this package registers the built-in evaluators (resolution, retention, quality and the
friction signals) through the same ``register`` hook third-party evaluators use.
"""

from journeyscope.evaluators import friction, quality, resolution, retention
from journeyscope.evaluators.engine import Engine, evaluate_journey, evaluate_visit
from journeyscope.evaluators.result import EvalResult, EvaluatorSpec, register, registered
from journeyscope.evaluators.transcript import StageVisit, Turn, VisitContext

__all__ = [
    "Engine",
    "EvalResult",
    "EvaluatorSpec",
    "StageVisit",
    "Turn",
    "VisitContext",
    "evaluate_journey",
    "evaluate_visit",
    "register",
    "registered",
]

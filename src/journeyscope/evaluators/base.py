"""Helpers every local evaluator shares: the "nothing to judge" results and input guards.

Bad input is part of the contract: an empty visit, a visit with only agent turns, text in a language
the lexicons do not cover. Each gets a defined result with ``score=None`` and a label saying why,
never an exception and never a confident number from no evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from journeyscope.evaluators.result import EvalResult
from journeyscope.evaluators.text import VisitText
from journeyscope.evaluators.transcript import VisitContext

NO_EVIDENCE = "no_evidence"
UNSUPPORTED_LANGUAGE = "unsupported_language"


def no_evidence(name: str, version: str, reason: str, **evidence: Any) -> EvalResult:
    """A result for a visit with nothing this evaluator can judge."""
    return EvalResult(name, version, None, None, NO_EVIDENCE, reason, dict(evidence))


def guard(name: str, version: str, vt: VisitText, *, need_customer: bool = True,
          need_agent: bool = True) -> EvalResult | None:
    """The no-evidence result for an unusable visit, or ``None`` when the visit can be judged."""
    if not vt.lines:
        return no_evidence(name, version, "The visit has no customer or agent text to judge.")
    if need_customer and not vt.customer:
        return no_evidence(name, version, "The visit has only agent turns: no customer side to judge.",
                           agent_turns=len(vt.agent))
    if need_agent and not vt.agent:
        return no_evidence(name, version, "The visit has only customer turns: no agent reply to judge.",
                           customer_turns=len(vt.customer))
    if not vt.english:
        return EvalResult(name, version, None, None, UNSUPPORTED_LANGUAGE,
                          "The text does not look like English; the local engine's lexicons are English-only "
                          "(use the llm engine for other languages).", {})
    return None


def clamp(x: float) -> float:
    """``x`` limited to [0, 1] and rounded, so equal evidence gives byte-equal scores."""
    return round(min(1.0, max(0.0, x)), 4)


def memo_last(fn: Callable[[VisitContext], EvalResult]) -> Callable[[VisitContext], EvalResult]:
    """Remember ``fn``'s result for the last context object it saw.

    The quality evaluator reuses the resolution and retention verdicts on the same visit; the engine
    runs all evaluators on one context in a row, so a one-slot identity memo removes that double work
    without hashing whole transcripts. Contexts are immutable, so identity implies the same answer.
    """
    slot: list[tuple[VisitContext, EvalResult]] = []

    @wraps(fn)
    def wrapper(ctx: VisitContext) -> EvalResult:
        last = slot[0] if slot else None
        if last is not None and last[0] is ctx:
            return last[1]
        result = fn(ctx)
        slot[:] = [(ctx, result)]
        return result

    return wrapper

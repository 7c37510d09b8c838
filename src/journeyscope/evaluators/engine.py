"""One entry point for scoring a stage visit with either engine.

``evaluate_visit(ctx)`` runs every registered evaluator on the local engine; ``engine="llm"`` sends the
three conversation evaluators to an LLM judge (friction signals are measurements and stay local).
An evaluator that raises is caught and reported as a result with ``error`` set, so one bad
evaluator (a third-party plugin, say) never stops a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from journeyscope.evaluators.result import EvalResult, registered, run_local
from journeyscope.evaluators.transcript import VisitContext


__all__ = ["Engine", "evaluate_journey", "evaluate_visit", "run_local"]


@runtime_checkable
class Engine(Protocol):
    """Anything that can score a visit with named evaluators (the LLM engine is one)."""

    def evaluate(self, ctx: VisitContext, evaluators: Sequence[str]) -> list[EvalResult]:
        """One result per name, in order; never raises for a bad visit or a failed call."""
        ...


def evaluate_visit(ctx: VisitContext, engine: str | Engine = "local",
                   evaluators: Iterable[str] | None = None) -> list[EvalResult]:
    """Score one stage visit; ``evaluators`` defaults to every registered evaluator.

    ``engine`` is ``"local"`` (deterministic, no network), ``"llm"`` (an :class:`LLMEngine` configured
    from the ``JOURNEYSCOPE_LLM_*`` environment variables) or any :class:`Engine` instance, which is
    how a caller reuses one LLM engine, with its HTTP client and cache, across many visits.
    """
    names = list(evaluators) if evaluators is not None else sorted(registered())
    if isinstance(engine, str):
        if engine == "local":
            return run_local(ctx, names)
        if engine == "llm":
            from journeyscope.evaluators.llm import LLMEngine

            return LLMEngine().evaluate(ctx, names)
        raise ValueError(f"unknown engine {engine!r}: use 'local' or 'llm'")
    return engine.evaluate(ctx, names)


def evaluate_journey(visits: Sequence[VisitContext], engine: str | Engine = "local",
                     evaluators: Iterable[str] | None = None) -> list[list[EvalResult]]:
    """Score several visits (typically one journey's, oldest first) with the same engine."""
    names = list(evaluators) if evaluators is not None else None
    if engine == "llm":
        from journeyscope.evaluators.llm import LLMEngine

        engine = LLMEngine()
    return [evaluate_visit(c, engine, names) for c in visits]

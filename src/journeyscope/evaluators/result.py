"""The result every evaluator returns, and the registry that names evaluators.

A result always says why (``reason`` names the turn or fact that decided it).
When there is no evidence to score (an empty visit, only agent turns), the
result has ``score=None`` and a ``label`` saying so, rather than a confident
number from nothing. A failing engine (an LLM judge that timed out) gives a
result with ``error`` set, never a silent default score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from journeyscope.evaluators.transcript import VisitContext


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One evaluator's verdict on one stage visit."""

    evaluator: str
    version: str
    score: float | None
    passed: bool | None
    label: str | None
    reason: str
    #: Machine-readable evidence: turn indexes, the fact re-asked, latencies...
    evidence: dict[str, Any] = field(default_factory=dict)
    #: Set when the engine failed for this visit; score and passed are then None.
    error: str | None = None

    def __post_init__(self) -> None:
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise ValueError(f"{self.evaluator}: score {self.score} outside [0, 1]")


Evaluator = Callable[[VisitContext], EvalResult]


@dataclass(frozen=True, slots=True)
class EvaluatorSpec:
    """A registered evaluator: its stored name, version and scoring function."""

    name: str
    version: str
    fn: Evaluator
    description: str = ""


_REGISTRY: dict[str, EvaluatorSpec] = {}


def register(name: str, version: str, description: str = "") -> Callable[[Evaluator], Evaluator]:
    """Register an evaluator under ``name`` (decorator); built-ins use it like plugins do.

    Bumping ``version`` makes ``journeyscope evaluate`` re-score every visit.
    """

    def decorate(fn: Evaluator) -> Evaluator:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"evaluator {name!r} is already registered")
        _REGISTRY[name] = EvaluatorSpec(name, version, fn, description or (fn.__doc__ or "").strip())
        return fn

    return decorate


def registered() -> dict[str, EvaluatorSpec]:
    """All registered evaluators by name (a copy)."""
    return dict(_REGISTRY)


def run_local(ctx: VisitContext, names: Sequence[str]) -> list[EvalResult]:
    """Run the named registered evaluators locally; unknown names raise ``ValueError`` up front."""
    specs = registered()
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown evaluator(s): {', '.join(unknown)}; known: {', '.join(sorted(specs))}")
    out: list[EvalResult] = []
    for n in names:
        spec = specs[n]
        try:
            out.append(spec.fn(ctx))
        except Exception as exc:  # noqa: BLE001  an evaluator bug must not stop the batch; it is reported per visit
            out.append(EvalResult(n, spec.version, None, None, "error", f"evaluator raised {type(exc).__name__}",
                                  {}, error=f"{type(exc).__name__}: {exc}"))
    return out

"""Every read the eval API serves and the dashboard shows, declared once: :class:`Reads`.

Each method of :class:`Reads` is one question asked of a warehouse, with its
typed parameters, its docstring and its JSON-able answer, marked with :func:`read`
and the ``/v1`` path that serves it. From that one declaration

- the warehouse answers it (:class:`journeyscope.warehouse.reader.Reader`,
  checked against the declaration by :func:`implements`);
- the server registers its routes (:mod:`journeyscope.server.api`): query
  parameters from the signature, a 422 naming the parameter for a bad value,
  a 404 for an answer of ``None``;
- the client (:mod:`journeyscope.client`) gets one method per read, asking
  the server over HTTP;
- the dashboard asks either of them (a file, or a running server) the same
  questions, by the same names.

Parameters are plain values, :class:`~journeyscope.warehouse.filters.Filters`
(sent as ``journey``, ``cohort``, ``channel``, ``since``, ``until``; a
parameter named other than ``filters`` is prefixed with its name, as
``a_cohort``), ``Literal`` choices, and numbers bounded with
``annotated_types.Interval``. Bounds and choices are checked here too, so a
file read refuses what the API would refuse, naming the parameter.

This module is light on purpose (no DuckDB, no pyarrow): the client of an
orchestrator imports it, and the answers live in :mod:`~journeyscope.warehouse.reader`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from annotated_types import Interval

from journeyscope.errors import InvalidInputError
from journeyscope.warehouse.filters import Filters

__all__ = [
    "FILTER_FIELDS", "READS", "Param", "Read", "Reads", "filter_query", "implements", "read", "read_methods", "reading",
]

F = TypeVar("F", bound=Callable[..., Any])
#: The fields of :class:`Filters`, as the query parameters that carry them.
FILTER_FIELDS = ("journey", "cohort", "channel", "since", "until")
ALL = Filters()


@dataclass(frozen=True)
class Param:
    """One parameter of a read: its name, type (``Annotated`` metadata stripped), default and bounds."""

    name: str
    annotation: Any
    default: Any
    interval: Interval | None
    choices: tuple[Any, ...] | None
    in_path: bool

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    @property
    def is_filters(self) -> bool:
        return self.annotation is Filters

    @property
    def prefix(self) -> str:
        """Filters named other than ``filters`` travel as ``<name>_journey``, ``<name>_since``..."""
        return "" if self.name == "filters" else f"{self.name}_"

    def check(self, value: Any) -> None:
        """Refuse a value outside the declared bounds or choices (:class:`InvalidInputError` naming it)."""
        if value is None:
            return
        if self.choices is not None and value not in self.choices:
            raise InvalidInputError(f"{self.name}: {value!r} is not one of {', '.join(map(repr, self.choices))}")
        i = self.interval
        if i is not None and ((i.ge is not None and value < i.ge) or (i.le is not None and value > i.le)):
            raise InvalidInputError(f"{self.name}: {value!r} is outside {i.ge}..{i.le}")


@dataclass(frozen=True)
class Read:
    """One declared read: served at ``path`` (inside the answer's ``part``, when set) by ``function``."""

    name: str
    path: str
    part: str | None
    doc: str
    params: tuple[Param, ...]
    signature: inspect.Signature  #: without ``self``
    function: Callable[..., Any]

    def arguments(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Every parameter by name (defaults filled in) for a call, checked against the declaration."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for param in self.params:
            param.check(bound.arguments[param.name])
        return dict(bound.arguments)


def read(path: str, *, part: str | None = None) -> Callable[[F], F]:
    """Declare a :class:`Reads` method as a read served at ``path``.

    ``part``: the answer is served inside another read's answer under this key (``activity`` is the
    ``window`` of ``/v1/health``), so the API registers no route of its own for it.
    """

    def mark(method: F) -> F:
        @functools.wraps(method)
        def declared(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(f"{type(self).__name__} does not answer the read {method.__name__!r}")

        declared.__journeyscope_read__ = (path, part)  # type: ignore[attr-defined]
        return declared  # type: ignore[return-value]

    return mark


def _param(name: str, hint: Any, default: Any, path: str) -> Param:
    interval = None
    if typing.get_origin(hint) is Annotated:
        hint, *meta = typing.get_args(hint)
        interval = next((m for m in meta if isinstance(m, Interval)), None)
    choices = None
    options = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) else []
    literal = hint if typing.get_origin(hint) is Literal else next(
        (a for a in options if typing.get_origin(a) is Literal), None)
    if literal is not None:
        choices = typing.get_args(literal)
    return Param(name, hint, default, interval, choices, f"{{{name}}}" in path)


def _declared(cls: type) -> tuple[Read, ...]:
    found = []
    for name, method in vars(cls).items():
        mark = getattr(method, "__journeyscope_read__", None)
        if mark is None:
            continue
        path, part = mark
        method = inspect.unwrap(method)
        hints = typing.get_type_hints(method, include_extras=True)
        signature = inspect.signature(method)
        parameters = list(signature.parameters.values())[1:]  # without self
        params = tuple(_param(p.name, hints[p.name], p.default, path) for p in parameters)
        stripped = inspect.Signature(
            [p.replace(annotation=hints[p.name]) for p in parameters], return_annotation=hints.get("return")
        )
        found.append(Read(name, path, part, inspect.getdoc(method) or "", params, stripped, method))
    return tuple(found)


def filter_query(filters: Filters, prefix: str = "") -> dict[str, str]:
    """``filters`` as query parameters (unset ones left out): what the API parses back into the same filters."""
    values = filters.as_dict()
    return {prefix + k: v for k in FILTER_FIELDS if (v := values[k]) is not None}


Limit = Interval


class Reads:
    """The reads, declared: signatures, documentation, the path that serves each. Not callable itself:
    :class:`~journeyscope.warehouse.reader.Reader` answers them from a warehouse, the client over HTTP."""

    # -- stages and funnels -----------------------------------------------------------------------------
    @read("/v1/stages")
    def stages(self, filters: Filters = ALL) -> dict[str, Any]:
        """Per-stage signals (completion, re-entry, resolution, quality, retention, eval fail rate), each with n
        and CI."""

    @read("/v1/funnel")
    def funnel(self, filters: Filters = ALL, evaluators: bool = True) -> dict[str, Any]:
        """The docs/contracts.md funnel (stages in journey-map order, rates with 95% intervals);
        ``evaluators=False`` leaves out the per-stage evaluator summaries (most of a funnel's cost)."""

    @read("/v1/outcomes")
    def outcomes(
        self, filters: Filters = ALL, min_journeys: Annotated[int, Limit(ge=1, le=1_000_000_000)] = 1
    ) -> dict[str, Any]:
        """Journey completion overall, by cohort and by channel sequence (channel-mix lift)."""

    @read("/v1/flows/transitions")
    def transitions(self, filters: Filters = ALL) -> list[dict[str, Any]]:
        """Stage-to-stage counts, backtracks and exits."""

    @read("/v1/flows/retention")
    def retention(self, filters: Filters = ALL) -> list[dict[str, Any]]:
        """Context retention by stage pair (where hand-offs lose context)."""

    @read("/v1/compare")
    def compare(self, a: Filters = ALL, b: Filters = ALL) -> dict[str, Any]:
        """Two periods or cohorts side by side: per-stage differences (B − A) with 95% intervals."""

    # -- journeys -----------------------------------------------------------------------------------------
    @read("/v1/journeys")
    def journeys(
        self, q: str = "", filters: Filters = ALL, limit: Annotated[int, Limit(ge=1, le=500)] = 20
    ) -> list[dict[str, Any]]:
        """Journeys whose id or customer id contains ``q`` (exact id first, then most recently active)."""

    @read("/v1/journeys/{journey_id}")
    def journey(self, journey_id: str) -> dict[str, Any] | None:
        """The live state of one journey: where it is, its visits, latest scores and friction signals."""

    @read("/v1/journeys/{journey_id}/detail")
    def journey_detail(self, journey_id: str) -> dict[str, Any] | None:
        """Everything about one journey: visits, transcripts, evaluations with the turns they cite, decisions."""

    @read("/v1/decisions")
    def decisions(
        self, journey_id: str | None = None, limit: Annotated[int, Limit(ge=1, le=10_000)] = 100
    ) -> dict[str, Any]:
        """The decision log, newest first (decisions are ``journey.route`` spans in the warehouse)."""

    # -- evaluations --------------------------------------------------------------------------------------
    @read("/v1/evaluations/failing")
    def failing(
        self,
        filters: Filters = ALL,
        stage: str | None = None,
        evaluator: str | None = None,
        limit: Annotated[int, Limit(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        """Failed evaluations, worst first, with their reasons."""

    @read("/v1/evaluations/distribution")
    def distribution(
        self, filters: Filters = ALL, stage: str | None = None, evaluator: str | None = None
    ) -> dict[str, Any]:
        """Score histograms per evaluator (binned in SQL)."""

    @read("/v1/evaluators/feedback-agreement")
    def feedback_agreement(self, filters: Filters = ALL) -> dict[str, Any]:
        """Each evaluator's agreement with the customers' CSAT (AUROC low vs high CSAT, Spearman), overall and
        per stage."""

    # -- reviews and calibration ----------------------------------------------------------------------------
    @read("/v1/reviews/summary")
    def review_summary(self) -> dict[str, Any]:
        """Per evaluator with scores: its stages, results scored, and visits reviewed."""

    @read("/v1/reviews/queue")
    def review_queue(
        self,
        evaluator: str,
        stage: str | None = None,
        journey: str | None = None,
        limit: Annotated[int, Limit(ge=1, le=500)] = 20,
    ) -> list[dict[str, Any]]:
        """Unreviewed visits of ``evaluator`` whose review teaches most first (near the threshold, stratified)."""

    @read("/v1/evaluators/agreement")
    def agreement(
        self, evaluator: str | None = None, engine: Literal["local", "llm"] | None = None
    ) -> dict[str, Any]:
        """Each evaluator against the reviews: n, AUROC, kappa, precision, recall (95% intervals), thresholds."""

    @read("/v1/evaluators/thresholds")
    def thresholds(self, evaluator: str | None = None) -> dict[str, Any]:
        """Every threshold ever adopted, oldest first."""

    # -- monitors, health, compliance -----------------------------------------------------------------------
    @read("/v1/alerts")
    def alerts(
        self,
        status: Literal["firing", "resolved"] | None = None,
        journey: str | None = None,
        stage: str | None = None,
        limit: Annotated[int, Limit(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Monitors' alerts, newest first, with their evidence and failing visits; ``monitors`` says what runs
        (the server fills it in: a file does not know which monitors a server runs)."""

    @read("/v1/health")
    def health(self, filters: Filters = ALL) -> dict[str, Any]:
        """Data health (missing journey attributes, stages outside the map, ingest lag) and, under ``window``,
        what the filtered window holds."""

    @read("/v1/health", part="window")
    def activity(self, filters: Filters = ALL) -> dict[str, Any]:
        """Journeys, visits and spans in the filtered window, without the span scans of :meth:`health`."""

    @read("/v1/filters")
    def filter_values(self) -> dict[str, Any]:
        """The filter values (journey types, cohorts, channels, first and last visit) and headline counts: what a
        dashboard needs on every page, without the span scans of ``/v1/health``."""

    @read("/v1/compliance")
    def compliance(self) -> dict[str, Any]:
        """PII per stage and what was done to it, where it entered, consent coverage, the audit log (counts
        only)."""


#: Every read, in declaration order.
READS: tuple[Read, ...] = _declared(Reads)
_BY_NAME = {r.name: r for r in READS}


def read_methods(cls: type) -> type:
    """Class decorator: give ``cls`` one method per read, each calling ``self._answer(read, arguments)``
    with the arguments checked against the declaration.

    How a class answers is its own (open a file, ask a server); which questions there are, with which
    parameters, is the declaration's. The methods carry the declared signature and docstring (``help()``,
    editors and FastAPI see them).
    """
    for spec in READS:
        if spec.name in vars(cls):
            continue  # the class answers this one itself

        def method(self: Any, *args: Any, _spec: Read = spec, **kwargs: Any) -> Any:
            return self._answer(_spec, _spec.arguments(*args, **kwargs))

        functools.update_wrapper(method, spec.function)
        vars(method).pop("__wrapped__")  # the declared signature below, not the stub's
        method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
             *spec.signature.parameters.values()],
            return_annotation=spec.signature.return_annotation,
        )
        method.__qualname__ = f"{cls.__qualname__}.{spec.name}"
        method.__module__ = cls.__module__
        setattr(cls, spec.name, method)
    return cls


def implements(cls: type) -> type:
    """Class decorator for a class that answers every read with a method of its own (the warehouse's
    :class:`~journeyscope.warehouse.reader.Reader`).

    Each read must be defined on ``cls`` with the declared parameters, in order, with the declared
    defaults: a :class:`TypeError` at import names the first that is not, so an answer cannot drift from
    its declaration. Each method is then wrapped like :func:`read_methods`' (arguments checked, the
    declared signature and docstring).
    """
    answers: dict[str, Callable[..., Any]] = {}
    for spec in READS:
        method = vars(cls).get(spec.name)
        if method is None:
            raise TypeError(f"{cls.__qualname__} does not answer the read {spec.name!r}")
        given = [(p.name, p.kind, p.default) for p in list(inspect.signature(method).parameters.values())[1:]]
        if given != [(p.name, p.kind, p.default) for p in spec.signature.parameters.values()]:
            raise TypeError(f"{cls.__qualname__}.{spec.name}{inspect.signature(method)} does not match its "
                            f"declaration {spec.name}{spec.signature}")
        answers[spec.name] = method
        delattr(cls, spec.name)

    def _answer(self: Any, spec: Read, arguments: dict[str, Any]) -> Any:
        return answers[spec.name](self, **arguments)

    cls._answer = _answer  # type: ignore[attr-defined]
    return read_methods(cls)


def reading(name: str) -> Read:
    """The declared read called ``name`` (``KeyError`` when there is none)."""
    return _BY_NAME[name]

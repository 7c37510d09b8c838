"""Journey context: who the customer is, which journey and stage we are in.

The context is W3C baggage in the current OpenTelemetry ``Context``, so it
follows the code wherever OTel's context goes: nested calls, asyncio tasks (which
copy contextvars), threads (with the threading instrumentation that
:func:`journeyscope.instrument.setup` turns on) and other processes (baggage
headers, see :func:`continue_journey`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from opentelemetry import baggage, context, propagate

from journeyscope.errors import InvalidJourneyError
from journeyscope import conventions as cv

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class JourneyState:
    """The journey attributes in force, as stamped on spans (already normalised)."""

    journey_id: str
    customer_id: str
    name: str | None = None
    stage: str | None = None
    channel: str | None = None
    cohort: str | None = None
    consent: str | None = None

    def as_attributes(self) -> dict[str, str]:
        """The non-empty attributes, keyed by their convention names."""
        pairs = {
            cv.JOURNEY_ID: self.journey_id,
            cv.CUSTOMER_ID: self.customer_id,
            cv.JOURNEY_NAME: self.name,
            cv.JOURNEY_STAGE: self.stage,
            cv.JOURNEY_CHANNEL: self.channel,
            cv.JOURNEY_COHORT: self.cohort,
            cv.CUSTOMER_CONSENT: self.consent,
        }
        return {k: v for k, v in pairs.items() if v is not None}


def _normalise_consent(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        scopes = [s.strip() for s in value.split(",")]
    elif isinstance(value, (list, tuple, set, frozenset)):
        scopes = [str(s).strip() for s in value]
    else:
        raise InvalidJourneyError(f"customer.consent must be a string or a list of scopes, got {value!r}")
    return ",".join(sorted({s for s in scopes if s}))


def make_state(
    journey_id: object,
    customer_id: object,
    *,
    name: object = None,
    stage: object = None,
    channel: object = None,
    cohort: object = None,
    consent: object = None,
) -> JourneyState:
    """Validate and normalise journey attributes; raise :class:`InvalidJourneyError` if wrong."""
    return JourneyState(
        journey_id=cv.normalize_id(cv.JOURNEY_ID, journey_id),
        customer_id=cv.normalize_id(cv.CUSTOMER_ID, customer_id),
        name=None if name is None else cv.normalize_id(cv.JOURNEY_NAME, name),
        stage=None if stage is None else cv.normalize_stage(stage),
        channel=None if channel is None else cv.normalize_channel(channel),
        cohort=None if cohort is None else cv.normalize_id(cv.JOURNEY_COHORT, cohort),
        consent=_normalise_consent(consent),
    )


def _context_with(state: JourneyState, base: context.Context | None = None) -> context.Context:
    ctx = base if base is not None else context.get_current()
    for key in cv.JOURNEY_KEYS:
        ctx = baggage.remove_baggage(key, ctx)
    for key, value in state.as_attributes().items():
        ctx = baggage.set_baggage(key, value, ctx)
    return ctx


def current_journey() -> JourneyState | None:
    """The journey in force in the current context, or ``None`` outside any journey."""
    entries = baggage.get_all()
    journey_id = entries.get(cv.JOURNEY_ID)
    customer_id = entries.get(cv.CUSTOMER_ID)
    if not journey_id or not customer_id:
        return None
    return JourneyState(
        journey_id=str(journey_id),
        customer_id=str(customer_id),
        name=_opt(entries.get(cv.JOURNEY_NAME)),
        stage=_opt(entries.get(cv.JOURNEY_STAGE)),
        channel=_opt(entries.get(cv.JOURNEY_CHANNEL)),
        cohort=_opt(entries.get(cv.JOURNEY_COHORT)),
        consent=_opt(entries.get(cv.CUSTOMER_CONSENT)),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


class Journey:
    """A journey context: ``with``, ``async with``, or a decorator (sync and async).

    Every span started inside carries the journey attributes. :meth:`advance`
    moves to the next stage (or channel) for the rest of the block; leaving the
    block restores whatever context was in force before.

    >>> with journey("j-1", customer_id="c-9", name="onboarding", stage="sign-up", channel="web") as j:
    ...     ...            # spans here: journey.stage = sign-up
    ...     j.advance("payment")
    ...     ...            # spans here: journey.stage = payment
    """

    def __init__(self, state: JourneyState) -> None:
        self._initial = state
        self.state = state
        self._tokens: list[object] = []

    # -- stage and channel changes -------------------------------------------------
    def advance(self, stage: object, *, channel: object = None) -> JourneyState:
        """Move to ``stage`` (and optionally a new channel) for the rest of this context."""
        if not self._tokens:
            raise InvalidJourneyError("advance() needs an entered journey context (use 'with journey(...)')")
        changes: dict[str, Any] = {"stage": cv.normalize_stage(stage)}
        if channel is not None:
            changes["channel"] = cv.normalize_channel(channel)
        self.state = replace(self.state, **changes)
        self._tokens.append(context.attach(_context_with(self.state)))
        return self.state

    def switch_channel(self, channel: object) -> JourneyState:
        """Continue the same stage on another channel (a channel switch is friction worth seeing)."""
        if not self._tokens:
            raise InvalidJourneyError("switch_channel() needs an entered journey context")
        self.state = replace(self.state, channel=cv.normalize_channel(channel))
        self._tokens.append(context.attach(_context_with(self.state)))
        return self.state

    # -- context manager protocol --------------------------------------------------
    def __enter__(self) -> Journey:
        self.state = self._initial
        self._tokens.append(context.attach(_context_with(self.state)))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._tokens:
            context.detach(self._tokens.pop())  # type: ignore[arg-type]

    async def __aenter__(self) -> Journey:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    # -- decorator -----------------------------------------------------------------
    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with Journey(self._initial):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Journey(self._initial):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def journey(
    journey_id: object,
    customer_id: object,
    *,
    name: object = None,
    stage: object = None,
    channel: object = None,
    cohort: object = None,
    consent: object = None,
) -> Journey:
    """Open a journey context. Ids must be non-empty strings; the channel must be known.

    Raises :class:`~journeyscope.errors.InvalidJourneyError` on a value that
    would produce a wrong tag (empty id, non-string stage, unknown channel).
    """
    return Journey(
        make_state(
            journey_id,
            customer_id,
            name=name,
            stage=stage,
            channel=channel,
            cohort=cohort,
            consent=consent,
        )
    )


def stage(name: object, *, channel: object = None) -> Callable[[F], F]:
    """Decorate a function (sync or async) so its spans carry ``journey.stage = name``.

    It needs a journey already in force (raises otherwise): the stage of a
    journey with no journey id would be a tag nobody can join on.
    """
    stage_name = cv.normalize_stage(name)
    channel_name = None if channel is None else cv.normalize_channel(channel)

    def decorate(fn: F) -> F:
        def enter() -> Journey:
            state = current_journey()
            if state is None:
                raise InvalidJourneyError(f"@stage({stage_name!r}) called outside a journey context")
            changes: dict[str, Any] = {"stage": stage_name}
            if channel_name is not None:
                changes["channel"] = channel_name
            return Journey(replace(state, **changes))

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with enter():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with enter():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Headers (``traceparent``, ``baggage``) that carry the trace and journey to another service."""
    carrier: dict[str, str] = {} if headers is None else headers
    propagate.inject(carrier)
    return carrier


@contextmanager
def continue_journey(headers: Mapping[str, str]) -> Iterator[JourneyState | None]:
    """In a downstream service: adopt the trace and journey from incoming request headers.

    Only needed where no server instrumentation (FastAPI, Flask...) already
    extracts the context; the journey keys then come from the ``baggage`` header.
    """
    # HTTP header names are case-insensitive, but OTel's default getter is not
    # (urllib sends "Baggage", the propagators look up "baggage").
    carrier = {key.lower(): value for key, value in headers.items()}
    token = context.attach(propagate.extract(carrier))
    try:
        yield current_journey()
    finally:
        context.detach(token)

"""The eval API (``/v1``): stage signals, funnels, journey state and routing for orchestrators.

Handlers only translate HTTP to library calls: the SQL is in
:mod:`journeyscope.warehouse`, the decision logic in
:mod:`journeyscope.server.routing`. Every read is a route registered from its
declaration (:class:`journeyscope.warehouse.reads.Reads`): path, query
parameters, checks and answer are the declaration's; this module adds only the
access check and, for the reads an orchestrator asks on every turn, answers
held in memory. Stage signals come from the
:class:`~journeyscope.server.signals.SignalCache` (precomputed, refreshed when
data changes), so the hot routes never run a funnel per request.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from journeyscope.errors import InvalidInputError
from journeyscope.server.access import Caller, caller_for
from journeyscope.server.paths import PathId
from journeyscope.server.routing import Signals, decide
from journeyscope.warehouse.decisions import Decision
from journeyscope.warehouse.erasure import erase_customer
from journeyscope.warehouse.filters import EARLIEST, LATEST, MAX_WINDOW, Filters, window_start
from journeyscope.warehouse.funnel import FunnelReport
from journeyscope.warehouse.reader import Reader
from journeyscope.warehouse.reads import READS, Param, Read
from journeyscope.warehouse.review_scoring import llm_configured, score_reviewed
from journeyscope.warehouse.reviews import add_reviews
from journeyscope.warehouse.stage_signals import stages_body
from journeyscope.warehouse.thresholds import ENGINES, adopt

__all__ = ["RouteRequest", "held_route", "held_stages", "log_decision", "router"]

router = APIRouter(prefix="/v1", tags=["eval API"])

Reading = Annotated[Caller, Depends(caller_for("read"))]
T = TypeVar("T")
_RANGE = f"from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"


async def _filters(  # async: parsing query parameters is no reason for a thread hop
    journey: str | None = Query(None, description="Journey type, e.g. onboarding"),
    cohort: str | None = Query(None),
    channel: str | None = Query(None),
    since: datetime | None = Query(None, description=f"Visits that started at or after (ISO 8601, UTC; {_RANGE})"),
    until: datetime | None = Query(None, description=f"Visits that started before (ISO 8601, UTC; {_RANGE})"),
    window: str | None = Query(
        None, description=f"Instead of since: the last 15m, 1h, 24h, 7d... (at most {MAX_WINDOW.days}d)"
    ),
) -> Filters:
    if window is not None:
        if since is not None:
            raise HTTPException(422, "window: give either since or window, not both")
        since = _valid(window_start, window, datetime.now(timezone.utc))
    return _valid(Filters, journey=journey, cohort=cohort, channel=channel, since=since, until=until)


def _prefixed_filters(prefix: str) -> Callable[..., Awaitable[Filters]]:
    """The filters of a read taking two (``compare``'s ``a`` and ``b``): ``a_cohort``, ``a_since``...;
    an unprefixed ``journey`` applies to both."""

    async def parse(**given: Any) -> Filters:
        journey = given.pop(f"{prefix}journey") or given.pop("journey")
        values = {k.removeprefix(prefix): v for k, v in given.items() if k.startswith(prefix)}
        return _valid(Filters, journey=journey, **values, prefix=prefix)

    text, when = str | None, datetime | None
    kinds = {"journey": text, "cohort": text, "channel": text, "since": when, "until": when}
    parse.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        *(inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
          for name, kind in kinds.items()),
        inspect.Parameter("journey", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=text),
    ])
    return parse


def _valid(make: Callable[..., T], *args: Any, prefix: str = "", **kwargs: Any) -> T:
    """``make(...)``, its :class:`InvalidInputError` (which names the parameter) turned into a 422."""
    try:
        return make(*args, **kwargs)
    except InvalidInputError as exc:
        raise HTTPException(422, f"{prefix}{exc}") from None


# -- reads, registered from their declarations ------------------------------------------------------------
#: Reads the server answers otherwise than by asking the warehouse: from memory, or with what only it knows.
#: Each takes the caller and the read's arguments, and answers the read's JSON.
_ANSWERS: dict[str, Callable[..., Any]] = {}


def _answers(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def register(answer: Callable[..., T]) -> Callable[..., T]:
        assert any(r.name == name for r in READS), name
        _ANSWERS[name] = answer
        return answer

    return register


def _parameter(param: Param) -> inspect.Parameter:
    """The FastAPI parameter of one declared read parameter."""
    kind = inspect.Parameter.KEYWORD_ONLY
    if param.is_filters:
        parse = _prefixed_filters(param.prefix) if param.prefix else _filters
        return inspect.Parameter(param.name, kind, annotation=Annotated[Filters, Depends(parse)])
    if param.in_path:
        return inspect.Parameter(param.name, kind, annotation=PathId)
    interval: Any = param.interval
    query = Query(ge=interval.ge, le=interval.le) if interval is not None else Query()
    return inspect.Parameter(param.name, kind, annotation=Annotated[param.annotation, query],
                             default=param.default)


def _endpoint(spec: Read) -> Callable[..., Any]:
    """The route of ``spec``: the caller's access checked, the read answered, ``None`` turned into a 404."""
    answer = _ANSWERS.get(spec.name)
    key = next((p.name for p in spec.params if p.in_path), None)

    def missing(caller: Caller, arguments: dict[str, Any]) -> HTTPException:
        thing = key.removesuffix("_id") if key else spec.name
        return HTTPException(404, f"no {thing} {arguments.get(key or '')!r} in project {caller.project.name!r}")

    if answer is not None and inspect.iscoroutinefunction(answer):
        async def endpoint(caller: Caller, **arguments: Any) -> Any:
            found = await answer(caller, **arguments)
            if found is None:
                raise missing(caller, arguments)
            return found
    else:
        def endpoint(caller: Caller, **arguments: Any) -> Any:  # type: ignore[misc]
            found = (answer(caller, **arguments) if answer is not None
                     else getattr(Reader(caller.project.warehouse), spec.name)(**arguments))
            if found is None:
                raise missing(caller, arguments)
            return found

    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("caller", inspect.Parameter.KEYWORD_ONLY, annotation=Reading),
        *(_parameter(p) for p in spec.params),
    ])
    endpoint.__name__ = spec.name
    endpoint.__doc__ = spec.doc
    return endpoint


def _stages_json(report: FunnelReport) -> str:
    """The report's part of the ``/v1/stages`` body as JSON text, encoded once per refresh."""
    return json.dumps(stages_body(report), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@_answers("stages")
async def _stages(caller: Caller, filters: Filters) -> Response:
    """Answered from the precomputed report on the event loop; only a filter asked for the first time is
    computed, in a worker thread."""
    body = held_stages(caller, filters)
    if body is None:
        await asyncio.to_thread(caller.project.signals.report, filters)
        body = held_stages(caller, filters)
        assert body is not None
    return Response(body, media_type="application/json")


def held_stages(caller: Caller, filters: Filters) -> bytes | None:
    """The ``/v1/stages`` body from the held report (``None`` when this filter's report is not held yet)."""
    held = caller.project.signals.view(filters, "stages", _stages_json)
    if held is None:
        return None
    body, age = held
    head = json.dumps({"as_of_age_s": round(age, 3), "filters": filters.as_dict()}, separators=(",", ":"))
    return f"{head[:-1]},{body[1:]}".encode()


@_answers("funnel")
def _funnel(caller: Caller, filters: Filters, evaluators: bool) -> dict[str, Any]:
    """The held report (with its age). Without evaluator summaries: the held report without them when this
    filter's is held (as cheap), else read without them (cheaper than computing a report to hold)."""
    held = caller.project.signals.report(filters) if evaluators else caller.project.signals.cached(filters)
    if held is None:
        return Reader(caller.project.warehouse).funnel(filters, evaluators=False)
    report, age = held
    body = report.as_dict()
    if not evaluators:
        for journey in body["journeys"]:
            for stage in journey["stages"]:
                stage["evaluators"] = []
    return {**body, "as_of_age_s": round(age, 3)}


@_answers("journey")
async def _journey(caller: Caller, journey_id: str) -> JSONResponse | None:
    """The held state; a journey not held is read in a worker thread (and held from then on)."""
    states = caller.project.states
    state = states.held_state(journey_id)
    if state is None:
        state = await asyncio.to_thread(states.state, journey_id)
    return None if state is None else JSONResponse(state)


@_answers("alerts")
def _alerts(caller: Caller, **arguments: Any) -> dict[str, Any]:
    """The stored alerts, and the monitors this server runs."""
    monitors = caller.project.monitors
    found = Reader(caller.project.warehouse).alerts(**arguments)
    return {**found, "monitors": monitors.describe() if monitors is not None else None}


for _spec in READS:
    if _spec.part is None:  # a part is served inside its whole
        router.add_api_route(_spec.path.removeprefix("/v1"), _endpoint(_spec), methods=["GET"], name=_spec.name,
                             description=_spec.doc)


# -- routing ----------------------------------------------------------------------------------------------
class RouteRequest(BaseModel):
    """What an orchestrator asks: where should this journey go next?"""

    journey_id: str = Field(min_length=1, max_length=256)
    stage: str | None = Field(None, min_length=1, max_length=256, description="Defaults to the journey's current stage")
    requested_by: str | None = Field(None, max_length=256, description="The orchestrator asking (for the log)")


def _decide(
    project: Any, body: RouteRequest, now_ns: int, *, read: bool
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(journey state, decision) for ``body``; with ``read=False`` only from memory (``None`` when
    something is not held)."""
    states, cache = project.states, project.signals
    state = states.state(body.journey_id, now_ns) if read else states.held_state(body.journey_id, now_ns)
    if state is None:
        if read:
            raise HTTPException(404, f"no journey {body.journey_id!r} in project {project.name!r}")
        return None
    stage = body.stage or state["current_stage"]
    journey_name, cohort = state["journey"], state["cohort"]
    stage_signals = cache.stage_signals(Filters(journey=journey_name), journey_name, stage, compute=read)
    cohort_signals = (
        cache.stage_signals(Filters(journey=journey_name, cohort=cohort), journey_name, stage, compute=read)
        if cohort else {}
    )
    if stage_signals is None or cohort_signals is None:
        return None
    signals = Signals(
        journey_id=body.journey_id,
        journey_name=journey_name,
        stage=stage,
        cohort=cohort,
        journey=state["signals"],
        stage_signals=stage_signals,
        cohort_signals=cohort_signals,
    )
    store = project.policies
    return state, decide(store.active, signals, store.memory).as_dict()


@router.post("/route", response_model=Decision)
async def route(caller: Reading, body: RouteRequest) -> JSONResponse:
    """The recommended next action from the policies in force; every decision is logged as a span.

    Journey state and stage signals come from memory (refreshed as the writer
    reports changes), so a route costs no query; a journey or filter asked for
    the first time is read in a worker thread.
    """
    decision = held_route(caller, body)
    if decision is None:
        now_ns = time.time_ns()
        found = await asyncio.to_thread(_decide, caller.project, body, now_ns, read=True)
        assert found is not None  # reading, _decide answers or raises 404
        decision = log_decision(caller, body, found, now_ns)
    return JSONResponse(decision)


def held_route(caller: Caller, body: RouteRequest) -> dict[str, Any] | None:
    """The logged decision for ``body`` from memory alone (``None`` when the journey or a signal is not held)."""
    now_ns = time.time_ns()
    found = _decide(caller.project, body, now_ns, read=False)
    return None if found is None else log_decision(caller, body, found, now_ns)


def log_decision(
    caller: Caller, body: RouteRequest, found: tuple[dict[str, Any], dict[str, Any]], now_ns: int
) -> dict[str, Any]:
    """Name who asked, hand the decision to the log, and return it as answered."""
    state, decision = found
    decision["requested_by"] = body.requested_by or caller.name
    decision["logged"] = caller.project.decisions.log(decision, state, now_ns)
    return decision


@router.get("/policies")
def policies(caller: Reading) -> dict[str, Any]:
    """The routing policies in force, and the last reload error if a file was rejected."""
    return caller.project.policies.describe()


@router.post("/policies/reload")
def reload_policies(caller: Annotated[Caller, Depends(caller_for("admin"))]) -> dict[str, Any]:
    """Re-read the policy file now (it is also re-read on change within a second)."""
    changed = caller.project.policies.reload()
    result = caller.project.policies.describe()
    if result["last_error"]:
        raise HTTPException(422, result["last_error"])
    return {"changed": changed, **result}


@router.post("/customers/{customer_id}/forget")
def forget(
    caller: Annotated[Caller, Depends(caller_for("admin"))], customer_id: PathId, reference: str | None = None
) -> dict[str, Any]:
    """Erase a customer's spans, visits, evaluations, decisions and redaction log now (audited).

    The rows are gone at once; the freed bytes leave the file when it is rewritten, which needs the
    file to itself: stop the server and run ``journeyscope forget --customer ID`` (it verifies the bytes).
    """
    result = erase_customer(caller.project.warehouse, customer_id, actor=f"api-key:{caller.name}", reference=reference)
    caller.project.caught_up()  # nothing the server holds in memory of the erased journeys answers from here on
    if not result.journeys and not sum(result.rows.values()):
        raise HTTPException(404, f"no data for customer {customer_id!r} in project {caller.project.name!r}")
    return {
        "customer_id": customer_id,
        "journeys": result.journeys,
        "rows": result.rows,
        "audit_id": result.audit_id,
        "bytes_compacted": False,
        "note": "rows deleted; run 'journeyscope forget --customer ID' with the server stopped to rewrite the file",
    }


# -- reviews and calibration --------------------------------------------------------------------------
@router.post("/reviews")
def post_reviews(caller: Annotated[Caller, Depends(caller_for("write"))], body: Any = Body(...)) -> JSONResponse:
    """One review or a list: ``{"journey_id", "stage", "visit", "evaluator", "passed", "reviewer"?, "note"?}``.

    The good ones are stored (reviewer defaults to the API key's name); each bad one is listed with its
    index (from 1) and why. 200 when any was stored, 422 when none could be.
    """
    records = body if isinstance(body, list) else [body]
    result = add_reviews(caller.project.warehouse, enumerate(records, 1), reviewer=caller.name, source="api")
    status = 200 if result.accepted else 422
    return JSONResponse(result.as_dict(), status_code=status)


@router.post("/evaluators/agreement/score")
def score_reviewed_visits(caller: Annotated[Caller, Depends(caller_for("write"))]) -> dict[str, Any]:
    """Score the reviewed visits with each engine that has not scored them (local; llm when the server has
    ``JOURNEYSCOPE_LLM_*`` set), so agreement shows the engines side by side on the same reviews."""
    engines = ("local", "llm") if llm_configured() else ("local",)
    done = [score_reviewed(caller.project.warehouse, name) for name in engines]
    return {"engines": [{"engine": d.engine, "scored": d.scored, "up_to_date": d.up_to_date,
                         "no_consent": d.no_consent, "errors": d.errors, "llm_calls": d.llm_calls} for d in done]}


class AdoptRequest(BaseModel):
    """A threshold to adopt: a new version, recorded with who, when and why."""

    evaluator: str = Field(min_length=1, max_length=256)
    threshold: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=2000)
    engine: Literal[ENGINES] = "local"  # type: ignore[valid-type]
    journey: str | None = Field(None, min_length=1, max_length=256)
    stage: str | None = Field(None, min_length=1, max_length=256)


@router.post("/evaluators/thresholds")
def adopt_threshold(caller: Annotated[Caller, Depends(caller_for("admin"))], body: AdoptRequest) -> dict[str, Any]:
    """Adopt a threshold (admin scope): stored results it covers are decided again; audited."""
    adopted, decided = adopt(caller.project.warehouse, body.evaluator, body.threshold, reason=body.reason,
                             engine=body.engine, journey=body.journey, stage=body.stage,
                             actor=f"api-key:{caller.name}")
    caller.project.caught_up()  # held signals count ``passed``: the derive loop reads them again
    return {**adopted.as_dict(), "decided": decided}

"""The eval API (``/v1``): stage signals, funnels, journey state and routing for orchestrators.

Handlers only translate HTTP to library calls: the SQL is in
:mod:`journeyscope.warehouse`, the decision logic in
:mod:`journeyscope.server.routing`. Stage signals come from the
:class:`~journeyscope.server.signals.SignalCache` (precomputed, refreshed when
data changes), so the hot routes never run a funnel per request.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from journeyscope.errors import InvalidInputError
from journeyscope.server.access import Caller, caller_for
from journeyscope.server.paths import PathId
from journeyscope.server.routing import Signals, decide
from journeyscope.warehouse.agreement import agreement_report
from journeyscope.warehouse.compare import compare
from journeyscope.warehouse.compliance import compliance_view
from journeyscope.warehouse.decisions import decisions as logged_decisions
from journeyscope.warehouse.erasure import erase_customer
from journeyscope.warehouse.filters import EARLIEST, LATEST, MAX_WINDOW, Filters, window_start
from journeyscope.warehouse.flows import journey_outcomes, retention_between_stages, transitions
from journeyscope.warehouse.evaluation_reads import failing_visits, score_distribution
from journeyscope.warehouse.feedback_agreement import feedback_agreement
from journeyscope.warehouse.health import activity, filter_values, health
from journeyscope.warehouse.journey_detail import journey_detail, search_journeys
from journeyscope.server.signals import stage_signal_set
from journeyscope.warehouse.funnel import FunnelReport
from journeyscope.warehouse.monitors.alerts import alerts as stored_alerts
from journeyscope.warehouse.review_scoring import llm_configured, score_reviewed
from journeyscope.warehouse.reviews import add_reviews, review_queue, review_summary
from journeyscope.warehouse.thresholds import ENGINES, adopt, history

router = APIRouter(prefix="/v1", tags=["eval API"])

Reader = Annotated[Caller, Depends(caller_for("read"))]
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


def _valid(make: Callable[..., T], *args: Any, prefix: str = "", **kwargs: Any) -> T:
    """``make(...)``, its :class:`InvalidInputError` (which names the parameter) turned into a 422."""
    try:
        return make(*args, **kwargs)
    except InvalidInputError as exc:
        raise HTTPException(422, f"{prefix}{exc}") from None


FilterArgs = Annotated[Filters, Depends(_filters)]


def _stages_body(report: FunnelReport) -> dict[str, Any]:
    return {
        "note": report.note,
        "journeys": [
            {
                "journey": jf.journey,
                "total": jf.total,
                "stages": [
                    {
                        "stage": s.stage,
                        "entered": s.entered,
                        "visits": s.visits,
                        "signals": {k: v.as_dict() for k, v in stage_signal_set(s).items()},
                    }
                    for s in jf.stages
                ],
            }
            for jf in report.journeys
        ],
    }


def _stages_json(report: FunnelReport) -> str:
    """The report's part of the ``/v1/stages`` body as JSON text, encoded once per refresh."""
    return json.dumps(_stages_body(report), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@router.get("/stages", response_class=JSONResponse)
async def stages(caller: Reader, filters: FilterArgs) -> Response:
    """Per-stage signals (completion, re-entry, resolution, quality, retention, eval fail rate), each with n and CI.

    Answered from the precomputed report on the event loop; only a filter asked
    for the first time is computed, in a worker thread.
    """
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


@router.get("/funnel")
def funnel_route(caller: Reader, filters: FilterArgs) -> dict[str, Any]:
    """The docs/contracts.md funnel (stages in journey-map order, rates with 95% intervals)."""
    report, age = caller.project.signals.report(filters)
    return {**report.as_dict(), "as_of_age_s": round(age, 3)}


@router.get("/journeys")
def journeys(
    caller: Reader, filters: FilterArgs, q: str = "", limit: int = Query(20, ge=1, le=500)
) -> list[dict[str, Any]]:
    """Journeys whose id or customer id contains ``q`` (exact id first, then most recently active)."""
    return search_journeys(caller.project.warehouse, q, filters, limit)


@router.get("/journeys/{journey_id}/detail")
def journey_full(caller: Reader, journey_id: PathId) -> dict[str, Any]:
    """Everything about one journey: visits, transcripts, evaluations with the turns they cite, decisions."""
    detail = journey_detail(caller.project.warehouse, journey_id)
    if detail is None:
        raise HTTPException(404, f"no journey {journey_id!r} in project {caller.project.name!r}")
    return detail


@router.get("/journeys/{journey_id}")
async def journey(caller: Reader, journey_id: PathId) -> JSONResponse:
    """The live state of one journey: where it is, its visits, latest scores and friction signals."""
    states = caller.project.states
    state = states.held_state(journey_id)
    if state is None:
        state = await asyncio.to_thread(states.state, journey_id)
    if state is None:
        raise HTTPException(404, f"no journey {journey_id!r} in project {caller.project.name!r}")
    return JSONResponse(state)


class RouteRequest(BaseModel):
    """What an orchestrator asks: where should this journey go next?"""

    journey_id: str = Field(min_length=1, max_length=256)
    stage: str | None = Field(None, min_length=1, max_length=256, description="Defaults to the journey's current stage")
    requested_by: str | None = Field(None, max_length=256, description="The orchestrator asking (for the log)")


class RouteResponse(BaseModel):
    decision_id: str
    journey_id: str
    stage: str | None
    action: Literal["continue", "clarify", "human_handoff", "escalate"]
    mode: Literal["act", "recommend"]
    confidence: float
    reason: str
    fired: list[dict[str, Any]]
    policy_version: str
    signals: dict[str, Any]
    logged: bool


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


@router.post("/route", response_model=RouteResponse)
async def route(caller: Reader, body: RouteRequest) -> JSONResponse:
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


@router.get("/decisions")
def decisions(
    caller: Reader,
    journey_id: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> dict[str, Any]:
    """The decision log, newest first (decisions are ``journey.route`` spans in the warehouse)."""
    return {"decisions": logged_decisions(caller.project.warehouse, journey_id, limit)}


@router.get("/policies")
def policies(caller: Reader) -> dict[str, Any]:
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


@router.get("/alerts")
def alerts_route(
    caller: Reader,
    status: Literal["firing", "resolved"] | None = None,
    journey: str | None = None,
    stage: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Monitors' alerts, newest first, with their evidence and failing visits; ``monitors`` says what runs."""
    monitors = caller.project.monitors
    return {
        "alerts": stored_alerts(caller.project.warehouse, status=status, journey=journey, stage=stage, limit=limit),
        "monitors": monitors.describe() if monitors is not None else None,
    }


@router.get("/flows/transitions")
def flow_transitions(caller: Reader, filters: FilterArgs) -> list[dict[str, Any]]:
    """Stage-to-stage counts, backtracks and exits."""
    return [t.as_dict() for t in transitions(caller.project.warehouse, filters)]


@router.get("/flows/retention")
def flow_retention(caller: Reader, filters: FilterArgs) -> list[dict[str, Any]]:
    """Context retention by stage pair (where hand-offs lose context)."""
    return [h.as_dict() for h in retention_between_stages(caller.project.warehouse, filters)]


@router.get("/outcomes")
def outcomes(caller: Reader, filters: FilterArgs, min_journeys: int = Query(1, ge=1, le=1_000_000_000)) -> dict[str, Any]:
    """Journey completion overall, by cohort and by channel sequence (channel-mix lift)."""
    return journey_outcomes(caller.project.warehouse, filters, min_journeys=min_journeys).as_dict()


@router.get("/health")
def data_health(caller: Reader, filters: FilterArgs) -> dict[str, Any]:
    """Data health (missing journey attributes, stages outside the map, ingest lag) and the filtered window."""
    warehouse = caller.project.warehouse
    return {**health(warehouse), "window": activity(warehouse, filters)}


@router.get("/filters")
def filters_offered(caller: Reader) -> dict[str, Any]:
    """The filter values (journey types, cohorts, channels, first and last visit) and headline counts: what a
    dashboard needs on every page, without the span scans of ``/v1/health``."""
    return filter_values(caller.project.warehouse)


@router.get("/evaluations/failing")
def failing(
    caller: Reader,
    filters: FilterArgs,
    stage: str | None = None,
    evaluator: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Failed evaluations, worst first, with their reasons."""
    return failing_visits(caller.project.warehouse, filters, stage=stage, evaluator=evaluator, limit=limit)


@router.get("/evaluations/distribution")
def distribution(
    caller: Reader, filters: FilterArgs, stage: str | None = None, evaluator: str | None = None
) -> dict[str, Any]:
    """Score histograms per evaluator (binned in SQL)."""
    return score_distribution(caller.project.warehouse, filters, stage=stage, evaluator=evaluator)


@router.get("/evaluators/feedback-agreement")
def evaluators_feedback_agreement(caller: Reader, filters: FilterArgs) -> dict[str, Any]:
    """Each evaluator's agreement with the customers' CSAT (AUROC low vs high CSAT, Spearman), overall and per stage."""
    return {"evaluators": [a.as_dict() for a in feedback_agreement(caller.project.warehouse, filters)]}


@router.get("/compliance")
def compliance(caller: Reader) -> dict[str, Any]:
    """PII per stage and what was done to it, where it entered, consent coverage, the audit log (counts only)."""
    cur = caller.project.warehouse.cursor()
    try:
        return compliance_view(cur)
    finally:
        cur.close()


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


@router.get("/compare")
def compare_route(
    caller: Reader,
    a_cohort: str | None = None,
    a_since: datetime | None = None,
    a_until: datetime | None = None,
    a_journey: str | None = None,
    a_channel: str | None = None,
    b_cohort: str | None = None,
    b_since: datetime | None = None,
    b_until: datetime | None = None,
    b_journey: str | None = None,
    b_channel: str | None = None,
    journey: str | None = None,
) -> dict[str, Any]:
    """Two periods or cohorts side by side: per-stage differences (B − A) with 95% intervals."""
    a = _valid(Filters, journey=a_journey or journey, cohort=a_cohort, channel=a_channel, since=a_since,
               until=a_until, prefix="a_")
    b = _valid(Filters, journey=b_journey or journey, cohort=b_cohort, channel=b_channel, since=b_since,
               until=b_until, prefix="b_")
    return compare(caller.project.warehouse, a, b).as_dict()


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


@router.get("/reviews/summary")
def reviews_summary(caller: Reader) -> dict[str, Any]:
    """Per evaluator with scores: its stages, results scored, and visits reviewed (the review page's choices)."""
    return review_summary(caller.project.warehouse)


@router.get("/reviews/queue")
def reviews_queue(
    caller: Reader,
    evaluator: str,
    stage: str | None = None,
    journey: str | None = None,
    limit: int = Query(20, ge=1, le=500),
) -> list[dict[str, Any]]:
    """Unreviewed visits of ``evaluator`` whose review teaches most first (near the threshold, stratified)."""
    return review_queue(caller.project.warehouse, evaluator, stage=stage, journey=journey, limit=limit)


@router.get("/evaluators/agreement")
def evaluators_agreement(
    caller: Reader, evaluator: str | None = None, engine: Literal["local", "llm"] | None = None
) -> dict[str, Any]:
    """Each evaluator against the reviews: n, AUROC, kappa, precision, recall (95% intervals), thresholds."""
    return agreement_report(caller.project.warehouse, evaluator, engine)


@router.post("/evaluators/agreement/score")
def score_reviewed_visits(caller: Annotated[Caller, Depends(caller_for("write"))]) -> dict[str, Any]:
    """Score the reviewed visits with each engine that has not scored them (local; llm when the server has
    ``JOURNEYSCOPE_LLM_*`` set), so agreement shows the engines side by side on the same reviews."""
    engines = ("local", "llm") if llm_configured() else ("local",)
    done = [score_reviewed(caller.project.warehouse, name) for name in engines]
    return {"engines": [{"engine": d.engine, "scored": d.scored, "up_to_date": d.up_to_date,
                         "no_consent": d.no_consent, "errors": d.errors, "llm_calls": d.llm_calls} for d in done]}


@router.get("/evaluators/thresholds")
def evaluators_thresholds(caller: Reader, evaluator: str | None = None) -> dict[str, Any]:
    """Every threshold ever adopted, oldest first."""
    cur = caller.project.warehouse.cursor()
    try:
        return {"thresholds": [t.as_dict() for t in history(cur, evaluator)]}
    finally:
        cur.close()


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

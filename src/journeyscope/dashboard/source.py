"""Where the dashboard's numbers come from: the warehouse file, or the eval API of a running server.

DuckDB lets one process write a file; while ``journeyscope serve`` holds it, a
dashboard cannot open it and reads through the server's API instead. Both
sources answer the same questions with the same JSON-shaped dicts (the library
objects' ``as_dict()``, which is exactly what the API serves), so every page is
written once against :class:`Source` and works in both modes.

Every failure a user can cause or fix (missing file, empty or older database,
file locked by a server, server down, bad journey map) surfaces as a
:class:`SourceError` with one clear sentence and, where there is one, a hint;
the app shows it with ``st.error``, never as a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb

from journeyscope.errors import ConfigError, InvalidInputError, JourneyscopeError, WarehouseError

__all__ = ["ApiSource", "FilterParams", "Source", "SourceError", "WarehouseSource"]


class SourceError(JourneyscopeError):
    """The dashboard cannot read its data; ``hint`` says what to do about it."""

    def __init__(self, message: str, hint: str | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: ``error`` (something is wrong) or ``empty`` (nothing recorded yet: an info, not an alarm).
        self.kind = kind


@dataclass(frozen=True)
class FilterParams:
    """The sidebar's filters as plain strings (hashable for caching, and the API's query parameters).

    ``since``/``until`` are ISO 8601 UTC; ``until`` is exclusive, like :class:`Filters`.
    """

    journey: str | None = None
    cohort: str | None = None
    channel: str | None = None
    since: str | None = None
    until: str | None = None

    def to_filters(self) -> Any:
        from journeyscope.warehouse.filters import Filters

        return Filters(
            journey=self.journey,
            cohort=self.cohort,
            channel=self.channel,
            since=_parse_time(self.since),
            until=_parse_time(self.until),
        )

    def query(self, prefix: str = "") -> dict[str, str]:
        """Query parameters for the API (unset filters left out)."""
        return {prefix + k: v for k, v in asdict(self).items() if v is not None}

    def replace(self, **changes: str | None) -> FilterParams:
        values = asdict(self)
        values.update(changes)
        return FilterParams(**values)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"not an ISO 8601 time: {value!r}") from None


class Source(Protocol):
    """What the pages need. Every method returns JSON-shaped data and raises only :class:`SourceError`."""

    def describe(self) -> str:
        """One line for the sidebar: where the data comes from."""

    def held(self) -> AbstractContextManager[None]:
        """Answer the questions asked inside (in this thread) from one open source, then let it go."""

    def health(self) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.health.health` (also the filter values)."""

    def filter_values(self) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.health.filter_values`: what every page needs, cheaper than health."""

    def activity(self, params: FilterParams) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.health.activity`: journeys, visits, spans in the filtered window."""

    def compliance(self) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.compliance.compliance_view` (counts only, never values)."""

    def funnel(self, params: FilterParams, evaluators: bool = True) -> dict[str, Any]:
        """``FunnelReport.as_dict()``; ``evaluators=False`` may leave the evaluator summaries out (cheaper)."""

    def transitions(self, params: FilterParams) -> list[dict[str, Any]]:
        """``[Transition.as_dict()]``."""

    def outcomes(self, params: FilterParams) -> dict[str, Any]:
        """``JourneyOutcomes.as_dict()``."""

    def retention(self, params: FilterParams) -> list[dict[str, Any]]:
        """``[HandOff.as_dict()]``."""

    def compare(self, a: FilterParams, b: FilterParams) -> dict[str, Any]:
        """``Comparison.as_dict()``."""

    def journey(self, journey_id: str) -> dict[str, Any] | None:
        """:func:`journeyscope.warehouse.journey_detail.journey_detail`, None when unknown."""

    def search(self, query: str, params: FilterParams, limit: int = 20) -> list[dict[str, Any]]:
        """:func:`journeyscope.warehouse.journey_detail.search_journeys`."""

    def failing(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """:func:`journeyscope.warehouse.evaluation_reads.failing_visits`."""

    def distribution(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None
    ) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.evaluation_reads.score_distribution`."""

    def feedback_agreement(self, params: FilterParams) -> list[dict[str, Any]]:
        """``[FeedbackAgreement.as_dict()]``: each evaluator's scores against the customers' CSAT."""

    def alerts(self) -> list[dict[str, Any]]:
        """:func:`journeyscope.warehouse.monitors.alerts.alerts`: monitors' alerts, newest first."""

    # Reviews and calibration: reads, and the page's two writes (through the warehouse, or the API).
    def review_summary(self) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.reviews.review_summary`."""

    def review_queue(
        self, evaluator: str, stage: str | None = None, journey: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """:func:`journeyscope.warehouse.reviews.review_queue`."""

    def agreement(self, evaluator: str | None = None) -> dict[str, Any]:
        """:func:`journeyscope.warehouse.agreement.agreement_report`."""

    def thresholds(self, evaluator: str | None = None) -> list[dict[str, Any]]:
        """Every adopted threshold (:func:`journeyscope.warehouse.thresholds.history`), oldest first."""

    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str) -> dict[str, Any]:
        """Store reviews (:func:`journeyscope.warehouse.reviews.add_reviews`); ``ReviewResult.as_dict()``."""

    def score_reviewed(self) -> list[dict[str, Any]]:
        """Score the reviewed visits with each engine that has not (:func:`journeyscope.warehouse.review_scoring.
        score_reviewed`: local, and llm where configured); what each engine did."""

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        """Adopt a threshold (:func:`journeyscope.warehouse.thresholds.adopt`); the version as a dict."""


# -- the warehouse file ---------------------------------------------------------------------------
class WarehouseSource:
    """Reads a warehouse file directly, opening it read-only for each question, or once per page run.

    A connection is not kept open between page runs: DuckDB refuses a writer
    while any reader holds the file, and a dashboard left open must not stop
    ``journeyscope evaluate`` or ``serve`` from starting. Answers are cached by
    the app (``st.cache_data``), so the opens are few. Inside :meth:`held` (the
    app holds the file while one page script runs) the questions share one
    open file.
    """

    def __init__(self, path: str | Path, map_file: str | None = None) -> None:
        self.path = str(path)
        self.map_file = map_file
        from journeyscope.warehouse.journey_map import load_journey_map

        try:
            self.journey_map = load_journey_map(map_file)
        except ConfigError as exc:
            raise SourceError(str(exc), "fix the journey map or start the dashboard without --map") from None
        # Per thread (each Streamlit session runs its page in a thread of its own): whether a page run
        # holds the file, and the warehouse it opened for that run.
        self._run = threading.local()

    def describe(self) -> str:
        return f"warehouse file {self.path}" + (f", journey map {self.map_file}" if self.map_file else "")

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open across the questions asked inside (in this thread), and close it on the way out.

        A new DuckDB connection starts with an empty buffer pool, so each question opened on its own reads
        the score columns from the file again; a page asks four or five questions of the same tables (at
        15.7 M scores the stage page's questions took 2.5 s opened one by one, 1.9 s on one connection). The file is
        opened at the first question that misses the cache (a page answered from the cache opens nothing),
        and it is held only while the page runs, during most of which a question holds it anyway.
        """
        if getattr(self._run, "holding", False):  # nested: the outer hold closes
            yield
            return
        self._run.holding, self._run.warehouse = True, None
        try:
            yield
        finally:
            warehouse, self._run.holding, self._run.warehouse = self._run.warehouse, False, None
            if warehouse is not None:
                warehouse.close()

    @contextmanager
    def _open(self) -> Iterator[Any]:
        from journeyscope.warehouse import Warehouse

        holding = getattr(self._run, "holding", False)
        warehouse = self._run.warehouse if holding else None
        if warehouse is None:
            try:
                warehouse = Warehouse(self.path, read_only=True, journey_map=self.journey_map)
            except WarehouseError as exc:
                raise self._explain(exc) from None
            if holding:
                self._run.warehouse = warehouse
        try:
            yield warehouse
        except SourceError:
            raise
        except JourneyscopeError as exc:
            raise SourceError(str(exc)) from None
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {self.path}: {str(exc).splitlines()[0]}") from None
        finally:
            if not holding:
                warehouse.close()

    def _explain(self, exc: WarehouseError) -> SourceError:
        """Turn an open failure into what the user should do about it."""
        text = str(exc)
        if not Path(self.path).exists():
            return SourceError(
                f"No warehouse at {self.path}.",
                "Create one with 'journeyscope demo' or 'journeyscope import FILE.jsonl', or pass --db PATH.",
            )
        if "open for writing" in text or "lock" in text.lower():
            return SourceError(
                f"{self.path} is held by another process that writes to it (is 'journeyscope serve' running?).",
                "Read through the server instead: journeyscope dashboard --api http://127.0.0.1:4318",
            )
        version = _probe_version(self.path)
        if version == 0:
            return SourceError(
                f"{self.path} is not a journeyscope warehouse yet (it has no journeyscope tables).",
                "Fill it with 'journeyscope demo --db PATH' or 'journeyscope import FILE.jsonl --db PATH'.",
                kind="empty",
            )
        if version is not None:
            from journeyscope.warehouse.schema import SCHEMA_VERSION

            if version < SCHEMA_VERSION:
                return SourceError(
                    f"{self.path} was written by an older journeyscope (schema version {version}; this one reads "
                    f"{SCHEMA_VERSION}).",
                    "Open it once for writing to migrate it, e.g. 'journeyscope evaluate --db PATH' or "
                    "'journeyscope serve --db PATH', then reload this page.",
                )
            if version > SCHEMA_VERSION:
                return SourceError(
                    f"{self.path} was written by a newer journeyscope (schema version {version}; this one reads "
                    f"{SCHEMA_VERSION}).",
                    "Upgrade journeyscope: pip install -U journeyscope",
                )
        return SourceError(text)

    def health(self) -> dict[str, Any]:
        from journeyscope.warehouse.health import health

        with self._open() as wh:
            return health(wh, self.journey_map)

    def filter_values(self) -> dict[str, Any]:
        from journeyscope.warehouse.health import filter_values

        with self._open() as wh:
            return filter_values(wh)

    def alerts(self) -> list[dict[str, Any]]:
        from journeyscope.warehouse.monitors.alerts import alerts

        with self._open() as wh:
            return alerts(wh, limit=500)

    def compliance(self) -> dict[str, Any]:
        from journeyscope.warehouse.compliance import compliance_view

        with self._open() as wh:
            cur = wh.cursor()
            try:
                return compliance_view(cur)
            finally:
                cur.close()

    def activity(self, params: FilterParams) -> dict[str, Any]:
        from journeyscope.warehouse.health import activity

        filters = params.to_filters()
        with self._open() as wh:
            return activity(wh, filters)

    def funnel(self, params: FilterParams, evaluators: bool = True) -> dict[str, Any]:
        from journeyscope.warehouse.funnel import funnel

        with self._open() as wh:
            return funnel(wh, params.to_filters(), self.journey_map, evaluators=evaluators).as_dict()

    def transitions(self, params: FilterParams) -> list[dict[str, Any]]:
        from journeyscope.warehouse.flows import transitions

        with self._open() as wh:
            return [t.as_dict() for t in transitions(wh, params.to_filters())]

    def outcomes(self, params: FilterParams) -> dict[str, Any]:
        from journeyscope.warehouse.flows import journey_outcomes

        with self._open() as wh:
            return journey_outcomes(wh, params.to_filters()).as_dict()

    def retention(self, params: FilterParams) -> list[dict[str, Any]]:
        from journeyscope.warehouse.flows import retention_between_stages

        with self._open() as wh:
            return [h.as_dict() for h in retention_between_stages(wh, params.to_filters())]

    def compare(self, a: FilterParams, b: FilterParams) -> dict[str, Any]:
        from journeyscope.warehouse.compare import compare

        fa, fb = a.to_filters(), b.to_filters()
        with self._open() as wh:
            return compare(wh, fa, fb).as_dict()

    def journey(self, journey_id: str) -> dict[str, Any] | None:
        from journeyscope.warehouse.journey_detail import journey_detail

        with self._open() as wh:
            return journey_detail(wh, journey_id)

    def search(self, query: str, params: FilterParams, limit: int = 20) -> list[dict[str, Any]]:
        from journeyscope.warehouse.journey_detail import search_journeys

        with self._open() as wh:
            return search_journeys(wh, query, params.to_filters(), limit)

    def failing(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        from journeyscope.warehouse.evaluation_reads import failing_visits

        with self._open() as wh:
            return failing_visits(wh, params.to_filters(), stage=stage, evaluator=evaluator, limit=limit)

    def distribution(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None
    ) -> dict[str, Any]:
        from journeyscope.warehouse.evaluation_reads import score_distribution

        with self._open() as wh:
            return score_distribution(wh, params.to_filters(), stage=stage, evaluator=evaluator)

    def feedback_agreement(self, params: FilterParams) -> list[dict[str, Any]]:
        from journeyscope.warehouse.feedback_agreement import feedback_agreement

        with self._open() as wh:
            return [a.as_dict() for a in feedback_agreement(wh, params.to_filters())]

    def review_summary(self) -> dict[str, Any]:
        from journeyscope.warehouse.reviews import review_summary

        with self._open() as wh:
            return review_summary(wh)

    def review_queue(
        self, evaluator: str, stage: str | None = None, journey: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        from journeyscope.warehouse.reviews import review_queue

        with self._open() as wh:
            return review_queue(wh, evaluator, stage=stage, journey=journey, limit=limit)

    def agreement(self, evaluator: str | None = None) -> dict[str, Any]:
        from journeyscope.warehouse.agreement import agreement_report

        with self._open() as wh:
            return agreement_report(wh, evaluator)

    def thresholds(self, evaluator: str | None = None) -> list[dict[str, Any]]:
        from journeyscope.warehouse.thresholds import history

        with self._open() as wh:
            return [t.as_dict() for t in history(wh.cursor(), evaluator)]

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """The file opened for writing for one write (the page's reads hold it read-only: let go of that first).

        Fails with a hint when another process (``journeyscope serve``) holds the file: then the dashboard
        reads and writes through the API.
        """
        from journeyscope.warehouse import Warehouse

        held = getattr(self._run, "warehouse", None)
        if held is not None:
            held.close()
            self._run.warehouse = None
        try:
            warehouse = Warehouse(self.path, journey_map=self.journey_map)
        except WarehouseError as exc:
            raise self._explain(exc) from None
        try:
            yield warehouse
        except JourneyscopeError as exc:
            raise SourceError(str(exc)) from None
        finally:
            warehouse.close()

    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str) -> dict[str, Any]:
        from journeyscope.warehouse.reviews import add_reviews

        with self._writing() as wh:
            return add_reviews(wh, enumerate(reviews, 1), reviewer=reviewer, source="dashboard").as_dict()

    def score_reviewed(self) -> list[dict[str, Any]]:
        from dataclasses import asdict

        from journeyscope.warehouse.review_scoring import llm_configured, score_reviewed

        with self._writing() as wh:
            return [asdict(score_reviewed(wh, name)) for name in (("local", "llm") if llm_configured() else ("local",))]

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        from journeyscope.warehouse.thresholds import adopt

        with self._writing() as wh:
            adopted, decided = adopt(wh, evaluator, threshold, reason=reason, engine=engine, journey=journey,
                                     stage=stage, actor=actor)
        return {**adopted.as_dict(), "decided": decided}


def _probe_version(path: str) -> int | None:
    """The schema version of a file that ``Warehouse`` refused, or None when it cannot be read at all."""
    from journeyscope.warehouse.schema import current_version

    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.Error:
        return None
    try:
        return current_version(con)
    except duckdb.Error:
        return None
    finally:
        con.close()


# -- the eval API ---------------------------------------------------------------------------------
class ApiSource:
    """Reads the eval API of a running ``journeyscope serve`` (same dicts as the library)."""

    def __init__(
        self, base_url: str, api_key: str | None = None, timeout: float = 10.0, transport: Any = None
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # ``transport``: tests pass an ``httpx.MockTransport``.
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def describe(self) -> str:
        return f"eval API {self.base_url}"

    def held(self) -> AbstractContextManager[None]:
        """Nothing to hold: the HTTP client keeps its connections between questions anyway."""
        return nullcontext()

    def _get(self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False) -> Any:
        return self._call("GET", path, params, missing_ok=missing_ok)

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None, *, body: Any = None,
              missing_ok: bool = False, accept: tuple[int, ...] = ()) -> Any:
        import httpx

        try:
            response = self._client.request(
                method, path, params={k: v for k, v in (params or {}).items() if v is not None}, json=body
            )
        except httpx.ConnectError:
            raise SourceError(
                f"Cannot reach the journeyscope API at {self.base_url} (connection refused).",
                "Start it with 'journeyscope serve', or read the file directly: journeyscope dashboard --db PATH",
            ) from None
        except httpx.TimeoutException:
            raise SourceError(
                f"The journeyscope API at {self.base_url} did not answer in time ({path}).",
                "The server may be overloaded; reload in a moment.",
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"Cannot talk to the journeyscope API at {self.base_url}: {exc}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise SourceError(
                f"The API at {self.base_url} refused the request ({response.status_code}: {_detail(response)}).",
                "Pass an API key with the scope it needs ('read'; 'write' to review, 'admin' to adopt a threshold): "
                "JOURNEYSCOPE_API_KEY=... journeyscope dashboard --api URL",
            )
        if response.status_code == 404:
            raise SourceError(
                f"The API at {self.base_url} has no {path} (404).",
                "Is it a journeyscope server of the same version as this dashboard?",
            )
        if response.status_code >= 400 and response.status_code not in accept:
            raise SourceError(
                f"The API at {self.base_url} answered {response.status_code} to {path}: {_detail(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise SourceError(
                f"The API at {self.base_url} sent something that is not JSON for {path}."
            ) from None

    def health(self) -> dict[str, Any]:
        return dict(self._get("/v1/health"))

    def filter_values(self) -> dict[str, Any]:
        # /v1/filters: the same dict as the warehouse's, without the span scans of a full /v1/health.
        found = self._get("/v1/filters", missing_ok=True)
        if found is not None:
            return dict(found)
        # A server older than that route: the same keys, taken from its health answer.
        h = self.health()
        counts = h.get("counts", {})
        return {
            "counts": {k: counts.get(k, 0) for k in ("stage_visits", "evaluations")},
            "dimensions": dict(h.get("dimensions") or {}),
        }

    def compliance(self) -> dict[str, Any]:
        return dict(self._get("/v1/compliance"))

    def alerts(self) -> list[dict[str, Any]]:
        found = self._get("/v1/alerts", {"limit": 500}, missing_ok=True)  # a server without monitors: none
        return list(found["alerts"]) if found else []

    def activity(self, params: FilterParams) -> dict[str, Any]:
        # /v1/health?<filters> carries the filtered window under "window".
        return dict(self._get("/v1/health", params.query()).get("window") or {})

    def funnel(self, params: FilterParams, evaluators: bool = True) -> dict[str, Any]:
        # The API's funnel always carries the evaluator summaries.
        return dict(self._get("/v1/funnel", params.query()))

    def transitions(self, params: FilterParams) -> list[dict[str, Any]]:
        return list(self._get("/v1/flows/transitions", params.query()))

    def outcomes(self, params: FilterParams) -> dict[str, Any]:
        return dict(self._get("/v1/outcomes", params.query()))

    def retention(self, params: FilterParams) -> list[dict[str, Any]]:
        return list(self._get("/v1/flows/retention", params.query()))

    def compare(self, a: FilterParams, b: FilterParams) -> dict[str, Any]:
        return dict(self._get("/v1/compare", {**a.query("a_"), **b.query("b_")}))

    def journey(self, journey_id: str) -> dict[str, Any] | None:
        from urllib.parse import quote

        found = self._get(f"/v1/journeys/{quote(journey_id, safe='')}/detail", missing_ok=True)
        return dict(found) if found is not None else None

    def search(self, query: str, params: FilterParams, limit: int = 20) -> list[dict[str, Any]]:
        return list(self._get("/v1/journeys", {"q": query, "limit": limit, **params.query()}))

    def failing(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return list(
            self._get(
                "/v1/evaluations/failing",
                {"stage": stage, "evaluator": evaluator, "limit": limit, **params.query()},
            )
        )

    def distribution(
        self, params: FilterParams, stage: str | None, evaluator: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self._get(
                "/v1/evaluations/distribution", {"stage": stage, "evaluator": evaluator, **params.query()}
            )
        )

    def feedback_agreement(self, params: FilterParams) -> list[dict[str, Any]]:
        return list(self._get("/v1/evaluators/feedback-agreement", params.query())["evaluators"])

    def review_summary(self) -> dict[str, Any]:
        return dict(self._get("/v1/reviews/summary"))

    def review_queue(
        self, evaluator: str, stage: str | None = None, journey: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        return list(self._get("/v1/reviews/queue",
                              {"evaluator": evaluator, "stage": stage, "journey": journey, "limit": limit}))

    def agreement(self, evaluator: str | None = None) -> dict[str, Any]:
        return dict(self._get("/v1/evaluators/agreement", {"evaluator": evaluator}))

    def thresholds(self, evaluator: str | None = None) -> list[dict[str, Any]]:
        return list(self._get("/v1/evaluators/thresholds", {"evaluator": evaluator})["thresholds"])

    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str) -> dict[str, Any]:
        # The API answers 422 with the same body when no review could be stored: the page shows the reasons.
        return dict(self._call("POST", "/v1/reviews", body=[{"reviewer": reviewer, **r} for r in reviews],
                               accept=(422,)))

    def score_reviewed(self) -> list[dict[str, Any]]:
        return list(self._call("POST", "/v1/evaluators/agreement/score")["engines"])

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        # The server records the API key as who adopted it.
        return dict(self._call("POST", "/v1/evaluators/thresholds", body={
            "evaluator": evaluator, "threshold": threshold, "reason": reason, "engine": engine,
            "journey": journey, "stage": stage}))


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)[:200]
    return str(body)[:200]

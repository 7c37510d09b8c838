"""Each read is declared once (``warehouse.reads.Reads``, answered by ``warehouse.reader.Reader``): the API serves exactly the declared reads, the
client asks exactly them, and both answer what the warehouse answers.

Run on the dashboard's demo warehouse (300 journeys, evaluated) against the real server on a copy of it.
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest
from dashboard_support import api_server, build_demo

from journeyscope.client import Client
from journeyscope.dashboard.source import ApiSource, WarehouseSource
from journeyscope.errors import InvalidInputError
from journeyscope.server.app import create_app
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.reader import Reader
from journeyscope.warehouse.reads import READS, Reads, implements

#: GET routes that are not warehouse reads: the server's own state.
SERVER_ONLY = {"/v1/policies", "/v1/ingest/status", "/v1/ready"}


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    return build_demo(tmp_path_factory.getbasetemp() / "dashboard-demo" / "demo.duckdb")


@pytest.fixture(scope="module")
def wh(demo_db):
    with Warehouse(demo_db, read_only=True) as warehouse:
        yield warehouse


@pytest.fixture(scope="module")
def served(demo_db):
    with api_server(demo_db) as url, Client(url) as client:
        yield client


def _arguments(reader: Reader) -> dict[str, dict[str, Any]]:
    """Arguments for the reads that need some, taken from the data; every other read is asked with its defaults
    and once with a filter."""
    journey_id = reader.journeys(limit=1)[0]["journey_id"]
    evaluator = next(iter(e["evaluator"] for e in reader.review_summary()["evaluators"]))
    return {
        "journey": {"journey_id": journey_id},
        "journey_detail": {"journey_id": journey_id},
        "review_queue": {"evaluator": evaluator, "limit": 5},
        "decisions": {"journey_id": journey_id},
        "compare": {"a": Filters(cohort="trial"), "b": Filters(cohort="standard")},
    }


def _comparable(name: str, answer: Any) -> Any:
    """The answer without what moves with the clock or says how old a held answer is."""
    if isinstance(answer, dict):
        answer = {k: v for k, v in answer.items() if k not in ("as_of_age_s", "generated_at")}
        if name == "journey":
            answer["signals"] = {k: v for k, v in answer["signals"].items() if k != "silence_seconds"}
    return answer


def test_the_api_serves_exactly_the_declared_reads(tmp_path):
    app = create_app(ServerSettings(db=str(tmp_path / "routes.duckdb")))
    paths = app.openapi()["paths"]  # what the server routes, as it documents it
    gets = {path for path, methods in paths.items() if "get" in methods and path.startswith("/v1/")}
    declared = {r.path for r in READS}
    assert gets - SERVER_ONLY == declared
    assert {r.path for r in READS if r.part is not None} <= declared  # a part is served inside a whole


def test_the_client_and_both_sources_have_every_read_with_its_declared_signature():
    for spec in READS:
        for cls in (Client, ApiSource, WarehouseSource):
            method = getattr(cls, spec.name)
            parameters = list(inspect.signature(method).parameters.values())[1:]
            assert parameters == list(spec.signature.parameters.values()), (cls.__name__, spec.name)
            generated = hasattr(method, "__signature__")  # made from the declaration, not written out
            assert generated or (cls, spec.name) == (ApiSource, "filter_values")  # an older server's fallback
            if generated:
                assert inspect.getdoc(method) == spec.doc


def test_every_read_through_the_client_equals_the_warehouse_call(wh, served):
    reader = Reader(wh)
    special = _arguments(reader)
    asked = 0
    for spec in READS:
        calls = [special.get(spec.name, {})]
        if any(p.is_filters and p.name == "filters" for p in spec.params):
            calls.append({**calls[0], "filters": Filters(journey="onboarding", cohort="trial")})
        for arguments in calls:
            direct = getattr(reader, spec.name)(**arguments)
            over_http = getattr(served, spec.name)(**arguments)
            assert _comparable(spec.name, over_http) == _comparable(spec.name, direct), (spec.name, arguments)
            asked += 1
    assert asked > len(READS)
    # Without evaluator summaries: from the held report (the unfiltered one is held by now), or read.
    for filters in (Filters(), Filters(cohort="standard")):
        lean = served.funnel(filters, evaluators=False)
        assert all(s["evaluators"] == [] for j in lean["journeys"] for s in j["stages"])
        assert _comparable("funnel", lean) == _comparable("funnel", reader.funnel(filters, evaluators=False))
    assert served.journey_detail("no-such-journey") is None and reader.journey_detail("no-such-journey") is None


def test_bounds_are_refused_by_name_by_the_file_and_by_the_api(wh, served):
    bounded = [(spec, p) for spec in READS for p in spec.params if p.interval is not None]
    assert {spec.name for spec, _ in bounded} >= {"journeys", "failing", "review_queue", "alerts", "decisions"}
    reader = Reader(wh)
    for spec, param in bounded:
        needed = {p.name: "x" for p in spec.params if p.required}
        too_big = param.interval.le + 1
        with pytest.raises(InvalidInputError, match=param.name):
            getattr(reader, spec.name)(**needed, **{param.name: too_big})
        path = spec.path.replace("{journey_id}", "x")
        answer = httpx.get(f"{served.base_url}{path}", params={**needed, param.name: too_big})
        assert answer.status_code == 422
        assert param.name in str(answer.json()["detail"])
    with pytest.raises(InvalidInputError, match="status"):
        reader.alerts(status="burning")
    answer = httpx.get(f"{served.base_url}/v1/compare", params={"a_since": "2300-01-01T00:00:00Z"})
    assert answer.status_code == 422 and answer.json()["detail"].startswith("a_since")



def _answers(drift: str | None = None, missing: str | None = None) -> dict[str, Any]:
    """A method per declared read with the declared signature; ``drift`` loses its last parameter."""
    namespace: dict[str, Any] = {}
    for spec in READS:
        if spec.name == missing:
            continue
        params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *spec.signature.parameters.values()]

        def answer(self: object, *args: object, **kwargs: object) -> None:
            return None

        answer.__signature__ = inspect.Signature(params[:-1] if spec.name == drift else params)  # type: ignore[attr-defined]
        namespace[spec.name] = answer
    return namespace


def test_an_answer_that_drifts_from_its_declaration_is_refused_at_import() -> None:
    assert implements(type("Answers", (Reads,), _answers()))  # every read answered as declared
    with pytest.raises(TypeError, match=r"Answers\.stages.* does not match its declaration"):
        implements(type("Answers", (Reads,), _answers(drift="stages")))
    with pytest.raises(TypeError, match="does not answer the read 'funnel'"):
        implements(type("Answers", (Reads,), _answers(missing="funnel")))

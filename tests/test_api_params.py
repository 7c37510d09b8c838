"""Every query and path parameter of the API, fed odd values over real HTTP: never a 5xx, and the keep-alive
connection still answers afterwards. The routes and their parameters come from the app's own OpenAPI schema,
so a route added later is fuzzed without touching this file."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyscope.demo import run_demo
from journeyscope.server.settings import ServerSettings
from journeyscope.simulator import SimulationConfig
from journeyscope.warehouse.filters import MAX_WINDOW
from receiver_support import running_server

#: The values the issue found answering 500, and their neighbours at the edges of the documented range.
EDGE_TIMES = ["0001-01-01T00:00:00", "2263-01-01", "9999-12-31", "9999-12-31T23:59:59-14:00",
              "0001-01-01T00:00:00+14:00", "1677-09-21T00:12:43", "2262-04-11T23:47:16", "1899-12-31T23:59:59Z",
              "2199-12-31T23:59:59Z", "2200-01-01", "1900-01-01T00:00:00+01:00", "1e20", "-1", "99999999999999"]
EDGE_WINDOWS = ["300000d", "99999999999d", f"{MAX_WINDOW.days}d", f"{MAX_WINDOW.days + 1}d", "0s", "1e3d",
                "9" * 400 + "d", "15m", "0.0000001ms", "-1h", "1 h", "nan", "inf"]

odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["", "\x00", "a\x00b", "%", "%2F", "/", "a/b", "..", "detail", "' OR 1=1 --", "x" * 5000, "\u202e", "🙂"]
)
odd_times = st.sampled_from(EDGE_TIMES) | st.datetimes().map(lambda d: d.isoformat()) | odd_text
odd_windows = (
    st.sampled_from(EDGE_WINDOWS)
    | st.tuples(st.integers(0, 10**15), st.sampled_from(["ms", "s", "m", "h", "d", ""])).map(lambda t: f"{t[0]}{t[1]}")
    | odd_text
)
odd_ints = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(["1.5", "1e3", "", "0x10", "-0"]) | odd_text


def _values_for(name: str, schema: dict[str, Any]) -> st.SearchStrategy[str]:
    types = [schema] + schema.get("anyOf", [])
    if any(t.get("format") == "date-time" for t in types):
        return odd_times
    if any(t.get("type") == "integer" for t in types):
        return odd_ints
    return odd_windows if name == "window" else odd_text


@dataclass(frozen=True)
class Operation:
    path: str
    query: dict[str, st.SearchStrategy[str]]
    path_params: tuple[str, ...]


def _operations(spec: dict[str, Any]) -> list[Operation]:
    """The GET routes of the schema (POST routes take bodies or change data; they have tests of their own)."""
    operations = []
    for path, methods in spec["paths"].items():
        op = methods.get("get")
        if op is None:
            continue
        params = op.get("parameters", [])
        operations.append(Operation(
            path,
            {p["name"]: _values_for(p["name"], p["schema"]) for p in params if p["in"] == "query"},
            tuple(p["name"] for p in params if p["in"] == "path"),
        ))
    return operations


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[http.client.HTTPConnection, list[Operation]]]:
    db = tmp_path_factory.mktemp("params") / "params.duckdb"
    run_demo(db, SimulationConfig(journeys=40, seed=3))
    with running_server(ServerSettings(db=str(db), evaluate_online=False)) as running:
        host, port = running.base_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        yield connection, _operations(running.app.openapi())
        connection.close()


def _get(connection: http.client.HTTPConnection, url: str) -> tuple[int, bytes]:
    connection.request("GET", url)
    response = connection.getresponse()
    return response.status, response.read()


@pytest.fixture(scope="module")
def operations(api: tuple[http.client.HTTPConnection, list[Operation]]) -> list[Operation]:
    return api[1]


def test_the_schema_offers_the_filtered_routes(operations: list[Operation]) -> None:
    paths = {op.path for op in operations}
    assert {"/v1/stages", "/v1/funnel", "/v1/journeys", "/v1/compare", "/v1/journeys/{journey_id}"} <= paths
    assert all(op.query or op.path_params or op.path in {"/v1/filters", "/v1/policies", "/v1/compliance",
                                                          "/v1/ingest/status", "/v1/reviews/summary", "/v1/ready"}
               for op in operations)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_parameter_value_makes_a_5xx_or_drops_the_connection(api, data) -> None:
    connection, operations = api
    op = data.draw(st.sampled_from(operations), label="route")
    path = op.path
    for name in op.path_params:
        path = path.replace(f"{{{name}}}", quote(data.draw(odd_text, label=name), safe=""))
    names = data.draw(st.lists(st.sampled_from(sorted(op.query)), unique=True) if op.query else st.just([]))
    query = {name: data.draw(op.query[name], label=name) for name in names}
    url = path + ("?" + urlencode(query, quote_via=quote) if query else "")
    status, body = _get(connection, url)
    assert status < 500, (url, body[:500])
    sock = connection.sock
    assert sock is not None, f"the server closed the connection after {url}"
    status, _ = _get(connection, "/v1/policies")
    assert status == 200 and connection.sock is sock, f"the connection did not survive {url}"


FILTERED = ["/v1/stages", "/v1/funnel", "/v1/journeys", "/v1/flows/transitions", "/v1/flows/retention",
            "/v1/outcomes", "/v1/health", "/v1/evaluations/failing", "/v1/evaluations/distribution"]


@pytest.mark.parametrize("param, value", [("since", "0001-01-01T00:00:00"), ("until", "2263-01-01"),
                                          ("since", "9999-12-31"), ("window", "300000d"),
                                          ("window", "99999999999d")])
def test_the_issues_values_are_422s_naming_the_parameter(api, param: str, value: str) -> None:
    connection, _ = api
    for path in FILTERED + ["/v1/compare"]:
        name = f"a_{param}" if path == "/v1/compare" else param
        if name == "a_window":
            continue
        status, body = _get(connection, f"{path}?{name}={quote(value)}")
        assert status == 422, (path, body)
        assert name in body.decode(), body


def test_times_inside_the_range_are_answered(api) -> None:
    connection, _ = api
    for path in FILTERED:
        status, body = _get(connection, f"{path}?since=1900-01-01T00:00:00Z&until=2199-12-31T23:59:59Z")
        assert status == 200, (path, body)
        status, body = _get(connection, f"{path}?window={MAX_WINDOW.days}d")
        assert status == 200, (path, body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journey_id=odd_text, stage=st.none() | odd_text, requested_by=st.none() | odd_text)
def test_no_route_body_makes_a_5xx_or_drops_the_connection(api, journey_id, stage, requested_by) -> None:
    connection, _ = api
    body = json.dumps({"journey_id": journey_id, "stage": stage, "requested_by": requested_by})
    connection.request("POST", "/v1/route", body=body.encode(), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    assert response.status < 500, (body, answer[:500])
    sock = connection.sock
    assert sock is not None
    status, _ = _get(connection, "/v1/policies")
    assert status == 200 and connection.sock is sock

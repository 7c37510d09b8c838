"""The eval API on a real server: signals, journey state, routing with logged decisions, policies, keys."""

from __future__ import annotations


import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

from journeyscope import instrument
from journeyscope.demo import run_demo
from journeyscope.server.access import AccessDenied, identify
from journeyscope.server.auth import new_token
from journeyscope.client import ApiError, Client
from journeyscope.server.settings import ServerSettings
from journeyscope.simulator import SimulationConfig
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.funnel import funnel
from receiver_support import eventually, running_server

POLICY = """
version = "api-test-1"

[[stage_rules]]
name = "install-completion-low"
signal = "completion_rate"
below = 0.95
journey = "onboarding"
stage = "app-install"
min_sample = 10
action = "human_handoff"

[autonomy]
recommend_only = ["payment"]
"""


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("api") / "demo.duckdb"
    run_demo(db, SimulationConfig(journeys=300, seed=5, mix={"onboarding": 1.0}))
    return db


@pytest.fixture
def server(demo_db, tmp_path):
    policies = tmp_path / "policies.toml"
    policies.write_text(POLICY)
    db = tmp_path / "api.duckdb"
    db.write_bytes(demo_db.read_bytes())
    settings = ServerSettings(db=str(db), policies_file=str(policies))
    with running_server(settings) as running:
        yield running, policies


def test_stages_and_funnel_carry_samples_and_intervals(server):
    running, _ = server
    with httpx.Client(base_url=running.base_url) as http:
        stages = http.get("/v1/stages", params={"journey": "onboarding"}).json()
        funnel_json = http.get("/v1/funnel", params={"journey": "onboarding"}).json()
    install = next(s for s in stages["journeys"][0]["stages"] if s["stage"] == "app-install")
    completion = install["signals"]["completion_rate"]
    assert completion["n"] == install["entered"] > 0
    assert completion["ci_low"] < completion["value"] < completion["ci_high"]
    expected = funnel(running.runtime.warehouse).journey("onboarding").stage("app-install")
    row = next(s for s in funnel_json["journeys"][0]["stages"] if s["stage"] == "app-install")
    assert (row["entered"], row["completed"], row["reentered"]) == (expected.entered, expected.completed, expected.reentered)


def test_route_recommends_from_policy_and_logs_the_decision(server):
    running, _ = server
    wh = running.runtime.warehouse
    journey_id = wh.query("SELECT journey_id FROM stage_visits WHERE stage = 'app-install' LIMIT 1")[0][0]
    with Client(running.base_url) as client:
        decision = client.route(journey_id, stage="app-install", requested_by="test-orchestrator")
        assert decision.policy_version == "api-test-1"
        assert decision.action == "human_handoff" and decision.needs_human
        assert "completion_rate" in decision.reason and decision.fired[0].rule == "install-completion-low"
        assert 0 < decision.confidence <= 1
        payment = client.route(journey_id, stage="payment")
        assert payment.mode == "act" or payment.action == "continue"
    running.flush()
    logged = wh.query(
        "SELECT journey_id, attributes->>'route.stage', attributes->>'route.action', attributes->>'route.requested_by' "
        "FROM spans "
        "WHERE name = 'journey.route' AND (attributes->>'route.decision_id') = ?", [decision.decision_id]
    )
    assert logged == [(journey_id, "app-install", "human_handoff", "test-orchestrator")]
    # Asking for a route is not activity in the stage: no visit grows from it.
    assert wh.query("SELECT count(*) FROM spans WHERE name = 'journey.route' AND stage IS NOT NULL") == [(0,)]
    with httpx.Client(base_url=running.base_url) as http:
        log = http.get("/v1/decisions", params={"journey_id": journey_id}).json()["decisions"]
    assert decision.decision_id in {d["decision_id"] for d in log}


def test_bad_input_is_404_or_422_with_the_reason_never_500(server):
    running, _ = server
    with httpx.Client(base_url=running.base_url) as http:
        missing = http.get("/v1/journeys/no-such-journey")
        assert missing.status_code == 404 and "no-such-journey" in missing.json()["detail"]
        assert http.post("/v1/route", json={"journey_id": "no-such-journey"}).status_code == 404
        bad = http.post("/v1/route", json={"stage": "x"})
        assert bad.status_code == 422 and "journey_id" in bad.json()["detail"]
        assert http.post("/v1/route", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
        assert http.get("/v1/stages", params={"since": "yesterday"}).status_code == 422
        assert http.get("/v1/stages", params={"window": "soon"}).status_code == 422
        empty = http.get("/v1/funnel", params={"journey": "nope"}).json()
        assert empty["journeys"] == [] and "no stage visits match" in empty["note"]
        assert "/v1/route" in http.get("/openapi.json").json()["paths"]


def _clockless(value):
    """An answer without what depends on the moment it was computed (ids, ages, seconds of silence)."""
    if isinstance(value, dict):
        return {k: _clockless(v) for k, v in value.items() if k not in {"decision_id", "as_of_age_s", "silence_seconds"}}
    if isinstance(value, list):
        return [_clockless(v) for v in value]
    return value


def test_answers_from_memory_equal_the_routes_they_shortcut(server):
    """The hot-route middleware answers held requests before FastAPI's router. Each request below has a twin the
    middleware passes on to the FastAPI route (an extra field, a query parameter, a repeated filter: read the same
    way by FastAPI), and the two answers must be the same."""
    running, _ = server
    stats = running.app.state.hot_routes
    journey_id = running.query("SELECT journey_id FROM stage_visits WHERE stage = 'app-install' LIMIT 1")[0][0]
    with httpx.Client(base_url=running.base_url) as http:
        assert http.post("/v1/route", json={"journey_id": journey_id}).status_code == 200  # now held
        before = (stats.answered, stats.passed_on)
        route = {"journey_id": journey_id, "stage": "app-install", "requested_by": "twin-test"}
        fast = [
            http.post("/v1/route", json=route),
            http.get(f"/v1/journeys/{journey_id}"),
            http.get("/v1/stages", params={"journey": "onboarding"}),
        ]
        after_fast = (stats.answered, stats.passed_on)
        routed = [
            http.post("/v1/route", json={**route, "comment": "ignored by the model"}),
            http.get(f"/v1/journeys/{journey_id}", params={"via": "router"}),
            http.get("/v1/stages", params=[("journey", "support"), ("journey", "onboarding")]),
        ]
        after_routed = (stats.answered, stats.passed_on)
        # Through a proxy on this machine for a remote client: refused by the same access check, by FastAPI.
        denied = http.post("/v1/route", json=route, headers={"x-forwarded-for": "203.0.113.9"})
    assert after_fast == (before[0] + 3, before[1])
    assert after_routed == (after_fast[0], after_fast[1] + 3)
    assert denied.status_code == 403 and "local requests only" in denied.json()["detail"]
    assert (stats.answered, stats.passed_on) == (after_routed[0], after_routed[1] + 1)
    for a, b in zip(fast, routed):
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        assert a.headers["content-type"] == b.headers["content-type"] == "application/json"
        assert _clockless(a.json()) == _clockless(b.json())
    assert fast[0].json()["requested_by"] == "twin-test" and fast[0].json()["logged"] is True
    assert fast[1].json()["journey_id"] == journey_id
    assert [j["journey"] for j in fast[2].json()["journeys"]] == ["onboarding"]
    logged = running.query(
        "SELECT count(*) FROM spans WHERE name = 'journey.route' AND (attributes->>'route.requested_by') = 'twin-test'"
    )
    assert logged == [(2,)]


def test_new_spans_show_up_in_journey_state(server):
    running, _ = server
    tracing = instrument.setup(exporter=OTLPSpanExporter(endpoint=running.traces_url), provider=TracerProvider(),
                               batch=False, instrument_threads=False)
    with instrument.journey("fresh-1", "c-fresh", name="onboarding", stage="sign-up", channel="web"):
        instrument.record_turn("customer", "Hi, I want to sign up", tracer=tracing.tracer)
    tracing.shutdown()
    with httpx.Client(base_url=running.base_url) as http:
        answer = eventually(lambda: (r := http.get("/v1/journeys/fresh-1")).status_code == 200 and r)
        assert answer, http.get("/v1/journeys/fresh-1").text
    assert answer.json()["current_stage"] == "sign-up"


def test_new_journeys_reach_the_stage_signals(server):
    running, _ = server

    def entered() -> int:
        body = httpx.get(running.base_url + "/v1/stages", params={"journey": "onboarding"}).json()
        return next(s["entered"] for s in body["journeys"][0]["stages"] if s["stage"] == "sign-up")

    before = entered()
    tracing = instrument.setup(exporter=OTLPSpanExporter(endpoint=running.traces_url), provider=TracerProvider(),
                               batch=False, instrument_threads=False)
    for i in range(3):
        with instrument.journey(f"new-{i}", f"c-new-{i}", name="onboarding", stage="sign-up", channel="web"):
            instrument.record_turn("customer", "Sign me up", tracer=tracing.tracer)
    tracing.shutdown()
    assert eventually(lambda: entered() >= before + 3)
    assert entered() == before + 3


def test_policy_file_reloads_and_an_invalid_one_is_rejected(server):
    running, policies = server
    with httpx.Client(base_url=running.base_url) as http:
        assert http.get("/v1/policies").json()["version"] == "api-test-1"
        policies.write_text(POLICY.replace("api-test-1", "api-test-2"))
        assert http.post("/v1/policies/reload").json()["version"] == "api-test-2"
        policies.write_text(POLICY.replace('below = 0.95', 'below = "high"'))
        rejected = http.post("/v1/policies/reload")
        assert rejected.status_code == 422 and "below must be a number" in rejected.json()["detail"]
        current = http.get("/v1/policies").json()
        assert current["version"] == "api-test-2" and "line" in current["last_error"]


def test_keys_separate_projects_and_scopes(tmp_path, demo_db):
    tokens = {name: new_token() for name in ("a-ingest", "a-read", "b-read")}
    keys = tmp_path / "keys.toml"
    keys.write_text(
        f'[projects.a]\ndb = "{tmp_path / "a.duckdb"}"\n[projects.b]\ndb = "{tmp_path / "b.duckdb"}"\n'
        + "".join(
            f'[[keys]]\nname = "{name}"\nproject = "{name[0]}"\nscopes = ["{name.split("-")[1]}"]\nsha256 = "{digest}"\n'
            for name, (_, digest) in tokens.items()
        )
    )
    settings = ServerSettings(db=str(tmp_path / "default.duckdb"), keys_file=str(keys), evaluate_online=False)
    with running_server(settings) as running:
        exporter = OTLPSpanExporter(endpoint=running.traces_url, headers={"Authorization": f"Bearer {tokens['a-ingest'][0]}"})
        provider = TracerProvider()
        tracing = instrument.setup(exporter=exporter, provider=provider, batch=False, instrument_threads=False)
        with instrument.journey("secret-a", "c-a", name="support", stage="contact", channel="chat"):
            instrument.record_turn("customer", "project A only", tracer=tracing.tracer)
        tracing.shutdown()
        def get(token: str | None, path: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.get(running.base_url + path, headers=headers, timeout=10)

        eventually(lambda: get(tokens["a-read"][0], "/v1/journeys/secret-a").status_code == 200)
        assert get(tokens["a-read"][0], "/v1/journeys/secret-a").json()["customer_id"] == "c-a"
        assert get(tokens["b-read"][0], "/v1/journeys/secret-a").status_code == 404  # B never sees A's data
        assert get(tokens["a-read"][0], "/v1/filters").json()["dimensions"]["journeys"] == ["support"]
        assert get(tokens["b-read"][0], "/v1/filters").json()["dimensions"]["journeys"] == []  # B's own file
        assert get(None, "/v1/filters").status_code == 401
        assert get(tokens["a-ingest"][0], "/v1/filters").status_code == 403
        assert get(None, "/v1/stages").status_code == 401
        assert get("js_wrong", "/v1/stages").status_code == 401
        assert get(tokens["a-ingest"][0], "/v1/stages").status_code == 403  # ingest scope cannot read
        denied = httpx.post(running.traces_url, content=b"", headers={"content-type": "application/x-protobuf",
                            "Authorization": f"Bearer {tokens['b-read'][0]}"})
        assert denied.status_code == 403
    with Warehouse(tmp_path / "b.duckdb", read_only=True) as wh:
        assert wh.query("SELECT count(*) FROM spans") == [(0,)]


def test_without_keys_only_local_callers_are_served():
    class State:
        keys = None
        projects = {"default": object()}

    assert identify({}, "127.0.0.1", State, "read").name == "local"
    assert identify({}, "::1", State, "ingest").name == "local"
    with pytest.raises(AccessDenied) as denied:
        identify({}, "10.1.2.3", State, "read")
    assert denied.value.status == 403


def test_client_reports_api_errors():
    with Client("http://127.0.0.1:9") as client:
        with pytest.raises(ApiError, match="cannot reach journeyscope"):
            client.journey("x")


def test_compliance_view_and_erasure_through_the_api(server):
    running, _ = server
    wh = running.runtime.warehouse
    journey_id, customer_id = wh.query("SELECT journey_id, customer_id FROM stage_visits LIMIT 1")[0]
    with httpx.Client(base_url=running.base_url, timeout=30) as http:
        view = http.get("/v1/compliance").json()
        assert {"policy", "totals", "stages", "consent", "audit"} <= set(view)
        assert view["totals"]["values_redacted"] > 0  # the demo's e-mail addresses were masked on the way in
        assert any(c.get("stage") for c in view["consent"])
        erased = http.post(f"/v1/customers/{customer_id}/forget", params={"reference": "ticket-7"}).json()
        assert erased["journeys"] >= 1 and erased["rows"]["spans"] > 0
        assert http.get(f"/v1/journeys/{journey_id}").status_code == 404
        assert http.post("/v1/customers/nobody-at-all/forget").status_code == 404
        audit = http.get("/v1/compliance").json()["audit"]
    assert wh.query("SELECT count(*) FROM spans WHERE customer_id = ?", [customer_id]) == [(0,)]
    assert any(a["action"] == "erasure" and a["rows"] > 0 for a in audit)
    assert customer_id not in str(audit)  # the audit log never holds the erased identifiers

"""Customer-reported signals (CSAT, CES, NPS): recorded through the real instrumentation, OTLP and import, checked
and redacted on the way in, and their per-stage analytics and evaluator agreement against the plain-Python reference."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta, timezone

import duckdb
import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import analytics_reference as ref
from journeyscope import instrument
from journeyscope.cli import cli
from journeyscope.errors import ConfigError, InvalidJourneyError
from journeyscope.server.routing import parse_policies
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.compare import compare
from journeyscope.warehouse.erasure import forget_customer
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.exporter import DuckDBSpanExporter
from journeyscope.warehouse.feedback import csat_by_window, feedback_by_stage
from journeyscope.warehouse.feedback_agreement import feedback_agreement
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.health import health
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.importer import import_jsonl
from journeyscope.warehouse.journey_map import parse_journey_map
from journeyscope.warehouse.stats import net_promoter, t_quantile_975
from receiver_support import no_proxy, running_server

S = 1_000_000_000
FEEDBACK_COLUMNS = "stage, visit, feedback_responses, csat, ces, nps, feedback_comment"


def _visits(wh: Warehouse, journey_id: str) -> list[tuple]:
    return wh.query(f"SELECT {FEEDBACK_COLUMNS} FROM stage_visits WHERE journey_id = ? ORDER BY position", [journey_id])


# -- recording -------------------------------------------------------------------------------------------------


def test_record_feedback_through_the_instrumentation_lands_on_the_right_visits(tmp_path):
    exporter = DuckDBSpanExporter(tmp_path / "w.duckdb")
    provider = TracerProvider()
    tracing = instrument.setup(exporter=exporter, provider=provider, batch=False, instrument_threads=False)
    tracer = provider.get_tracer("agent")
    t0 = (datetime.now(timezone.utc) - timedelta(hours=3)).timestamp() * S
    t0 = int(t0)
    with instrument.journey("j-fb", "c-fb", name="support", stage="contact", channel="chat") as j:
        instrument.record_turn("customer", "my order is late", start_time=t0, tracer=tracer)
        instrument.record_turn("agent", "let me look", start_time=t0 + S, tracer=tracer)
        j.advance("resolve")
        with tracer.start_as_current_span("stage resolve", start_time=t0 + 2 * S):
            instrument.record_turn("customer", "any news?", start_time=t0 + 3 * S, tracer=tracer)
            # on the current span, about the current stage
            instrument.record_feedback(nps=9, comment="write to jane.doe@example.com", timestamp=t0 + 4 * S)
        # after the customer moved on, a survey about the first stage: a span of its own, not a visit
        instrument.record_feedback(csat=2, ces=6.5, stage="contact", timestamp=t0 + 5 * S, tracer=tracer)
        instrument.record_feedback(csat="4", stage="contact", timestamp=t0 + 6 * S, tracer=tracer)  # a later answer
        instrument.record_turn("agent", "it ships today", start_time=t0 + 7 * S, tracer=tracer)
    tracing.shutdown()
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert _visits(wh, "j-fb") == [
            ("contact", 1, 2, 4.0, 6.5, None, None),
            ("resolve", 1, 1, None, None, 9.0, "write to [EMAIL]"),  # the comment is redacted like any text
        ]
        stored = wh.query("SELECT events FROM spans WHERE events LIKE '%jane%'")
        assert stored == []  # no copy of the address anywhere


def test_a_hand_made_event_with_a_bad_score_keeps_the_span_through_the_in_process_exporter(tmp_path):
    exporter = DuckDBSpanExporter(tmp_path / "w.duckdb")
    provider = TracerProvider()
    tracing = instrument.setup(exporter=exporter, provider=provider, batch=False, instrument_threads=False)
    with instrument.journey("j-hand", "c-hand", stage="a"):
        with provider.get_tracer("agent").start_as_current_span("step") as span:
            span.add_event("journey.feedback", {"journey.feedback.csat": 0, "journey.feedback.ces": 3})
    tracing.shutdown()
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert _visits(wh, "j-hand") == [("a", 1, 1, None, 3.0, None, None)]
        (events,), = wh.query("SELECT events FROM spans WHERE name = 'step'")
        assert json.loads(events)[0]["attributes"]["journey.feedback.rejected"] == (
            "journey.feedback.csat 0 is outside its scale 1-5")


@pytest.mark.parametrize("kwargs, message", [
    ({"csat": 6}, "outside its scale 1-5"),
    ({"ces": 0}, "outside its scale 1-7"),
    ({"nps": 11}, "outside its scale 0-10"),
    ({"csat": "great"}, "must be a number from 1 to 5"),
    ({"csat": True}, "must be a number"),
    ({"csat": float("nan")}, "must be a number"),
    ({"comment": 5}, "comment must be a string"),
    ({}, "at least one of"),
])
def test_record_feedback_refuses_bad_values_at_the_call_site(memory_tracing, kwargs, message):
    with instrument.journey("j", "c", stage="a"):
        with pytest.raises(InvalidJourneyError, match=message):
            instrument.record_feedback(**kwargs)


def test_record_feedback_needs_a_journey_and_a_stage(memory_tracing):
    with pytest.raises(InvalidJourneyError, match="outside a journey"):
        instrument.record_feedback(csat=3)
    with instrument.journey("j", "c"):
        with pytest.raises(InvalidJourneyError, match="needs a stage"):
            instrument.record_feedback(csat=3)


def test_feedback_from_another_sdk_over_otlp_keeps_the_span_and_leaves_out_bad_values(tmp_path, caplog):
    """A plain OTel SDK, no journeyscope instrumentation: the event is built by hand, some values wrong."""
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"))) as server:
        provider = TracerProvider(resource=Resource.create({"service.name": "other-agent"}))
        provider.add_span_processor(SimpleSpanProcessor(HttpExporter(endpoint=server.traces_url)))
        tracer = provider.get_tracer("other")
        base = {"journey.id": "j-otlp", "customer.id": "c-otlp", "journey.name": "support"}
        start = int((datetime.now(timezone.utc) - timedelta(hours=2)).timestamp() * S)
        for i, stage in enumerate(("contact", "resolve")):
            attrs = {**base, "journey.stage": stage, "journey.turn.role": "customer", "journey.turn.text": "hi"}
            tracer.start_span("journey.turn", attributes=attrs, start_time=start + i * S).end(end_time=start + i * S)
        with caplog.at_level(logging.WARNING, logger="journeyscope.warehouse.rows"):
            # the root span: no stage of its own, the event names it
            root = tracer.start_span("agent run", attributes=base, start_time=start + 2 * S)
            root.add_event("journey.feedback", {"journey.stage": "contact", "journey.feedback.csat": 9,
                                                "journey.feedback.ces": "very hard", "journey.feedback.nps": 3,
                                                "journey.feedback.comment": "ring +44 7700 900123"},
                           timestamp=start + 3 * S)
            root.end(end_time=start + 4 * S)
            provider.shutdown()
            rows = server.query("SELECT name, events FROM spans WHERE name = 'agent run'")
        assert len(rows) == 1  # the span is kept
        attributes = json.loads(rows[0][1])[0]["attributes"]
        assert attributes["journey.feedback.nps"] == 3 and "journey.feedback.csat" not in attributes
        assert "journey.feedback.ces" not in attributes
        rejected = attributes["journey.feedback.rejected"]
        assert "journey.feedback.csat 9 is outside its scale 1-5" in rejected
        assert "journey.feedback.ces must be a number from 1 to 7, got 'very hard'" in rejected
        assert any("journey.feedback value left out" in r.getMessage() for r in caplog.records)
        assert "7700" not in attributes["journey.feedback.comment"]
        assert health(server.runtime.warehouse)["missing"]["spans_with_feedback_left_out"] == 1
        visits = _visits(server.runtime.warehouse, "j-otlp")
        assert visits == [("contact", 1, 1, None, None, 3.0, "ring [PHONE]"), ("resolve", 1, None, None, None, None, None)]


def test_import_feedback_items_left_out_values_are_reported_and_the_rest_kept(tmp_path):
    journey = {"journey_id": "j-imp", "customer_id": "c-imp", "journey": "support", "turns": [
        {"role": "customer", "text": "hello", "ts": "2025-01-01T10:00:00Z", "stage": "contact"},
        {"role": "agent", "text": "hi", "ts": "2025-01-01T10:00:05Z", "stage": "contact"},
        {"role": "customer", "text": "fixed?", "ts": "2025-01-01T10:01:00Z", "stage": "resolve"},
        {"event": "feedback", "stage": "contact", "ts": "2025-01-01T10:02:00Z", "csat": 1, "ces": 12, "nps": "x",
         "comment": "mail me at joe@example.org"},
        {"event": "feedback", "stage": "resolve", "ts": "2025-01-01T10:03:00Z", "nps": 10},
    ]}
    bad = {**journey, "journey_id": "j-bad", "turns": [
        {"event": "feedback", "stage": "contact", "ts": "2025-01-01T10:02:00Z"},
    ]}
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(journey) + "\n" + json.dumps(bad) + "\n")
    result = CliRunner().invoke(cli, ["import", str(path), "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 0, result.output
    assert "imported 1 journeys" in result.output
    assert f"left out {path}:1: turns[3]: journey.feedback.ces 12 is outside its scale 1-7" in result.output
    assert "journey.feedback.nps must be a number from 0 to 10, got 'x'" in result.output
    assert f"skipped {path}:2: turns[0]: a feedback item needs at least one of" in result.output
    assert "skipped 1 of 2 lines" in result.output
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        assert _visits(wh, "j-imp") == [
            ("contact", 1, 1, 1.0, None, None, "mail me at [EMAIL]"),
            ("resolve", 1, 1, None, None, 10.0, None),
        ]
    out = tmp_path / "visits.jsonl"
    exported = CliRunner().invoke(cli, ["export", "stage-visits", "--db", str(tmp_path / "w.duckdb"), "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    first = json.loads(out.read_text().splitlines()[0])
    assert (first["csat"], first["feedback_responses"], first["feedback_at"]) == (1.0, 1, "2025-01-01T10:02:00.000000Z")


# -- analytics against the reference ---------------------------------------------------------------------------

MAP_TOML = """
[journeys.alpha]
stages = ["a", "b", "c"]
idle_timeout = "30m"
"""
MAPS = {"alpha": ["a", "b", "c"]}


def generate(n: int, seed: int) -> list[dict]:
    """Journeys with re-entries, several channels and survey answers: some late, some about an earlier stage,
    some before the stage began (a clock behind), some out of range, some repeated (the latest wins)."""
    rnd = random.Random(seed)
    start = datetime(2025, 5, 1, tzinfo=timezone.utc)
    journeys = []
    for i in range(n):
        jtype = "alpha" if i % 4 else "beta"
        stages = MAPS["alpha"] if jtype == "alpha" else ["x", "y"]
        path = []
        for k, stage in enumerate(stages):
            path.append(stage)
            if k and rnd.random() < 0.15:
                path += [stages[k - 1], stage]  # a re-entry of both
            if rnd.random() < 0.12:
                break
        t = start + timedelta(minutes=rnd.randrange(60 * 24 * 20))
        turns: list[dict] = []
        for stage in path:
            channel = rnd.choice(["chat", "email", "voice"])
            for role in ("customer", "agent"):
                t += timedelta(seconds=rnd.randint(5, 300))
                turns.append({"role": role, "text": f"{role} at {stage}", "ts": t.isoformat(), "stage": stage,
                              "channel": channel})
            for extra in range(2 if rnd.random() < 0.1 else 1):
                if rnd.random() < 0.45:
                    about = stage if rnd.random() < 0.85 else rnd.choice(path)
                    at = t + timedelta(milliseconds=400 + 100 * extra)
                    item: dict = {"event": "feedback", "stage": about, "ts": at.isoformat()}
                    for m, (low, high) in ref.SCALES.items():
                        if rnd.random() < 0.8:
                            item[m] = rnd.randint(low, high) if rnd.random() > 0.05 else high + 3
                    if rnd.random() < 0.2 or len(item) == 3:
                        item["comment"] = rnd.choice(["slow", "great", "meh"])
                    turns.append(item)
        journeys.append({"journey_id": f"f-{i}", "customer_id": f"c-{i % 40}", "journey": jtype,
                         "cohort": rnd.choice(["A", "B"]), "turns": turns})
    return journeys


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    journeys = generate(500, seed=3)
    path = tmp / "fb.jsonl"
    path.write_text("\n".join(json.dumps(j) for j in journeys))
    wh = Warehouse(tmp / "fb.duckdb", journey_map=parse_journey_map(MAP_TOML))
    summary = import_jsonl(wh, path)
    assert summary.journeys == 500 and not summary.skipped and summary.warnings
    yield wh, journeys
    wh.close()


def _mean_ci(values: list[float]) -> tuple[float | None, float | None]:
    n, m, sd = ref.mean_and_sd(values)
    if n < 2:
        return None, None
    half = ref.t_975(n - 1) * sd / n**0.5
    return half, m


@pytest.mark.parametrize("filters", [
    Filters(), Filters(cohort="A"), Filters(channel="email"), Filters(journey="alpha", channel="voice"),
    Filters(since=datetime(2025, 5, 11, tzinfo=timezone.utc)),
], ids=["all", "cohort", "channel", "journey+channel", "since"])
def test_feedback_per_stage_matches_the_reference(surveyed, filters):
    wh, journeys = surveyed
    since = filters.since.timestamp() if filters.since else None
    expected = ref.feedback(journeys, MAPS, cohort=filters.cohort, channel=filters.channel, since=since)
    expected = {k: v for k, v in expected.items() if filters.journey in (None, k[0]) and v["responses"]}
    got = feedback_by_stage(wh, filters)
    assert set(got) == set(expected)
    report = funnel(wh, filters)
    for (journey, stage), e in expected.items():
        g = got[(journey, stage)]
        assert (g.responses, g.response_rate.n) == (e["responses"], e["visits"]), (journey, stage)
        for m in ("csat", "ces"):
            mean = getattr(g, m)
            n, m_mean, sd = ref.mean_and_sd(e[m])
            assert mean.n == n
            if n:
                assert mean.mean == pytest.approx(m_mean)
            half, _ = _mean_ci(e[m])
            if half is not None:
                low, high = ref.SCALES[m]
                assert mean.low == pytest.approx(max(low, m_mean - half), abs=1e-6)
                assert mean.high == pytest.approx(min(high, m_mean + half), abs=1e-6)
        n, promoters, detractors, score = ref.nps(e["nps"])
        assert (g.nps.n, g.nps.promoters, g.nps.detractors) == (n, promoters, detractors)
        if n:
            assert g.nps.score == pytest.approx(score)
            assert g.nps.low <= g.nps.score <= g.nps.high
        row = report.journey(journey).stage(stage).as_dict()  # the funnel JSON carries the same, as docs/contracts.md says
        if n:
            assert row["nps"]["n"] == n and row["nps"]["score"] == pytest.approx(score)
        if e["csat"]:
            assert row["csat"] == g.csat.as_dict() and set(row["csat"]) == {"n", "mean", "ci_low", "ci_high"}
        assert row["feedback_responses"] == e["responses"]


def test_csat_by_window_counts_each_answer_once_in_its_window(surveyed):
    wh, journeys = surveyed
    windows = csat_by_window(wh, timedelta(days=1), Filters(journey="alpha"))
    by_stage: dict[str, int] = {}
    for w in windows:
        assert w.window_start.hour == 0 and w.window_start.minute == 0
        by_stage[w.stage] = by_stage.get(w.stage, 0) + w.csat.n
    totals = feedback_by_stage(wh, Filters(journey="alpha"))
    assert by_stage == {stage: f.csat.n for (_, stage), f in totals.items() if f.csat.n}


def test_interval_formulas_known_values():
    # Student's t 97.5% quantiles (any table): exact for small df, close for large ones
    for df, t in ((1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (120, 1.9799), (1000, 1.9623)):
        assert t_quantile_975(df) == pytest.approx(t, abs=1e-4)
        assert ref.t_975(df) == pytest.approx(t, abs=2e-3)
    # 50 promoters, 30 passives, 20 detractors: +30 points, SE = sqrt((.5 + .2 - .09) / 100)
    score = net_promoter(100, 50, 20)
    assert score.score == pytest.approx(30.0)
    assert score.high - score.low == pytest.approx(2 * 1.96 * (0.61 / 100) ** 0.5 * 100, rel=0.05)
    assert net_promoter(1, 1, 0).low < 100  # one promoter is not a certain +100


def test_evaluator_agreement_with_csat_matches_the_reference(surveyed):
    wh, journeys = surveyed
    evaluate_pending(wh)
    got = {(a.evaluator, a.journey, a.stage): a for a in feedback_agreement(wh)}
    scores = wh.query("SELECT journey_id, stage, visit, evaluator, score FROM evaluations "
                      "WHERE error IS NULL AND score IS NOT NULL")
    csat: dict[tuple[str, str, int], float] = {}
    kinds: dict[str, str] = {}
    for j in journeys:
        kinds[j["journey_id"]] = j["journey"]
        visits = ref.visits_of(j, MAPS.get(j["journey"]))
        for position, answers in ref.visit_feedback(j, visits).items():
            if "csat" in answers:
                v = visits[position]
                csat[(j["journey_id"], v["stage"], v["visit"])] = answers["csat"]
    pairs: dict[tuple, list[tuple[float, float]]] = {}
    for journey_id, stage, visit, evaluator, score in scores:
        if (journey_id, stage, visit) in csat:
            c = csat[(journey_id, stage, visit)]
            pairs.setdefault((evaluator, kinds[journey_id], stage), []).append((score, c))
            pairs.setdefault((evaluator, None, None), []).append((score, c))
    assert set(got) == set(pairs)
    checked = 0
    for key, ps in pairs.items():
        a = got[key]
        assert a.n == len(ps)
        expected_auroc, expected_rho = ref.auroc(ps), ref.spearman(ps)
        assert (a.auroc is None) == (expected_auroc is None), key
        if expected_auroc is not None:
            assert a.auroc == pytest.approx(expected_auroc), key
            assert a.auroc_ci[0] <= a.auroc <= a.auroc_ci[1]
            checked += 1
        if expected_rho is not None:
            assert a.spearman == pytest.approx(expected_rho), key
    assert checked > 10


# -- the API and routing on what customers reported ---------------------------------------------------------

ROUTING_POLICY = """
version = "feedback-test"

[[stage_rules]]
name = "customers-unhappy-here"
signal = "csat_mean"
below = 3.0
journey = "support"
stage = "resolve"
min_sample = 5
action = "clarify"

[[journey_rules]]
name = "rated-us-badly"
signal = "csat_min"
at_most = 2
action = "human_handoff"
"""


def _support_journey(i: int, contact_csat: int, resolve_csat: int) -> dict:
    day = f"2025-02-{1 + i % 20:02d}"
    return {"journey_id": f"s-{i}", "customer_id": f"c-{i}", "journey": "support", "turns": [
        {"role": "customer", "text": "where is my parcel", "ts": f"{day}T10:00:00Z", "stage": "contact"},
        {"role": "agent", "text": "checking", "ts": f"{day}T10:00:05Z", "stage": "contact"},
        {"event": "feedback", "stage": "contact", "ts": f"{day}T10:00:30Z", "csat": contact_csat},
        {"role": "customer", "text": "any news", "ts": f"{day}T10:01:00Z", "stage": "resolve"},
        {"event": "feedback", "stage": "resolve", "ts": f"{day}T10:02:00Z", "csat": resolve_csat, "ces": 6},
    ]}


@pytest.mark.slow
def test_routing_and_stage_signals_use_what_customers_reported(tmp_path):
    journeys = [_support_journey(0, 1, 4)] + [_support_journey(i, 4, 2 if i % 2 else 3) for i in range(1, 11)]
    path = tmp_path / "support.jsonl"
    path.write_text("\n".join(json.dumps(j) for j in journeys))
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        import_jsonl(wh, path)
        evaluate_pending(wh)
    policies = tmp_path / "policies.toml"
    policies.write_text(ROUTING_POLICY)
    no_proxy()
    with running_server(ServerSettings(db=str(db), policies_file=str(policies))) as server:
        with httpx.Client(base_url=server.base_url) as http:
            stages = http.get("/v1/stages", params={"journey": "support"}).json()
            unhappy = http.post("/v1/route", json={"journey_id": "s-0"}).json()
            at_bound = http.post("/v1/route", json={"journey_id": "s-1", "stage": "contact"}).json()
            content = http.post("/v1/route", json={"journey_id": "s-2", "stage": "contact"}).json()
            agreement = http.get("/v1/evaluators/feedback-agreement", params={"journey": "support"})
            state = http.get("/v1/journeys/s-0").json()
    resolve = next(s for s in stages["journeys"][0]["stages"] if s["stage"] == "resolve")["signals"]
    assert resolve["csat_mean"]["n"] == 11 and resolve["csat_mean"]["value"] == pytest.approx((4 + 5 * 2 + 5 * 3) / 11)
    assert resolve["csat_mean"]["ci_low"] < resolve["csat_mean"]["value"] < resolve["csat_mean"]["ci_high"]
    assert resolve["ces_mean"]["value"] == 6 and resolve["feedback_response_rate"]["value"] == 1.0
    # s-0 rated contact 1: a human takes over, whatever the stage's average says
    assert unhappy["action"] == "human_handoff"
    assert "csat_min = 1 (<= 2) for journey s-0" in unhappy["reason"]
    assert {f["rule"] for f in unhappy["fired"]} == {"rated-us-badly", "customers-unhappy-here"}
    assert state["signals"]["csat_last"] == 4 and state["signals"]["csat_min"] == 1 and state["signals"]["ces_last"] == 6
    assert state["visits"][0]["feedback"]["csat"] == 1
    # s-1 rated 4 then 2: its lowest answer is at the policy's bound; s-2 (4, then 3) is not handed off
    assert at_bound["action"] == "human_handoff"
    assert content["action"] == "continue"
    assert agreement.status_code == 200
    rows = agreement.json()["evaluators"]
    assert rows and all(r["n"] >= 1 for r in rows) and any(r["stage"] is None for r in rows)


def test_compare_reports_the_csat_and_nps_differences_of_two_cohorts(surveyed):
    wh, journeys = surveyed
    a, b = Filters(journey="alpha", cohort="A"), Filters(journey="alpha", cohort="B")
    stage = compare(wh, a, b).stage("alpha", "b")
    ea = ref.feedback(journeys, MAPS, cohort="A")[("alpha", "b")]
    eb = ref.feedback(journeys, MAPS, cohort="B")[("alpha", "b")]
    assert stage.csat is not None and stage.nps is not None
    assert (stage.csat.a_n, stage.csat.b_n) == (len(ea["csat"]), len(eb["csat"]))
    assert stage.csat.value == pytest.approx(ref.mean_and_sd(eb["csat"])[1] - ref.mean_and_sd(ea["csat"])[1])
    assert stage.csat.low < stage.csat.value < stage.csat.high
    assert stage.nps.value == pytest.approx(ref.nps(eb["nps"])[3] - ref.nps(ea["nps"])[3])
    assert set(stage.as_dict()) >= {"csat", "nps", "completion", "reentry"}


def test_forgetting_a_customer_erases_their_feedback(tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(_support_journey(0, 1, 2)) + "\n" + json.dumps(_support_journey(1, 5, 5)))
    with Warehouse(tmp_path / "w.duckdb") as wh:
        import_jsonl(wh, path)
    forget_customer(tmp_path / "w.duckdb", "c-0")
    with Warehouse(tmp_path / "w.duckdb", read_only=True) as wh:
        assert wh.query("SELECT DISTINCT customer_id FROM stage_visits WHERE csat IS NOT NULL") == [("c-1",)]
        assert wh.query("SELECT count(*) FROM spans WHERE events LIKE '%journey.feedback%' AND customer_id = 'c-0'") == [(0,)]


def test_an_older_warehouse_gets_its_feedback_on_upgrade(tmp_path):
    path = tmp_path / "fb.jsonl"
    path.write_text(json.dumps(_support_journey(3, 2, 5)))
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        import_jsonl(wh, path)
        expected = _visits(wh, "s-3")
    assert expected[0][3] == 2.0
    with duckdb.connect(str(db)) as con:  # as schema 10 left it: no feedback table or columns
        con.execute("DROP TABLE feedback")
        con.execute("DROP INDEX stage_visits_journey")
        for column in ("feedback_responses", "csat", "ces", "nps", "feedback_comment", "feedback_at"):
            con.execute(f"ALTER TABLE stage_visits DROP COLUMN {column}")
        con.execute("CREATE INDEX stage_visits_journey ON stage_visits (journey_id)")
        con.execute("UPDATE meta SET value = '10' WHERE key = 'schema_version'")
    with Warehouse(db) as wh:
        assert _visits(wh, "s-3") == expected


@pytest.mark.parametrize("rule, message", [
    ('signal = "csat_min"\naction = "clarify"', "exactly one of 'at_least' and 'at_most'"),
    ('signal = "csat_min"\nat_least = 1\nat_most = 2\naction = "clarify"', "exactly one of"),
    ('signal = "csat_avg"\nat_most = 2\naction = "clarify"', "signal must be one of"),
])
def test_journey_rules_on_feedback_are_checked(rule, message):
    with pytest.raises(ConfigError, match=message):
        parse_policies(f"[[journey_rules]]\n{rule}\n")
    ok = parse_policies('[[journey_rules]]\nsignal = "ces_last"\nat_least = 6\naction = "clarify"\n')
    assert ok.journey_rules[0].fires(6) and not ok.journey_rules[0].fires(5)

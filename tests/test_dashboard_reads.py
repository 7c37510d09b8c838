"""The dashboard's reads: journey detail, evaluation reads, data health, sources, insights and charts.

Run against a known demo warehouse (300 journeys, seed 7, evaluated locally) and checked
against plain SQL on the same file, so the dashboard and the eval API show true numbers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pytest
from dashboard_support import build_demo, api_server, free_port
from journeyscope.dashboard import charts
from journeyscope.dashboard.insights import NOT_ENOUGH, evaluator_hotspot, fail_matrix, rate_text, worst_stage
from journeyscope.dashboard.settings import load_settings
from journeyscope.dashboard.source import ApiSource, FilterParams, SourceError, WarehouseSource
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.evaluation_reads import cited_turns, failing_visits, score_distribution
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.health import activity, health
from journeyscope.warehouse.journey_detail import journey_detail, search_journeys
from journeyscope.warehouse.journey_map import parse_journey_map

from journeyscope.errors import InvalidInputError


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.getbasetemp() / "dashboard-demo" / "demo.duckdb")


@pytest.fixture(scope="module")
def wh(demo_db):
    with Warehouse(demo_db, read_only=True) as warehouse:
        yield warehouse


def _sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


# -- journey detail ----------------------------------------------------------------------------------
def _failing_journey(db: Path) -> str:
    return _sql(
        db,
        "SELECT journey_id FROM evaluations WHERE passed = false AND evaluator = 'friction_repetition' "
        "ORDER BY journey_id LIMIT 1",
    )[0][0]


def test_journey_detail_has_visits_transcript_and_cited_turns(wh, demo_db):
    jid = _failing_journey(demo_db)
    detail = journey_detail(wh, jid)
    assert detail is not None
    json.dumps(detail)  # served as-is by the API
    visits = _sql(
        demo_db, "SELECT stage, visit, turns FROM stage_visits WHERE journey_id = ? ORDER BY position", [jid]
    )
    assert [(v["stage"], v["visit"]) for v in detail["visits"]] == [(s, n) for s, n, _ in visits]
    assert detail["journey"] == jid.split("-")[0]
    scored = _sql(demo_db, "SELECT count(*) FROM evaluations WHERE journey_id = ?", [jid])[0][0]
    assert sum(len(v["evaluations"]) for v in detail["visits"]) == scored
    for v in detail["visits"]:
        assert [t["index"] for t in v["transcript"]] == list(range(len(v["transcript"])))
        assert all(t["stage"] == v["stage"] for t in v["transcript"])
        for e in v["evaluations"]:
            for i in e["cited_turns"]:
                assert e["evaluator"] in v["transcript"][i]["cited_by"]
    repetition = next(
        e
        for v in detail["visits"]
        for e in v["evaluations"]
        if e["evaluator"] == "friction_repetition" and e["passed"] is False
    )
    visit = next(v for v in detail["visits"] if repetition in v["evaluations"])
    cited = [visit["transcript"][i] for i in repetition["cited_turns"]]
    assert cited and all(t["role"] == "customer" for t in cited)
    assert detail["route_decisions"] == []  # the demo asks no server for routes


def test_journey_detail_unknown_and_invalid(wh):
    assert journey_detail(wh, "no-such-journey") is None
    with pytest.raises(InvalidInputError):
        journey_detail(wh, " ")


def test_journey_detail_shows_the_routing_decisions_logged_for_it(demo_db, tmp_path):
    from journeyscope.server.decisions import decision_rows
    from journeyscope.warehouse.journey_state import journey_state

    copy = tmp_path / "routes.duckdb"
    shutil.copy(demo_db, copy)
    jid = _sql(demo_db, "SELECT min(journey_id) FROM stage_visits")[0][0]
    decision = {
        "decision_id": "d" * 32, "journey_id": jid, "stage": "payment", "action": "human_handoff",
        "mode": "act", "confidence": 0.9, "reason": "retention 0.2 < 0.5", "fired": [],
        "policy_version": "p-1", "signals": {}, "requested_by": "orchestrator-1",
    }
    with Warehouse(copy) as w:
        state = journey_state(w, jid)
        w.ingest(decision_rows(decision, state, 1_747_735_200_000_000_000))
    with Warehouse(copy, read_only=True) as w:
        detail = journey_detail(w, jid)
    (logged,) = detail["route_decisions"]
    assert (logged["decision_id"], logged["stage"], logged["action"], logged["mode"], logged["requested_by"]) == (
        "d" * 32, "payment", "human_handoff", "act", "orchestrator-1")
    assert logged["decided_at"] == "2025-05-20T10:00:00.000000Z"


def test_search_journeys(wh, demo_db):
    jid = _sql(demo_db, "SELECT min(journey_id) FROM stage_visits")[0][0]
    found = search_journeys(wh, jid)
    assert found[0]["journey_id"] == jid
    part = search_journeys(wh, "onboarding-7-00001", limit=500)
    assert {r["journey_id"] for r in part} == {
        r[0]
        for r in _sql(
            demo_db,
            "SELECT DISTINCT journey_id FROM stage_visits WHERE journey_id LIKE 'onboarding-7-00001%'",
        )
    }
    assert search_journeys(wh, "%") == []  # a literal percent sign, not a wildcard
    trial = search_journeys(wh, "", Filters(cohort="trial"), limit=500)
    assert trial and all(r["cohort"] == "trial" for r in trial)


# -- evaluation reads -----------------------------------------------------------------------------------
def test_failing_visits_worst_first_with_reasons(wh, demo_db):
    rows = failing_visits(wh, Filters(journey="onboarding"), stage="app-install", limit=1000)
    expected = _sql(
        demo_db,
        """
        SELECT count(*) FROM evaluations e JOIN stage_visits v USING (journey_id, stage, visit)
        WHERE e.passed = false AND e.error IS NULL AND v.journey_name = 'onboarding' AND v.stage = 'app-install'""",
    )
    assert len(rows) == expected[0][0] > 0
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores)
    assert all(r["reason"] and r["stage"] == "app-install" for r in rows)
    assert failing_visits(wh, Filters(journey="onboarding"), stage="app-install", limit=3) == rows[:3]
    trial = failing_visits(wh, Filters(journey="onboarding", cohort="trial"), stage="app-install", limit=1000)
    assert trial and len(trial) < len(rows) and all(r["cohort"] == "trial" for r in trial)
    only = failing_visits(wh, None, evaluator="friction_repetition", limit=5)
    assert {r["evaluator"] for r in only} == {"friction_repetition"}
    with pytest.raises(InvalidInputError):
        failing_visits(wh, limit=0)


def test_score_distribution_is_binned_in_sql_and_adds_up(wh, demo_db):
    dist = score_distribution(wh, Filters(journey="onboarding"), stage="app-install")
    assert dist["bins"] == 10 and len(dist["edges"]) == 11
    truth = {
        name: (scored, unscored)
        for name, scored, unscored in _sql(
            demo_db,
            """
        SELECT e.evaluator, count(e.score), count(*) - count(e.score)
        FROM evaluations e JOIN stage_visits v USING (journey_id, stage, visit)
        WHERE e.error IS NULL AND v.journey_name = 'onboarding' AND v.stage = 'app-install' GROUP BY ALL""",
        )
    }
    assert {e["evaluator"]: (sum(e["counts"]), e["unscored"]) for e in dist["evaluators"]} == truth
    perfect = _sql(
        demo_db,
        """
        SELECT count(*) FROM evaluations e JOIN stage_visits v USING (journey_id, stage, visit)
        WHERE v.journey_name = 'onboarding' AND v.stage = 'app-install'
          AND e.evaluator = 'customer_agent_context_retention' AND e.score = 1.0""",
    )[0][0]
    retention = next(e for e in dist["evaluators"] if e["evaluator"] == "customer_agent_context_retention")
    assert retention["counts"][-1] >= perfect > 0  # a score of exactly 1 falls in the last bin
    one = score_distribution(wh, None, evaluator="friction_latency", bins=4)
    assert [e["evaluator"] for e in one["evaluators"]] == ["friction_latency"] and len(
        one["evaluators"][0]["counts"]
    ) == 4


def test_cited_turns_reads_every_evidence_shape():
    assert cited_turns(
        {
            "turn": 3,
            "repeats": [2, 4],
            "slow_replies": [[6, 997.0]],
            "pauses": [[1, 200.0]],
            "clarifications": [],
            "truncated_turns": [9],
            "visit": 2,
            "ok": True,
        }
    ) == [1, 2, 3, 4, 6]
    assert cited_turns(None) == [] and cited_turns({"turn": None}) == []


def test_reads_before_anything_is_evaluated(tmp_path):
    with Warehouse(tmp_path / "bare.duckdb") as w:
        assert failing_visits(w) == []
        assert score_distribution(w)["evaluators"] == []


# -- health ----------------------------------------------------------------------------------------------
def test_health_counts_and_dimensions(wh, demo_db):
    h = health(wh)
    json.dumps(h)
    spans, no_id, no_stage = _sql(
        demo_db,
        "SELECT count(*), count(*) FILTER (WHERE journey_id IS NULL), "
        "count(*) FILTER (WHERE journey_id IS NOT NULL AND stage IS NULL) FROM spans",
    )[0]
    assert h["counts"]["spans"] == spans and h["counts"]["journeys"] == 300
    assert h["missing"]["spans_without_journey_id"] == no_id
    assert h["missing"]["spans_without_stage"] == no_stage == 300  # one root span per journey
    assert {r["name"] for r in h["missing"]["without_stage_by_name"]} == {
        "journey onboarding",
        "journey support",
        "journey returns",
    }
    assert h["dimensions"]["journeys"] == ["onboarding", "returns", "support"]
    assert "trial" in h["dimensions"]["cohorts"] and "chat" in h["dimensions"]["channels"]
    assert h["evaluations"]["results"] > 0 and h["counts"]["evaluated_visits"] == h["counts"]["stage_visits"]
    assert h["window"]["journeys"] == 300


def test_health_reports_unmapped_stages_and_lag(demo_db):
    journey_map = parse_journey_map("""
[journeys.onboarding]
stages = ["sign-up", "payment", "content-prefs", "app-install"]
""")
    with Warehouse(demo_db, read_only=True, journey_map=journey_map) as w:
        last = w.query("SELECT max(ingested_at) FROM spans")[0][0].replace(tzinfo=timezone.utc)
        h = health(w, now=last + timedelta(minutes=5))
        later = health(w, now=last + timedelta(days=2))
        report = funnel(w)
    onboarding = next(o for o in h["journey_map"]["stage_order"] if o["journey"] == "onboarding")
    assert (
        onboarding["unmapped_stages"] == ["first-watch"] == list(report.journey("onboarding").unmapped_stages)
    )
    assert any("first-watch" in w for w in h["warnings"])
    assert any("support is not in the journey map" in w for w in h["warnings"])
    lag = h["ingest"]["lag_last_hour"]
    assert lag["spans"] == h["counts"]["spans"] and lag["median_s"] > 0 and lag["p95_s"] >= lag["median_s"]
    assert (
        later["ingest"]["lag_last_day"]["spans"] == 0 and later["ingest"]["lag_last_day"]["median_s"] is None
    )


def test_activity_follows_the_filters(wh, demo_db):
    trial = activity(wh, Filters(cohort="trial"))
    journeys, spans = _sql(
        demo_db, "SELECT count(DISTINCT journey_id), sum(spans) FROM stage_visits WHERE cohort = 'trial'"
    )[0]
    assert (trial["journeys"], trial["spans"]) == (journeys, spans)


# -- sources ------------------------------------------------------------------------------------------------
def test_warehouse_source_matches_the_library(demo_db, wh):
    src = WarehouseSource(demo_db)
    params = Filters(cohort="trial")
    assert src.funnel(params) == {**funnel(wh, Filters(cohort="trial")).as_dict(), "as_of_age_s": 0.0}
    assert src.journey_detail("nope") is None


def test_warehouse_source_explains_what_is_wrong(tmp_path, demo_db):
    with pytest.raises(SourceError, match="No warehouse at") as missing:
        WarehouseSource(tmp_path / "missing.duckdb").health()
    assert "journeyscope demo" in missing.value.hint

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(SourceError, match="not a journeyscope warehouse") as exc:
        WarehouseSource(empty).health()
    assert exc.value.kind == "empty"

    old = tmp_path / "old.duckdb"
    shutil.copy(demo_db, old)
    con = duckdb.connect(str(old))
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SourceError, match="older journeyscope") as exc:
        WarehouseSource(old).health()
    assert "migrate" in exc.value.hint

    garbage = tmp_path / "garbage.duckdb"
    garbage.write_text("not a database")
    with pytest.raises(SourceError):
        WarehouseSource(garbage).health()

    bad_map = tmp_path / "bad.toml"
    bad_map.write_text("[journeys.x]\nstages = 3\n")
    with pytest.raises(SourceError, match="stages"):
        WarehouseSource(demo_db, str(bad_map))


def test_warehouse_source_says_when_a_writer_holds_the_file(tmp_path, demo_db):
    locked = tmp_path / "locked.duckdb"
    shutil.copy(demo_db, locked)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
                "time.sleep(60)"
            ),
            str(locked),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(SourceError, match="another process") as exc:
            WarehouseSource(locked).health()
        assert "--api" in exc.value.hint
    finally:
        holder.kill()
        holder.wait()


def _writer_can_open(db: Path) -> bool:
    """Whether another process can open ``db`` for writing now (DuckDB refuses it while a reader holds it)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()", str(db)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def test_warehouse_source_holds_the_file_for_one_page_run_only(tmp_path, demo_db):
    db = tmp_path / "held.duckdb"
    shutil.copy(demo_db, db)
    src = WarehouseSource(db)
    params = Filters(journey="onboarding")

    def questions() -> list:
        return [
            src.filter_values(),
            src.funnel(Filters()),
            src.distribution(params, "app-install"),
            src.failing(params, "app-install", None, 100),
            src.retention(params),
        ]

    alone = questions()
    assert _writer_can_open(db)  # each question closed the file behind it
    with src.held():
        assert _writer_can_open(db)  # nothing asked yet: nothing opened
        inside = questions()
        assert not _writer_can_open(db)  # held between questions
        with src.held():  # nested: the outer hold keeps the file
            assert src.retention(params) == inside[-1]
        assert not _writer_can_open(db)
    assert inside == alone
    assert _writer_can_open(db)

    # A page run that fails still lets the file go, and a failed open holds nothing.
    with pytest.raises(RuntimeError), src.held():
        src.retention(params)
        raise RuntimeError("page failed")
    assert _writer_can_open(db)
    missing = WarehouseSource(tmp_path / "missing.duckdb")
    with missing.held():
        with pytest.raises(SourceError, match="No warehouse at"):
            missing.health()
        shutil.copy(demo_db, tmp_path / "missing.duckdb")
        assert missing.filter_values() == src.filter_values()  # asked again, not a cached failure
    assert _writer_can_open(tmp_path / "missing.duckdb")


def test_api_source_reads_the_same_dicts_as_the_warehouse(demo_db):
    direct = WarehouseSource(demo_db)
    with api_server(demo_db) as url:
        api = ApiSource(url)
        params = Filters(journey="onboarding", cohort="trial")
        served = api.funnel(params)
        assert served.pop("as_of_age_s") >= 0  # the API says how fresh its precomputed answer is
        assert served == {k: v for k, v in direct.funnel(params).items() if k != "as_of_age_s"}
        assert api.transitions(params) == direct.transitions(params)
        assert api.failing(params, "app-install", None, 5) == direct.failing(params, "app-install", None, 5)
        jid = direct.journeys("", Filters(), 1)[0]["journey_id"]
        assert api.journey_detail(jid) == direct.journey_detail(jid)
        assert api.journey_detail("no-such-journey") is None
        assert api.activity(params) == direct.activity(params)
        assert api.filter_values() == direct.filter_values()  # from /v1/filters, not a whole /v1/health


def test_api_source_asks_for_the_filter_values_alone_and_falls_back_on_an_older_server():
    asked: list[str] = []
    facts = {"counts": {"stage_visits": 3, "evaluations": 2}, "dimensions": {"journeys": ["onboarding"]}}

    def server(new: bool):
        def answer(request: httpx.Request) -> httpx.Response:
            asked.append(request.url.path)
            if request.url.path == "/v1/filters" and new:
                return httpx.Response(200, json=facts)
            if request.url.path == "/v1/health":
                return httpx.Response(200, json={**facts, "counts": {**facts["counts"], "spans": 9}, "lag": {}})
            return httpx.Response(404, json={"detail": "Not Found"})

        return httpx.MockTransport(answer)

    assert ApiSource("http://api.test", transport=server(new=True)).filter_values() == facts
    assert asked == ["/v1/filters"]
    asked.clear()
    assert ApiSource("http://api.test", transport=server(new=False)).filter_values() == facts
    assert asked == ["/v1/filters", "/v1/health"]


def test_api_source_errors_are_one_clear_sentence():
    port = free_port()  # nothing listens there
    with pytest.raises(SourceError, match="Cannot reach the journeyscope API") as exc:
        ApiSource(f"http://127.0.0.1:{port}").health()
    assert "journeyscope serve" in exc.value.hint

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/funnel":
            return httpx.Response(500, json={"detail": "database exploded"})
        if request.url.path == "/v1/health":
            return httpx.Response(401, json={"detail": "no key"})
        return httpx.Response(404, json={"detail": "nope"})

    api = ApiSource("http://api.test", transport=httpx.MockTransport(broken))
    with pytest.raises(SourceError, match="database exploded"):
        api.funnel(Filters())
    with pytest.raises(SourceError, match="refused"):
        api.health()
    with pytest.raises(SourceError, match="404"):
        api.transitions(Filters())
    assert api.journey_detail("x") is None  # an unknown journey is "not found", not an error


def test_settings_from_arguments_and_environment():
    assert load_settings([], {}).db == "journeyscope.duckdb"
    s = load_settings(["--db", "a.duckdb", "-k", "x"], {"JOURNEYSCOPE_API": "http://h:1/"})
    assert (s.db, s.api) == ("a.duckdb", None)  # --db on the command line wins over an API in the environment
    s = load_settings(["-q"], {"JOURNEYSCOPE_API": "http://h:1/", "JOURNEYSCOPE_MAP": "m.toml"})
    assert (s.api, s.map_file) == ("http://h:1", "m.toml")
    assert (
        load_settings(["--dbx", "y"], {}).db == "journeyscope.duckdb"
    )  # no abbreviations of pytest's options


def test_filter_params_round_trip():
    p = FilterParams(journey="onboarding", since="2025-05-01T00:00:00+00:00")
    assert p.query("a_") == {"a_journey": "onboarding", "a_since": "2025-05-01T00:00:00+00:00"}
    f = p.to_filters()
    assert f.journey == "onboarding" and f.since == datetime(2025, 5, 1, tzinfo=timezone.utc)
    with pytest.raises(InvalidInputError):
        FilterParams(since="yesterday").to_filters()


# -- insights and charts ------------------------------------------------------------------------------
def test_worst_stage_names_the_case_study(wh):
    report = funnel(wh).as_dict()
    onboarding = next(j for j in report["journeys"] if j["journey"] == "onboarding")
    alert = worst_stage(onboarding)
    assert alert.stage == "app-install"
    others = [s["completion_rate"] for s in onboarding["stages"] if s["stage"] != "app-install"]
    assert alert.others_min == min(others) and alert.completion < alert.others_min
    assert alert.sentence().startswith(
        f"onboarding: app-install completes {alert.completion * 100:.1f}% vs ≥ "
    )
    assert alert.hotspot and "fails" in alert.hotspot


def test_insights_on_small_inputs():
    journey = {
        "journey": "j",
        "stages": [
            {
                "stage": "a",
                "entered": 100,
                "visits": 100,
                "completion_rate": 0.9,
                "completion_rate_ci": [0.82, 0.95],
                "evaluators": [
                    {"evaluator": "friction_x", "fail_rate": 0.05, "scored": 100, "mean_score": 0.9}
                ],
            },
            {
                "stage": "b",
                "entered": 90,
                "visits": 90,
                "completion_rate": 0.7,
                "completion_rate_ci": [0.6, 0.78],
                "evaluators": [
                    {"evaluator": "friction_x", "fail_rate": 0.5, "scored": 90, "mean_score": 0.5},
                    {"evaluator": "rare", "fail_rate": 1.0, "scored": 9, "mean_score": 0.1},
                ],
            },
            {
                "stage": "c",
                "entered": 5,
                "completion_rate": 0.2,
                "completion_rate_ci": [0.04, 0.6],
                "evaluators": [],
            },
        ],
    }
    alert = worst_stage(journey)
    assert (alert.stage, alert.is_alert) == ("b", True)  # c has too few journeys to be called the worst
    assert alert.sentence() == "j: b completes 70.0% vs ≥ 90.0% at every other stage"
    # "rare" failed every visit it scored, but it scored 9, fewer than MIN_SCORED: no finding, no colour.
    assert (
        evaluator_hotspot(journey, "b")
        == "friction_x fails on 50% of 90 scored visits here vs 5% of 100 at the other stages (mean score 0.50)"
    )
    stages, evaluators, rates, sizes = fail_matrix(journey)
    assert evaluators == ["rare", "friction_x"]
    assert rates[0] == [None, None, None] and sizes[0] == [0, 9, 0]  # "rare": not enough data at b
    assert rates[1][:2] == [0.05, 0.5] and sizes[1][:2] == [100, 90]
    heat = charts.fail_heatmap(stages, evaluators, rates, sizes).to_dict()["data"][0]
    assert heat["z"][0][1] is None and heat["text"][0][1].startswith(NOT_ENOUGH)
    assert rate_text(0.816, [0.73, 0.88]) == "81.6% [73–88%]" and rate_text(None, None) == "–"
    assert rate_text(0.816, [0.73, 0.88], 120) == "81.6% [73–88%] n=120"
    assert worst_stage({"journey": "j", "stages": []}) is None


def test_every_chart_builds_from_the_demo(demo_db):
    src = WarehouseSource(demo_db)
    report = src.funnel(Filters())
    onboarding = next(j for j in report["journeys"] if j["journey"] == "onboarding")
    order = [s["stage"] for s in onboarding["stages"]]
    figures = [
        charts.funnel_chart(onboarding, "app-install"),
        charts.rate_chart(onboarding, "app-install"),
        charts.rate_chart(onboarding),
        charts.fail_heatmap(*fail_matrix(onboarding), "app-install"),
        charts.histogram_grid(
            src.distribution(Filters(journey="onboarding"), "app-install"),
            ["customer_agent_context_retention", "friction_repetition"],
        ),
        charts.retention_heatmap(src.retention(Filters()), "onboarding", order),
        charts.sankey(src.transitions(Filters()), "onboarding", order),
        charts.friction_chart(onboarding, "app-install"),
        charts.timeline(src.journey_detail(src.journeys("onboarding", Filters(), 1)[0]["journey_id"])),
        charts.compare_chart(
            src.compare(Filters(cohort="trial"), Filters(cohort="standard")), "onboarding"
        ),
    ]
    for fig in figures:
        assert fig.to_dict()["data"]
    sankey = figures[6].to_dict()["data"][0]
    assert "(exit)" in sankey["node"]["label"] and sum(sankey["link"]["value"]) > 0

"""The dashboard's pages under Streamlit's ``AppTest``: fast, no browser, every page and every bad input.

Each test runs the real entry script (``dashboard/app.py``) with the source named in the
environment, as ``journeyscope dashboard`` would pass it, and checks what the page shows:
real numbers from a known warehouse, or one clear message for an empty, older, missing or
unreachable source, never an exception.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from dashboard_support import APP, build_demo, api_server, free_port
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import funnel
from streamlit.testing.v1 import AppTest

PAGES = ["stage", "journeys", "graph", "compare", "health", "compliance"]


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.getbasetemp() / "dashboard-demo" / "demo.duckdb")


@pytest.fixture(scope="session")
def unevaluated_db(tmp_path_factory) -> Path:
    return build_demo(
        tmp_path_factory.getbasetemp() / "dashboard-demo" / "unevaluated.duckdb", evaluate=False
    )


def app(
    monkeypatch, *, db: Path | str | None = None, api: str | None = None, page: str = "overview"
) -> AppTest:
    """Run the entry script on ``page`` (AppTest cannot follow st.navigation to another page by itself)."""
    for name in ("JOURNEYSCOPE_DB", "JOURNEYSCOPE_API", "JOURNEYSCOPE_MAP", "JOURNEYSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOURNEYSCOPE_DASHBOARD_PAGE", page)
    if db is not None:
        monkeypatch.setenv("JOURNEYSCOPE_DB", str(db))
    if api is not None:
        monkeypatch.setenv("JOURNEYSCOPE_API", api)
    at = AppTest.from_file(str(APP), default_timeout=60)
    return at.run()


def messages(at: AppTest) -> dict[str, list[str]]:
    return {
        kind: [str(e.value) for e in getattr(at, kind)] for kind in ("error", "warning", "info", "exception")
    }


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_the_known_numbers_and_the_worst_stage(monkeypatch, demo_db):
    at = app(monkeypatch, db=demo_db)
    shown = messages(at)
    assert not shown["exception"] and not shown["error"], shown
    with Warehouse(demo_db, read_only=True) as wh:
        report = funnel(wh)
    assert metrics(at)["Journeys"] == f"{sum(j.total for j in report.journeys):,}"
    onboarding = report.journey("onboarding")
    install = onboarding.stage("app-install")
    others = min(s.completion.value for s in onboarding.stages if s.stage != "app-install")
    alert = next(w for w in shown["warning"] if w.startswith("**onboarding"))
    assert f"app-install completes {install.completion.value * 100:.1f}% vs ≥ {others * 100:.1f}%" in alert
    # The per-stage table carries the funnel's own counts.
    table = next(t for t in at.table if "app-install ⚠" in t.value.index)
    row = table.value.loc["app-install ⚠"]
    assert (row["entered"], row["completed"]) == (install.entered, install.completed)


def test_a_filter_changes_the_numbers(monkeypatch, demo_db):
    at = app(monkeypatch, db=demo_db)
    at.sidebar.selectbox(key="f_cohort").select("trial").run()
    assert not messages(at)["exception"]
    with Warehouse(demo_db, read_only=True) as wh:
        trial = funnel(wh, Filters(cohort="trial"))
    assert metrics(at)["Journeys"] == f"{sum(j.total for j in trial.journeys):,}"
    assert metrics(at)["Journeys"] != "300"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_errors(monkeypatch, demo_db, page):
    at = app(monkeypatch, db=demo_db, page=page)
    shown = messages(at)
    assert not shown["exception"] and not shown["error"], shown
    assert at.title and at.title[0].value


def test_stage_detail_lists_failing_visits_worst_first(monkeypatch, demo_db):
    at = app(monkeypatch, db=demo_db, page="stage")
    assert at.selectbox(key="sd_journey").value == "onboarding"
    assert at.selectbox(key="sd_stage").value == "app-install"  # the worst stage opens first
    failing = at.dataframe[0].value
    assert len(failing) > 0 and list(failing["score"]) == sorted(failing["score"])
    assert set(failing["journey_id"]).issubset(set(at.selectbox(key="sd_open_pick").options))


def test_journey_explorer_shows_a_transcript(monkeypatch, demo_db):
    with Warehouse(demo_db, read_only=True) as wh:
        jid, text = wh.query(
            "SELECT journey_id, turns[1].text FROM spans WHERE name = 'journey.turn' AND stage = 'app-install' "
            "ORDER BY journey_id, start_time LIMIT 1"
        )[0]
    at = app(monkeypatch, db=demo_db, page="journeys")
    at.text_input(key="jx_query").input(jid).run()
    assert not messages(at)["exception"]
    body = "\n".join(m.value for m in at.markdown)
    assert jid in [s.value for s in at.subheader]
    assert text.replace("'", "&#x27;").replace('"', "&quot;") in body


def test_not_evaluated_yet_is_an_explained_empty_state(monkeypatch, unevaluated_db):
    at = app(monkeypatch, db=unevaluated_db)
    shown = messages(at)
    assert not shown["exception"] and not shown["error"], shown
    assert any("journeyscope evaluate" in i for i in shown["info"])
    at = app(monkeypatch, db=unevaluated_db, page="stage")
    assert any("journeyscope evaluate" in i for i in messages(at)["info"])


def test_missing_file(monkeypatch, tmp_path):
    at = app(monkeypatch, db=tmp_path / "nowhere.duckdb")
    shown = messages(at)
    assert not shown["exception"]
    assert any("No warehouse at" in e and "journeyscope demo" in e for e in shown["error"])


def test_empty_database(monkeypatch, tmp_path):
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    at = app(monkeypatch, db=empty)
    shown = messages(at)
    assert not shown["exception"] and not shown["error"]
    assert any("not a journeyscope warehouse" in i for i in shown["info"])


def test_warehouse_with_no_journeys_yet(monkeypatch, tmp_path):
    fresh = tmp_path / "fresh.duckdb"
    Warehouse(fresh).close()
    at = app(monkeypatch, db=fresh)
    shown = messages(at)
    assert not shown["exception"] and not shown["error"], shown
    assert any("No stage visits" in i for i in shown["info"])
    for page in PAGES:
        at = app(monkeypatch, db=fresh, page=page)
        assert not messages(at)["exception"] and not messages(at)["error"], (page, messages(at))


def test_older_schema(monkeypatch, tmp_path, demo_db):
    old = tmp_path / "old.duckdb"
    shutil.copy(demo_db, old)
    con = duckdb.connect(str(old))
    con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    at = app(monkeypatch, db=old)
    shown = messages(at)
    assert not shown["exception"]
    assert any("older journeyscope" in e and "migrate" in e for e in shown["error"])


def test_api_down(monkeypatch):
    at = app(monkeypatch, api=f"http://127.0.0.1:{free_port()}")
    shown = messages(at)
    assert not shown["exception"]
    assert any("Cannot reach the journeyscope API" in e for e in shown["error"])
    at = app(monkeypatch, api=f"http://127.0.0.1:{free_port()}", page="journeys")
    assert not messages(at)["exception"]


def test_api_mode_shows_the_same_overview(monkeypatch, demo_db):
    direct = app(monkeypatch, db=demo_db)
    with api_server(demo_db) as url:
        via_api = app(monkeypatch, api=url)
        assert not messages(via_api)["exception"] and not messages(via_api)["error"]
        assert metrics(via_api) == metrics(direct)
        assert messages(via_api)["warning"] == messages(direct)["warning"]
        for page in PAGES:
            via_api = app(monkeypatch, api=url, page=page)
            assert not messages(via_api)["exception"] and not messages(via_api)["error"], (
                page,
                messages(via_api),
            )


def test_compliance_page_shows_the_redaction_counts(monkeypatch, demo_db):
    from journeyscope.warehouse.compliance import compliance_view

    with Warehouse(demo_db, read_only=True) as wh:
        cur = wh.cursor()
        expected = compliance_view(cur)["totals"]
        cur.close()
    at = app(monkeypatch, db=demo_db, page="compliance")
    shown = metrics(at)
    assert shown["Values redacted on ingest"] == f"{expected['values_redacted']:,}"
    assert expected["values_redacted"] > 0  # the simulated customers give e-mail addresses and phone numbers
    assert shown["Journeys that carried PII"] == f"{expected['journeys_with_pii']:,}"


def test_stage_detail_shows_what_customers_reported_and_which_evaluator_predicts_it(monkeypatch, demo_db):
    at = app(monkeypatch, db=demo_db, page="stage")
    assert not messages(at)["exception"]
    with Warehouse(demo_db, read_only=True) as wh:
        install = funnel(wh).journey("onboarding").stage("app-install").feedback
    assert install is not None and install.csat.n > 0  # the demo's customers answer surveys
    assert metrics(at)["CSAT (1-5)"] == f"{install.csat.mean:.2f}"
    assert metrics(at)["Responses"] == f"{install.responses:,}"
    agreement = next(d.value for d in at.dataframe if "AUROC [95% CI]" in d.value.columns)
    assert "customer_agent_conversation_quality" in set(agreement["evaluator"])
    assert (agreement["rated visits"] <= install.csat.n).all()
    # the overview's stage table carries the same CSAT
    overview = app(monkeypatch, db=demo_db)
    table = next(t for t in overview.table if "app-install ⚠" in t.value.index)
    assert table.value.loc["app-install ⚠"]["CSAT [95% CI]"].startswith(f"{install.csat.mean:.2f} [")

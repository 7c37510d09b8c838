"""The dashboard in a real browser: ``streamlit run`` against a known warehouse, driven by headless chromium.

Debian's chromium through Playwright's Python package (the system browser, never a downloaded
one). Checks what a user sees: the overview's numbers equal ``funnel()`` on the same file, a
sidebar filter changes them, a failing visit links through to its conversation, and the journey
explorer shows a transcript with the cited turns highlighted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    build_demo,
    chromium_available,
    streamlit_server,
    wait_for_app,
)
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import funnel

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True, scope="module")
def _browser_present() -> None:
    """A missing browser fails the tests loudly: the README's test line installs it, so a skip would hide a gap."""
    missing = chromium_available()
    if missing is not None:
        pytest.fail(f"cannot run the browser tests: {missing}", pytrace=False)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.getbasetemp() / "dashboard-demo" / "demo.duckdb")


@pytest.fixture(scope="module")
def server(demo_db) -> Iterator[str]:
    with streamlit_server(demo_db) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def metric(pg: Any, label: str) -> str:
    """The value of the ``st.metric`` called ``label``."""
    box = pg.locator(
        '[data-testid="stMetric"]', has=pg.locator('[data-testid="stMetricLabel"]', has_text=label)
    )
    return box.locator('[data-testid="stMetricValue"]').first.inner_text().strip()


def table_row(pg: Any, stage: str) -> list[str]:
    """The cells of the first funnel-table row of ``stage`` (marked "⚠" or not)."""
    for row in pg.locator('[data-testid="stTable"] tr').all():
        cells = [c.strip() for c in row.locator("th, td").all_inner_texts()]
        if cells and cells[0] in (stage, f"{stage} ⚠"):
            return cells
    raise AssertionError(f"no table row for {stage}")


def no_errors(pg: Any) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0
    errors = pg.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not errors, errors


def test_overview_shows_the_funnel_of_the_known_warehouse(page, server, demo_db):
    with Warehouse(demo_db, read_only=True) as wh:
        report = funnel(wh)
    page.goto(server)
    wait_for_app(page)
    page.locator('[data-testid="stTable"]').first.wait_for()
    no_errors(page)
    assert metric(page, "Journeys") == f"{sum(j.total for j in report.journeys):,}"
    install = report.journey("onboarding").stage("app-install")
    cells = table_row(page, "app-install")
    assert cells[0] == "app-install ⚠"  # the worst stage is marked
    assert cells[1:4] == [str(install.entered), str(install.completed), str(install.dropped)]
    assert cells[4].startswith(f"{install.completion.value * 100:.1f}%")
    alert = page.locator(
        '[data-testid="stAlertContentWarning"]', has_text="onboarding: app-install completes"
    )
    assert f"app-install completes {install.completion.value * 100:.1f}%" in alert.inner_text()
    charts = page.locator(".js-plotly-plot")
    charts.first.wait_for()  # plotly's bundle loads lazily
    assert charts.count() >= 4


def test_a_cohort_filter_changes_the_numbers(page, server, demo_db):
    with Warehouse(demo_db, read_only=True) as wh:
        trial = funnel(wh, Filters(cohort="trial"))
    page.goto(server)
    wait_for_app(page)
    page.get_by_role("combobox", name="Cohort").click()
    page.get_by_role("option", name="trial", exact=True).click()
    expected = f"{sum(j.total for j in trial.journeys):,}"
    page.wait_for_function(
        """(expected) => [...document.querySelectorAll('[data-testid="stMetric"]')].some(
               m => m.innerText.startsWith('Journeys') && m.innerText.trim().endsWith(expected))""",
        arg=expected,
    )
    wait_for_app(page)
    no_errors(page)
    assert metric(page, "Journeys") == expected != "300"
    install = trial.journey("onboarding").stage("app-install")
    assert table_row(page, "app-install")[1] == str(install.entered)


def test_journey_explorer_shows_the_transcript_with_cited_turns(page, server, demo_db):
    with Warehouse(demo_db, read_only=True) as wh:
        jid, text = wh.query(
            "SELECT e.journey_id, s.turns[1].text FROM evaluations e JOIN spans s ON s.journey_id = e.journey_id "
            "WHERE e.evaluator = 'friction_repetition' AND e.passed = false AND s.name = 'journey.turn' "
            "AND s.stage = e.stage ORDER BY e.journey_id, s.start_time LIMIT 1"
        )[0]
    page.goto(f"{server}/journeys?journey_id={jid}")
    wait_for_app(page)
    no_errors(page)
    page.get_by_role("heading", name=jid).first.wait_for()
    turns = page.locator(".js-turn")
    turns.nth(5).wait_for()
    assert text in turns.all_inner_texts()[0] or any(text in t for t in turns.all_inner_texts())
    cited = page.locator(".js-turn.js-cited")
    assert cited.count() >= 1 and "cited by" in cited.first.inner_text()
    page.locator(".js-plotly-plot").first.wait_for()  # the timeline


def test_a_failing_visit_opens_its_conversation(page, server):
    page.goto(f"{server}/stage")
    wait_for_app(page)
    page.get_by_role("button", name="Open conversation →").wait_for()
    no_errors(page)
    picked = page.get_by_role("combobox", name="Or open a journey").input_value()
    page.get_by_role("button", name="Open conversation →").click()
    page.wait_for_url(re.compile(r"/journeys\?journey_id="))
    wait_for_app(page)
    assert picked in page.url
    page.get_by_role("heading", name=picked).first.wait_for()
    page.locator(".js-turn").first.wait_for()


@pytest.mark.parametrize("path", ["graph", "compare", "health"])
def test_other_pages_render(page, server, path):
    page.goto(f"{server}/{path}")
    wait_for_app(page)
    page.locator("h1").first.wait_for()
    page.locator(".js-plotly-plot, [data-testid='stTable']").first.wait_for()
    no_errors(page)

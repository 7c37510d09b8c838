"""The dashboard's Review page: label visits from the queue (file and API mode), see agreement, adopt a threshold;
and in headless chromium, the keyboard: one key press stores a verdict and brings up the next visit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import APP, CHROMIUM, CHROMIUM_ARGS, api_server, chromium_available, streamlit_server, wait_for_app
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.reviews import add_reviews, review_queue
from review_support import QUALITY, RESOLUTION, build_star, star_reviews
from streamlit.testing.v1 import AppTest


@pytest.fixture(scope="module")
def star_db(tmp_path_factory) -> Path:
    return build_star(tmp_path_factory.mktemp("review-page"))


@pytest.fixture
def db(star_db, tmp_path) -> Path:
    copy = tmp_path / "star.duckdb"
    shutil.copy(star_db, copy)
    return copy


def review_page(monkeypatch, *, db: Path | None = None, api: str | None = None) -> AppTest:
    for name in ("JOURNEYSCOPE_DB", "JOURNEYSCOPE_API", "JOURNEYSCOPE_MAP", "JOURNEYSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOURNEYSCOPE_DASHBOARD_PAGE", "review")
    monkeypatch.setenv("JOURNEYSCOPE_ACTOR", "tester")
    if db is not None:
        monkeypatch.setenv("JOURNEYSCOPE_DB", str(db))
    if api is not None:
        monkeypatch.setenv("JOURNEYSCOPE_API", api)
    return AppTest.from_file(str(APP), default_timeout=60).run()


def problems(at: AppTest) -> list[str]:
    return [str(e.value) for e in (*at.exception, *at.error)]


def table(at: AppTest, column: str) -> Any:
    """The first dataframe shown with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def button(at: AppTest, prefix: str) -> Any:
    return next(b for b in at.button if b.label.startswith(prefix))


def test_reviewing_from_the_queue_stores_each_verdict_and_moves_on(db, monkeypatch):
    with Warehouse(db, read_only=True) as warehouse:
        expected = review_queue(warehouse, QUALITY, limit=3)
    at = review_page(monkeypatch, db=db)
    assert not problems(at)
    at.selectbox(key="rv_evaluator").select(QUALITY).run()
    head = [m.value for m in at.markdown]
    assert any(expected[0]["journey_id"] in h and expected[0]["stage"] in h for h in head)
    assert any('class="js-turn' in h for h in head)  # the visit's transcript
    at.text_input(key="rv_note").input("agent never confirmed the booking")
    button(at, "Fail").click().run()
    assert not problems(at)
    assert [s.value for s in at.success][0].startswith(f"Saved: fail for {expected[0]['journey_id']}")
    with Warehouse(db, read_only=True) as warehouse:  # the queue as the page reads it after the first verdict
        after = review_queue(warehouse, QUALITY, limit=3)
    assert expected[0]["journey_id"] not in {q["journey_id"] for q in after if q["stage"] == expected[0]["stage"]}
    button(at, "Skip").click().run()
    button(at, "Pass").click().run()
    assert not problems(at)
    with Warehouse(db, read_only=True) as warehouse:
        stored = warehouse.query("SELECT journey_id, stage, visit, passed, note, reviewer, source FROM reviews ORDER BY id")
    assert stored == [
        (expected[0]["journey_id"], expected[0]["stage"], expected[0]["visit"], False,
         "agent never confirmed the booking", "tester", "dashboard"),
        (after[1]["journey_id"], after[1]["stage"], after[1]["visit"], True, None, "tester", "dashboard"),
    ]  # the skipped visit got no review, and the next came up after each key


def test_agreement_tab_shows_the_reviews_and_adopts_a_threshold(db, monkeypatch):
    reviews = star_reviews(db)
    with Warehouse(db) as warehouse:
        add_reviews(warehouse, enumerate(reviews, 1), reviewer="star", source="import")
    at = review_page(monkeypatch, db=db)
    at.selectbox(key="rv_evaluator").select(RESOLUTION).run()
    frame = table(at, "AUROC")
    overall = frame[frame["scope"] == "overall"].iloc[0]
    assert overall["n"] == len(reviews) and overall["engine"] == "local"
    button(at, "Score the reviewed visits").click().run()
    assert not problems(at) and f"local: 0 scored, {len(reviews)} already scored" in at.success[0].value
    at.number_input(key="rv_adopt_threshold").set_value(0.42)
    button(at, "Adopt threshold").click().run()
    assert [e.value for e in at.error] == ["Say why: the reason is kept with the version."]
    at.text_input(key="rv_adopt_reason").input("STAR labels, 100 visits")
    button(at, "Adopt threshold").click().run()
    assert not problems(at)
    assert any("as version 1" in s.value for s in at.success)
    with Warehouse(db, read_only=True) as warehouse:
        assert warehouse.query("SELECT version, threshold, actor, reason FROM evaluator_thresholds") == [
            (1, 0.42, "tester", "STAR labels, 100 visits")]
    history = table(at, "reason")
    assert list(history["threshold"]) == [0.42]


def test_in_api_mode_verdicts_go_over_http(db, monkeypatch):
    with api_server(db) as url:
        at = review_page(monkeypatch, api=url)
        assert not problems(at)
        at.selectbox(key="rv_evaluator").select(QUALITY).run()
        button(at, "Pass").click().run()
        assert not problems(at) and at.success[0].value.startswith("Saved: pass for")
        summary = httpx.get(f"{url}/v1/reviews/summary", timeout=10).json()["evaluators"]
    assert next(e for e in summary if e["evaluator"] == QUALITY)["reviewed"] == 1


@pytest.mark.browser
@pytest.mark.slow
def test_one_key_press_stores_a_verdict_in_the_browser(db):
    missing = chromium_available()
    if missing is not None:
        pytest.fail(f"cannot run the browser tests: {missing}", pytrace=False)
    from playwright.sync_api import sync_playwright

    with Warehouse(db, read_only=True) as warehouse:
        first = review_queue(warehouse, RESOLUTION, limit=1)[0]  # the page opens on the first evaluator
    with streamlit_server(db) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/review")
            wait_for_app(page)
            page.get_by_text(first["journey_id"], exact=False).first.wait_for()
            page.keyboard.press("f")
            page.get_by_text(f"Saved: fail for {first['journey_id']}").wait_for()
            wait_for_app(page)
            note = page.get_by_label("Note (optional)")
            note.click()
            page.keyboard.type("paid on the second try")  # P and F typed into the note box are text, not verdicts
            page.keyboard.press("Tab")  # the documented way out of the box (Esc keeps the focus there)
            page.keyboard.press("p")
            page.get_by_text("Saved: pass for").wait_for()
        finally:
            browser.close()
    with Warehouse(db, read_only=True) as warehouse:
        stored = warehouse.query("SELECT journey_id, stage, visit, passed, note, source FROM reviews ORDER BY id")
    key = (first["journey_id"], first["stage"], first["visit"])
    assert len(stored) == 2 and stored[0] == (*key, False, None, "dashboard")
    # the second key press reviewed the next visit, with the note typed before it
    assert stored[1][:3] != key and stored[1][3:] == (True, "paid on the second try", "dashboard")

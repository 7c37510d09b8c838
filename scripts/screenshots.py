"""Regenerate the dashboard screenshots in ``docs/screenshots/`` from a demo warehouse.

Builds (or reuses, with ``--db``) an evaluated demo warehouse, starts the dashboard headless on
127.0.0.1 and photographs every page with Debian's chromium through Playwright (the system
browser: ``apt-get install -y chromium`` and ``pip install playwright``; never
``playwright install``).

    python scripts/screenshots.py [--db PATH] [--journeys 2000] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from journeyscope.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, wait_until_settled

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1440
MAX_HEIGHT = 4200



def build(db: Path, journeys: int) -> None:
    """An evaluated demo warehouse: the case study's onboarding journey included."""
    from journeyscope.demo import run_demo
    from journeyscope.simulator import SimulationConfig
    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.evaluations import evaluate_pending

    started = time.perf_counter()
    result = run_demo(db, SimulationConfig(journeys=journeys, seed=7), fresh=True)
    if getattr(result, "evaluation", None) is None:  # a demo that does not evaluate by itself
        with Warehouse(db) as wh:
            evaluate_pending(wh)
    print(f"built {db} ({journeys} journeys) in {time.perf_counter() - started:.0f} s")


def example_journey(db: Path) -> str:
    """An onboarding journey whose app-install visit failed an evaluator: the conversation that shows it."""
    from collections import Counter

    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.reader import Reader

    with Warehouse(db, read_only=True) as wh:
        reader = Reader(wh)
        failed = Counter(f["journey_id"] for f in reader.failing(stage="app-install", limit=1000))
        if failed:
            return min(failed, key=lambda journey_id: (-failed[journey_id], journey_id))
        return str(reader.journeys(limit=1)[0]["journey_id"])


def bridge_day(db: Path) -> str:
    """The day the demo's app-install context bridge shipped: day 10 after its first visit."""
    from datetime import datetime, timedelta

    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.reader import Reader

    with Warehouse(db, read_only=True) as wh:
        first = Reader(wh).filter_values()["dimensions"]["first_visit_at"]
    return str((datetime.fromisoformat(first.replace("Z", "+00:00")) + timedelta(days=10)).date())


def shoot(page: object, url: str, target: Path) -> None:
    """Load ``url``, let it settle, grow the window to the page's height and save a PNG."""
    page.set_viewport_size({"width": WIDTH, "height": 1000})  # type: ignore[attr-defined]
    page.goto(url)  # type: ignore[attr-defined]
    wait_until_settled(page, timeout_ms=120_000, quiet_ms=1200)
    height = page.evaluate(  # type: ignore[attr-defined]
        "() => document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight"
    )
    page.set_viewport_size({"width": WIDTH, "height": min(MAX_HEIGHT, int(height) + 120)})  # type: ignore[attr-defined]
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]  # plotly redraws at the new size
    page.screenshot(path=str(target))  # type: ignore[attr-defined]
    print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="Use this (evaluated) warehouse instead of building a demo.")
    parser.add_argument(
        "--journeys", type=int, default=2000, help="Journeys in the demo built (default 2000)."
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print(
            "needs the playwright package: pip install playwright (and apt-get install -y chromium)",
            file=sys.stderr,
        )
        return 1
    from journeyscope.dashboard.launch import background

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "demo.duckdb"
        if args.db is None:
            build(db, args.journeys)
        journey = example_journey(db)
        pages = {
            "overview": "",
            "stage": "stage?journey=onboarding&stage=app-install",
            "journey": f"journeys?journey_id={journey}",
            "graph": "graph",
            # Before and after the context bridge ships (day 10 of the demo's 14).
            "compare": f"compare?split={bridge_day(db)}",
            "health": "health",
            "compliance": "compliance",
        }
        with background(db=str(db)) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            for name, path in pages.items():
                shoot(page, f"{url}/{path}", args.out / f"{name}.png")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

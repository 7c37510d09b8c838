"""How long each dashboard page takes to settle in a real browser, cold and warm, and the server's memory.

Starts the real dashboard (``streamlit run`` through :func:`journeyscope.dashboard.launch.background_process`,
as ``journeyscope dashboard --db FILE`` does) on a warehouse and drives Debian's headless chromium with
Playwright. For every page: **cold** is the first visit on a freshly started server (nothing cached by the
dashboard; the file is in the OS page cache after the first server), **warm** the best of a few later visits
in new browser sessions (the answers come from the dashboard's cache). A page has settled when the script
stopped running and the page held still (:func:`journeyscope.dashboard.browser.wait_until_settled`); the
quiet period that proves it is subtracted from the times. RSS is the server process's resident memory after
its page's visits, and its peak. "script" is the part of a visit the server spent running the page script
(Streamlit's script state, from the first "running" to "notRunning"); the rest is loading and drawing in the
browser, which on a busy 2-core machine is a second or more of every visit whatever the data.

    python benchmarks/bench_dashboard.py                       # 10,000 journeys, built once (about a minute)
    python benchmarks/bench_dashboard.py --journeys 1000000    # the million-journey warehouse of bench_funnel
    python benchmarks/bench_funnel.py --evaluated    # then, the same million journeys with evaluator scores:
    python benchmarks/bench_dashboard.py --db benchmarks/.data/funnel-1000000-evaluated.duckdb
    python benchmarks/bench_dashboard.py --db FILE [--map journeys.toml] [--pages overview,graph]
    python benchmarks/bench_dashboard.py --demo 2000 --pages overview   # the demo's warehouse, scored
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from journeyscope.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, wait_until_settled
from journeyscope.dashboard.launch import background_process
from journeyscope.demo import DEMO_MAP

sys.path.insert(0, str(Path(__file__).parent))
import bench_funnel  # the synthetic warehouse and its journey map

QUIET_MS = 700
#: Every page's URL path, in the navigation's order (``dashboard/app.py`` runs the app when imported).
PAGES = ("overview", "stage", "journeys", "graph", "compare", "health", "compliance")


def _rss_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, in MiB (Linux ``/proc``)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# Records when the app's script state changes, so the time the server spent running the page script
# (first "running" to the last "notRunning") can be told apart from loading and drawing in the browser.
_WATCH_SCRIPT_STATE = """
window.__jsStates = [];
new MutationObserver(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    const last = window.__jsStates[window.__jsStates.length - 1];
    if (state && (!last || last[0] !== state)) window.__jsStates.push([state, performance.now()]);
}).observe(document, {subtree: true, attributes: true, childList: true});
"""


def _script_seconds(states: list[list[Any]]) -> float | None:
    """From the first ``running`` to the ``notRunning`` after the last one (None if never seen running)."""
    runs = [t for s, t in states if s == "running"]
    if not runs:
        return None
    ends = [t for s, t in states if s == "notRunning" and t > runs[-1]]
    return (ends[0] - runs[0]) / 1000 if ends else None


def _visit(browser: Any, url: str, timeout_ms: int) -> dict[str, Any]:
    """One visit in a new browser session: seconds until settled, seconds the script ran, an error shown."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(_WATCH_SCRIPT_STATE)
    page = context.new_page()
    try:
        started = time.perf_counter()
        page.goto(url)
        wait_until_settled(page, timeout_ms=timeout_ms, quiet_ms=QUIET_MS)
        elapsed = time.perf_counter() - started - QUIET_MS / 1000
        script = _script_seconds(page.evaluate("window.__jsStates"))
        error = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        shown = error.first.inner_text()[:160] if error.count() else None
        return {"settled": elapsed, "script": script, "error": shown}
    finally:
        context.close()


def measure(db: Path, map_file: str | None, pages: list[str], warm_rounds: int, timeout_s: float) -> list[dict[str, Any]]:
    """Cold and warm settle times and server memory for each page (a fresh server per page)."""
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            for name in pages:
                with background_process(db=str(db), map_file=map_file, timeout=120) as (url, proc):
                    page_url = f"{url}/{name}"
                    cold = _visit(browser, page_url, int(timeout_s * 1000))
                    warm = [_visit(browser, page_url, int(timeout_s * 1000)) for _ in range(warm_rounds)]
                    rss, peak = _rss_mib(proc.pid)
                row = {
                    "page": name,
                    "cold_s": cold["settled"],
                    "cold_script_s": cold["script"],
                    "warm_s": min(w["settled"] for w in warm),
                    "warm_script_s": min((w["script"] for w in warm if w["script"] is not None), default=None),
                    "rss_mib": rss,
                    "peak_mib": peak,
                    "error": cold["error"],
                }
                results.append(row)
                print(
                    f"  {name:<11} cold {row['cold_s']:6.2f} s (script {_s(row['cold_script_s'])})  "
                    f"warm {row['warm_s']:5.2f} s (script {_s(row['warm_script_s'])})  "
                    f"RSS {rss:5.0f} MiB (peak {peak:5.0f})" + (f"  ERROR: {cold['error']}" if cold["error"] else ""),
                    flush=True,
                )
        finally:
            browser.close()
    return results


def _check_schema(db: Path, map_file: str | None, upgrade: bool) -> None:
    """A file of an older schema would only show the dashboard's "open it once for writing" page: say so first."""
    from journeyscope.warehouse import Warehouse
    from journeyscope.warehouse.journey_map import load_journey_map

    from journeyscope.errors import WarehouseError

    journey_map = load_journey_map(map_file)
    try:
        Warehouse(db, read_only=True, journey_map=journey_map).close()
    except WarehouseError as exc:
        if not upgrade:
            sys.exit(f"{exc}\n(rerun with --upgrade to migrate it; stage visits are derived again, minutes at 1M)")
        started = time.perf_counter()
        Warehouse(db, journey_map=journey_map).close()
        print(f"migrated {db} in {time.perf_counter() - started:.0f} s")


def _demo_warehouse(journeys: int) -> Path:
    """The demo's warehouse of ``journeys`` journeys (seed 7, scored), as ``journeyscope demo`` writes it."""
    from journeyscope.demo import run_demo
    from journeyscope.simulator import SimulationConfig

    db = Path(__file__).parent / ".data" / f"demo-{journeys}.duckdb"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        partial = db.with_suffix(".partial.duckdb")
        partial.unlink(missing_ok=True)
        run_demo(partial, SimulationConfig(journeys=journeys))
        partial.rename(db)
    return db


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| page | cold settled (s) | cold script (s) | warm settled (s) | warm script (s) | server RSS (MiB) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['page']} | {_s(r['cold_s'])} | {_s(r['cold_script_s'])} | {_s(r['warm_s'])} | "
            f"{_s(r['warm_script_s'])} | {r['rss_mib']:.0f} | {r['peak_mib']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="warehouse file (default: bench_funnel's of --journeys journeys)")
    parser.add_argument("--journeys", type=int, default=10_000, help="size of the default warehouse")
    parser.add_argument("--demo", type=int, metavar="N",
                        help="the warehouse `journeyscope demo --journeys N` writes (built once, scored)")
    parser.add_argument("--map", help="journey map file (default: bench_funnel's map for its warehouses)")
    parser.add_argument("--pages", default=",".join(PAGES), help="comma-separated")
    parser.add_argument("--warm-rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a page may take to settle")
    parser.add_argument(
        "--upgrade", action="store_true", help="migrate a warehouse of an older schema first (opens it for writing)"
    )
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="js-bench-dashboard-"))
    try:
        db = args.db
        if args.demo:
            db, args.map = _demo_warehouse(args.demo), args.map or str(DEMO_MAP)
        if db is None:
            db = Path(bench_funnel.__file__).parent / ".data" / f"funnel-{args.journeys}.duckdb"
            if not db.exists():
                bench_funnel.build(db, args.journeys)
        map_file = args.map
        if map_file is None and db.name.startswith("funnel-"):
            map_file = str(tmp / "journeys.toml")
            Path(map_file).write_text(bench_funnel.MAP)
        # bench_funnel's own cached files are upgraded without asking; a file named with --db only when told.
        _check_schema(db, map_file, args.upgrade or args.db is None)
        pages = [p.strip() for p in args.pages.split(",") if p.strip()]
        print(f"dashboard on {db} ({db.stat().st_size / 2**20:,.0f} MiB), map {map_file or 'none'}")
        results = measure(db, map_file, pages, args.warm_rounds, args.timeout)
        print()
        print(_table(results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

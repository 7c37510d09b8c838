"""Shared by the dashboard tests: a known demo warehouse, a fake eval API, a Streamlit server.

The demo warehouse is built once per test session (300 journeys, seed 7, evaluated with the
local engine) and copied for tests that need to change it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from journeyscope.dashboard.source import FilterParams, SourceError, WarehouseSource

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "dashboard" / "app.py"
JOURNEYS = 300
SEED = 7
#: Fixed end of the simulated period, so every run sees the same journeys.
END = datetime(2025, 6, 1, tzinfo=timezone.utc)


def build_demo(path: Path, evaluate: bool = True) -> Path:
    """A demo warehouse of :data:`JOURNEYS` journeys (and their evaluations) at ``path``, built once."""
    if path.exists():
        return path
    import inspect

    from journeyscope.warehouse import Warehouse

    from journeyscope.demo import run_demo
    from journeyscope.simulator import SimulationConfig

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.duckdb")
    partial.unlink(missing_ok=True)
    config = SimulationConfig(journeys=JOURNEYS, seed=SEED, end=END, bridge_day=10)
    if "evaluate" in inspect.signature(run_demo).parameters:  # the demo evaluates by itself
        run_demo(partial, config, evaluate=evaluate)
    else:
        run_demo(partial, config)
        if evaluate:
            from journeyscope.warehouse.evaluations import evaluate_pending

            with Warehouse(partial) as wh:
                evaluate_pending(wh)
    partial.rename(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- a fake eval API: the routes the real one will serve, answered by the library -------------------
class _Handler(BaseHTTPRequestHandler):
    source: WarehouseSource

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        params = FilterParams(**{k: q.get(k) for k in ("journey", "cohort", "channel", "since", "until")})
        side = lambda p: FilterParams(
            cohort=q.get(f"{p}_cohort"),
            since=q.get(f"{p}_since"),
            until=q.get(f"{p}_until"),
            journey=q.get(f"{p}_journey"),
            channel=q.get(f"{p}_channel"),
        )
        src = self.source
        routes = {
            "/v1/health": lambda: {**src.health(), "window": src.activity(params)},
            "/v1/funnel": lambda: src.funnel(params),
            "/v1/flows/transitions": lambda: src.transitions(params),
            "/v1/outcomes": lambda: src.outcomes(params),
            "/v1/flows/retention": lambda: src.retention(params),
            "/v1/compare": lambda: src.compare(side("a"), side("b")),
            "/v1/journeys": lambda: src.search(q.get("q", ""), params, int(q.get("limit", 20))),
            "/v1/evaluations/failing": lambda: src.failing(
                params, q.get("stage"), q.get("evaluator"), int(q.get("limit", 50))
            ),
            "/v1/evaluations/distribution": lambda: src.distribution(
                params, q.get("stage"), q.get("evaluator")
            ),
        }
        try:
            if url.path.startswith("/v1/journeys/"):
                body: Any = src.journey(unquote(url.path.removeprefix("/v1/journeys/")))
                if body is None:
                    return self._send(404, {"detail": "no such journey"})
            elif url.path in routes:
                body = routes[url.path]()
            else:
                return self._send(404, {"detail": "not found"})
        except SourceError as exc:
            return self._send(500, {"detail": str(exc)})
        self._send(200, body)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def fake_api(db: Path) -> Iterator[str]:
    """An HTTP server on a free port serving the eval API's read routes from ``db``; yields its URL."""
    handler = type("Handler", (_Handler,), {"source": WarehouseSource(db)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- the real app in a real server ------------------------------------------------------------------
def streamlit_server(
    db: Path | None = None, api: str | None = None
) -> contextlib.AbstractContextManager[str]:
    """``streamlit run dashboard/app.py`` headless on 127.0.0.1 and a free port; yields its URL."""
    from journeyscope.dashboard.launch import background

    return background(db=str(db) if db else None, api=api)


CHROMIUM = os.environ.get("JOURNEYSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_available() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def wait_for_app(page: Any, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has run the script and the page stopped changing.

    "Not running" alone is not enough: before the first run starts and between a widget
    change and its rerun the app also reports it, so the page must also hold content and
    keep the same number of elements for a moment.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            const n = document.querySelectorAll('[data-testid="stMainBlockContainer"] *').length;
            const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stStatusWidget"]') && n > 20;
            const w = window.__jsWait || (window.__jsWait = {n: -1, since: 0});
            if (!idle || n !== w.n) { w.n = n; w.since = Date.now(); return false; }
            return Date.now() - w.since > 700;
        }""",
        timeout=timeout_ms,
        polling=100,
    )

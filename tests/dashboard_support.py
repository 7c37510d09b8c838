"""Shared by the dashboard tests: a known demo warehouse, a fake eval API, a Streamlit server.

The demo warehouse is built once per test session (300 journeys, seed 7, evaluated with the
local engine) and copied for tests that need to change it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from journeyscope.dashboard.browser import CHROMIUM, CHROMIUM_ARGS, wait_until_settled



ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "src" / "journeyscope" / "dashboard" / "app.py"
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


# -- the real eval API -------------------------------------------------------------------------------
@contextlib.contextmanager
def api_server(db: Path) -> Iterator[str]:
    """The real eval API (the app of ``journeyscope serve``) on a copy of ``db``; yields its base URL.

    A copy, because the server is its file's one writer and the tests also read the original directly.
    """
    from receiver_support import running_server

    from journeyscope.server.settings import ServerSettings

    with tempfile.TemporaryDirectory(prefix="js-api-") as folder:
        copy = Path(folder) / db.name
        shutil.copy(db, copy)
        with running_server(ServerSettings(db=str(copy), evaluate_online=False)) as server:
            yield server.base_url


# -- the real app in a real server ------------------------------------------------------------------
def streamlit_server(
    db: Path | None = None, api: str | None = None
) -> contextlib.AbstractContextManager[str]:
    """``streamlit run dashboard/app.py`` headless on 127.0.0.1 and a free port; yields its URL."""
    from journeyscope.dashboard.launch import background

    return background(db=str(db) if db else None, api=api)




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
    """Wait until Streamlit has run the script and the page stopped changing."""
    wait_until_settled(page, timeout_ms=timeout_ms)

"""Starting the dashboard: ``streamlit run`` on :mod:`journeyscope.dashboard.app` with our settings.

Used by ``journeyscope dashboard`` and ``journeyscope demo``. Streamlit runs in
a child process (its own server, signal handling and file watcher), bound to
127.0.0.1 unless told otherwise; settings travel after ``--`` and in the
environment (see :mod:`journeyscope.dashboard.settings`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from journeyscope.errors import ConfigError

__all__ = ["APP", "command", "run"]

#: The entry script ``streamlit run`` executes.
APP = Path(__file__).with_name("app.py")


def command(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    open_browser: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``streamlit run`` command line for these settings."""
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port),
        "--server.headless", "false" if open_browser else "true",
        "--browser.gatherUsageStats", "false",
        # The dashboard shows its own one-line errors; never a traceback in the page.
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "minimal",
        "--server.fileWatcherType", "none",
        "--theme.base", "light",
        *extra,
        "--",
    ]
    if api:
        cmd += ["--api", api]
    elif db:
        cmd += ["--db", db]
    if map_file:
        cmd += ["--map", map_file]
    return cmd


def run(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    open_browser: bool = True,
) -> int:
    """Run the dashboard in the foreground until interrupted; return streamlit's exit code."""
    try:
        import plotly  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the dashboard needs the dashboard extra: pip install 'journeyscope[dashboard]' ({exc})")
    env = dict(os.environ)
    if api:
        env["JOURNEYSCOPE_API"] = api
    if db:
        env["JOURNEYSCOPE_DB"] = db
    if map_file:
        env["JOURNEYSCOPE_MAP"] = map_file
    cmd = command(db=db, api=api, map_file=map_file, host=host, port=port, open_browser=open_browser)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0

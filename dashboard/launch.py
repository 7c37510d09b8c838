"""Starting the dashboard: ``streamlit run`` on :mod:`journeyscope.dashboard.app` with our settings.

Used by ``journeyscope dashboard`` and ``journeyscope demo``. Streamlit runs in
a child process (its own server, signal handling and file watcher), bound to
127.0.0.1 unless told otherwise; settings travel after ``--`` and in the
environment (see :mod:`journeyscope.dashboard.settings`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from journeyscope.errors import ConfigError

__all__ = ["APP", "background", "background_process", "command", "run"]

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
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "false" if open_browser else "true",
        "--browser.gatherUsageStats",
        "false",
        # The dashboard shows its own one-line errors; never a traceback in the page.
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--server.fileWatcherType",
        "none",
        "--theme.base",
        "light",
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
        raise ConfigError(
            f"the dashboard needs the dashboard extra: pip install 'journeyscope[dashboard]' ({exc})"
        ) from None
    env = dict(os.environ)
    if api:
        env["JOURNEYSCOPE_API"] = api
    if db:
        env["JOURNEYSCOPE_DB"] = db
    if map_file:
        env["JOURNEYSCOPE_MAP"] = map_file
    cmd = command(db=db, api=api, map_file=map_file, host=host, port=port, open_browser=open_browser)
    proc = subprocess.Popen(cmd, env=env)
    # A terminated launcher must not leave the server behind: pass SIGTERM on to it.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the server too (same process group); let it finish
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def background(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """The dashboard headless on 127.0.0.1 in a child process; yields its URL once it answers.

    For tests, screenshots and anything else that drives the dashboard with a browser. The
    child's environment carries no ``JOURNEYSCOPE_*`` settings but the ones given here.
    """
    with background_process(db=db, api=api, map_file=map_file, port=port, timeout=timeout) as (url, _):
        yield url


@contextlib.contextmanager
def background_process(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    port: int | None = None,
    timeout: float = 60.0,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Like :func:`background`, but also yields the server process (a benchmark reads its memory)."""
    import httpx

    port = port or _free_port()
    cmd = command(db=db, api=api, map_file=map_file, port=port, open_browser=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYSCOPE_")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else ""
                raise ConfigError(f"the dashboard exited with code {proc.returncode}: {output[-2000:]}")
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"the dashboard did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""Starting the dashboard: ``streamlit run`` on :mod:`journeyscope.dashboard.app` with our settings.

Used by ``journeyscope dashboard`` and ``journeyscope demo``. Streamlit runs in
a child process (its own server and signal handling), bound to 127.0.0.1 unless
told otherwise, always headless and configured by ``STREAMLIT_*`` variables
(:data:`STREAMLIT_ENV`), so it never prompts and never writes to the user's home;
the dashboard's settings travel after ``--`` and in the environment (see
:mod:`journeyscope.dashboard.settings`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from journeyscope import settings
from journeyscope.errors import ConfigError
from journeyscope.ports import ensure_free

__all__ = [
    "APP",
    "STREAMLIT_ENV",
    "background",
    "background_process",
    "can_open_browser",
    "command",
    "environment",
    "run",
]

#: The entry script ``streamlit run`` executes.
APP = Path(__file__).with_name("app.py")


#: Streamlit's settings, as its own ``STREAMLIT_*`` environment variables (flags would do too, but
#: a variable also reaches Streamlit's config before any file is read). Headless always: that is what
#: keeps Streamlit from asking for an e-mail address on first run, from writing ``~/.streamlit``, and
#: from its "install skills" pop-up; the launcher prints the URL and opens a browser itself.
STREAMLIT_ENV = {
    "STREAMLIT_SERVER_HEADLESS": "true",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    # The launcher prints the one URL line; Streamlit's own banner (and its tips) would repeat it.
    "STREAMLIT_LOGGER_HIDE_WELCOME_MESSAGE": "true",
    "STREAMLIT_LOGGER_LEVEL": "warning",
    # The dashboard shows its own one-line errors; never a traceback in the page.
    "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "none",
    "STREAMLIT_CLIENT_TOOLBAR_MODE": "minimal",
    "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    "STREAMLIT_SERVER_RUN_ON_SAVE": "false",
    "STREAMLIT_THEME_BASE": "light",
}


def command(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``streamlit run`` command line for these settings (run it with :func:`environment`)."""
    cmd = [
        sys.executable,
        "-m",
        "journeyscope.dashboard.serve",  # streamlit's own command line, with the pages' libraries warmed
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        # Also on the command line: a flag wins over a user's own ~/.streamlit/config.toml.
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
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


def environment(
    base: Mapping[str, str], *, db: str | None = None, api: str | None = None, map_file: str | None = None
) -> dict[str, str]:
    """``base`` with Streamlit configured (:data:`STREAMLIT_ENV`) and the dashboard's settings added."""
    env = {**base, **STREAMLIT_ENV}
    env.update(settings.environment(api=api, db=db, map_file=map_file))
    return env


def can_open_browser() -> bool:
    """Whether a graphical browser can open here: a desktop session, or macOS or Windows.

    On Linux without a display, :mod:`webbrowser` would fall back to a text browser in the terminal
    (lynx, w3m) and take it over; there the URL line is enough.
    """
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _wait_until_up(proc: subprocess.Popen[Any], url: str, timeout: float) -> bool:
    """Poll Streamlit's health route until it answers (True) or the process exits (False)."""
    import httpx

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return proc.poll() is None


def run(
    *,
    db: str | None = None,
    api: str | None = None,
    map_file: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8501,
    open_browser: bool = True,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve the dashboard in the foreground until Ctrl-C or SIGTERM; return the exit code.

    Never prompts, whether or not stdin is a terminal: Streamlit runs headless with its stdin
    closed. Once it answers, ``announce`` gets the URL (default: a line on stderr) and a browser
    opens where one can (:func:`can_open_browser`). A taken port is a :class:`ConfigError` before
    anything starts; Ctrl-C and SIGTERM end the server and return 0.
    """
    try:
        import plotly  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as exc:  # both are dependencies: only a broken environment gets here
        raise ConfigError(f"the dashboard cannot start, its libraries are missing: {exc}") from None
    ensure_free(host, port)
    env = environment(os.environ, db=db, api=api, map_file=map_file)
    cmd = command(db=db, api=api, map_file=map_file, host=host, port=port)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
    stopping: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        stopping.append(signum)
        proc.send_signal(signal.SIGTERM)

    # A terminated launcher must not leave the server behind: pass SIGTERM on to it.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        if _wait_until_up(proc, url, timeout=120):
            say(f"dashboard: {url} (Ctrl-C to stop)")
            if open_browser and can_open_browser():
                webbrowser.open(url)
        code = proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the server too (same process group); let it finish
        stopping.append(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopping:
        return 0
    if code != 0:
        raise ConfigError(f"the dashboard on {url} stopped with exit code {code}")
    return code


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
    cmd = command(db=db, api=api, map_file=map_file, port=port)
    env = environment({k: v for k, v in os.environ.items() if not k.startswith(settings.PREFIX)})
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
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

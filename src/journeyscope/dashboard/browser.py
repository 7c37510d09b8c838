"""How journeyscope drives a headless browser (the screenshot script and the browser tests).

Debian's chromium, never a browser a tool downloads. The flags keep it from
reaching for the network at start (background updates, sync, QUIC), which on a
closed machine only produces refused connections.
"""

from __future__ import annotations

from typing import Any

from journeyscope import settings

CHROMIUM = settings.load().chromium
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def wait_until_settled(page: Any, timeout_ms: int = 60_000, quiet_ms: int = 700) -> None:
    """Wait until Streamlit has run the script and the page stopped changing (a Playwright page).

    "Not running" alone is not enough: before the first run starts and between a widget change
    and its rerun the app also reports it, so the page must also hold content and keep the same
    number of elements for ``quiet_ms``.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        """(quiet) => {
            const app = document.querySelector('[data-testid="stApp"]');
            const n = document.querySelectorAll('[data-testid="stMainBlockContainer"] *').length;
            const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stStatusWidget"]') && n > 20;
            const w = window.__jsWait || (window.__jsWait = {n: -1, since: 0});
            if (!idle || n !== w.n) { w.n = n; w.since = Date.now(); return false; }
            return Date.now() - w.since > quiet;
        }""",
        arg=quiet_ms,
        timeout=timeout_ms,
        polling=100,
    )

"""How journeyscope drives a headless browser (the screenshot script and the browser tests).

Debian's chromium, never a browser a tool downloads. The flags keep it from
reaching for the network at start (background updates, sync, QUIC), which on a
closed machine only produces refused connections.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("JOURNEYSCOPE_CHROMIUM", "/usr/bin/chromium")
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

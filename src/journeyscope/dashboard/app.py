"""The journeyscope dashboard: the script ``streamlit run`` executes (``journeyscope dashboard`` starts it).

Each rerun: read the settings, pick the data source, draw the sidebar (source,
filters, refresh), leave a :class:`PageContext` in session state and run the
page the navigation selected (a script under ``views/``, which renders with
that context; not ``pages/``, which Streamlit would also auto-discover). Whatever goes wrong with the data (missing or locked file,
older schema, API down) is shown as one message in the page, never as a
traceback; the navigation stays usable so the user can fix it and reload.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import streamlit as st
from journeyscope.dashboard import data
from journeyscope.dashboard.context import CTX_KEY, PageContext, guarded, sidebar_filters
from journeyscope.dashboard.settings import load_settings

PAGES_DIR = Path(__file__).resolve().parent / "views"

#: (file under views/, title, url path, icon, uses the sidebar filters)
PAGES = (
    ("overview", "Overview", "overview", ":material/monitoring:", True),
    ("stage", "Stage detail", "stage", ":material/troubleshoot:", True),
    ("journeys", "Journey explorer", "journeys", ":material/forum:", False),
    ("graph", "Journey graph", "graph", ":material/account_tree:", True),
    ("compare", "Compare", "compare", ":material/compare_arrows:", True),
    ("alerts", "Alerts", "alerts", ":material/notifications_active:", False),
    ("health", "Data health", "health", ":material/health_and_safety:", False),
    ("compliance", "Compliance", "compliance", ":material/policy:", False),
    ("review", "Review", "review", ":material/rate_review:", False),
)


def _forward() -> None:
    """The hidden page at "/": never drawn (the entry script forwards to the start page first)."""


def main() -> None:
    st.set_page_config(page_title="journeyscope", page_icon=":material/route:", layout="wide")
    settings = load_settings(sys.argv[1:])
    start = settings.page if settings.page in {p[2] for p in PAGES} else "overview"
    pages = {
        url: st.Page(PAGES_DIR / f"{name}.py", title=title, url_path=url, icon=icon)
        for name, title, url, icon, _ in PAGES
    }
    # Streamlit serves its default page at "/" only, so every page gets its own address (/overview too):
    # "/" is a hidden page that forwards to the start page, query parameters kept.
    home = st.Page(_forward, title="journeyscope", url_path="home", default=True, visibility="hidden")
    selected = st.navigation([*pages.values(), home])
    if selected is home:
        st.switch_page(pages[start], query_params=st.query_params.to_dict())
    uses_filters = next((f for _, title, _, _, f in PAGES if title == selected.title), True)
    selected_url = next((url for _, title, url, _, _ in PAGES if title == selected.title), None)
    st.session_state.pop(CTX_KEY, None)
    # The page's questions share one open source while this run lasts (WarehouseSource.held), released after.
    run = ExitStack()

    def load() -> None:
        source = data.make_source(settings)
        run.enter_context(source.held())
        with st.sidebar:
            st.caption(f"Source: {source.describe()}")
            if st.button("Refresh data", icon=":material/refresh:", help="Ask the warehouse again now."):
                data.clear()
        # The filter values and headline counts only: the full health check (every span) is the health
        # page's, and holds them too (same keys), so that page asks one question, not two.
        if selected_url == "health":
            facts = data.ask(source, settings.key(), "health")
        else:
            facts = data.ask(source, settings.key(), "filter_values")
        # Drawn on every page, so the choices survive a visit to a page that does not use them.
        params = sidebar_filters(facts)
        if not uses_filters:
            st.sidebar.caption("The filters do not apply to this page.")
        st.session_state[CTX_KEY] = PageContext(settings, source, params, facts, pages)

    with run:
        guarded(load)
        selected.run()


main()

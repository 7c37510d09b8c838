"""What every page gets: the source, the sidebar's filters, the filter values, links to other pages.

Built once per rerun by the entry script (``app.py``) and handed to the page
being shown, so pages never parse settings, draw the sidebar or know whether
they read a file or the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import streamlit as st

from journeyscope.dashboard import data
from journeyscope.dashboard.settings import DashboardSettings
from journeyscope.dashboard.source import FilterParams, Source
from journeyscope.dashboard.widgets import show_error
from journeyscope.errors import JourneyscopeError

__all__ = ["ALL", "CTX_KEY", "WINDOWS", "PageContext", "guarded", "run_page", "sidebar_filters"]

log = logging.getLogger("journeyscope.dashboard")

#: Where the entry script leaves this rerun's :class:`PageContext` for the page script.
CTX_KEY = "_journeyscope_ctx"

ALL = "All"
WINDOWS = {
    "All time": None,
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Custom dates": "custom",
}


@dataclass
class PageContext:
    """The shared state of one rerun."""

    settings: DashboardSettings
    source: Source
    params: FilterParams
    #: :meth:`Source.filter_values`: the filter values (``dimensions``) and headline ``counts``.
    health: dict[str, Any]
    pages: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.settings.key()

    # Cached questions (:func:`data.ask`), with this rerun's filters unless told otherwise.
    def read(self, name: str, **arguments: Any) -> Any:
        """The read ``name`` (:class:`journeyscope.warehouse.reads.Reads`), cached."""
        return data.ask(self.source, self.key, name, **arguments)

    def funnel(self, params: FilterParams | None = None, *, evaluators: bool = True) -> dict[str, Any]:
        """The funnel; ``evaluators=False`` for a page that shows no scores (the scores are most of its cost)."""
        return self.read("funnel", filters=params or self.params, evaluators=evaluators)

    def activity(self, params: FilterParams | None = None) -> dict[str, Any]:
        return self.read("activity", filters=params or self.params)

    def compliance(self) -> dict[str, Any]:
        return self.read("compliance")

    def alerts(self) -> list[dict[str, Any]]:
        return self.read("alerts", limit=500)["alerts"]

    def full_health(self) -> dict[str, Any]:
        """The whole health check (span scans, ingest lag): the data-health page's."""
        return self.read("health")

    def transitions(self, params: FilterParams | None = None) -> list[dict[str, Any]]:
        return self.read("transitions", filters=params or self.params)

    def outcomes(self, params: FilterParams | None = None) -> dict[str, Any]:
        return self.read("outcomes", filters=params or self.params)

    def retention(self, params: FilterParams | None = None) -> list[dict[str, Any]]:
        return self.read("retention", filters=params or self.params)

    def compare(self, a: FilterParams, b: FilterParams) -> dict[str, Any]:
        return self.read("compare", a=a, b=b)

    def journey(self, journey_id: str) -> dict[str, Any] | None:
        """Everything about one journey (``None`` when there is no such journey)."""
        return self.read("journey_detail", journey_id=journey_id)

    def search(self, query: str, params: FilterParams | None = None, limit: int = 20) -> list[dict[str, Any]]:
        return self.read("journeys", q=query, filters=params or FilterParams(), limit=limit)

    def failing(
        self,
        stage: str | None,
        evaluator: str | None = None,
        limit: int = 50,
        params: FilterParams | None = None,
    ) -> list[dict[str, Any]]:
        return self.read("failing", filters=params or self.params, stage=stage, evaluator=evaluator, limit=limit)

    def distribution(
        self, stage: str | None, evaluator: str | None = None, params: FilterParams | None = None
    ) -> dict[str, Any]:
        return self.read("distribution", filters=params or self.params, stage=stage, evaluator=evaluator)

    def feedback_agreement(self, params: FilterParams | None = None) -> list[dict[str, Any]]:
        """Each evaluator's agreement with the customers' CSAT, overall and per stage."""
        return self.read("feedback_agreement", filters=params or self.params)["evaluators"]

    @property
    def evaluated(self) -> bool:
        """Whether anything was scored yet (pages show how to run the evaluators otherwise)."""
        return bool(self.health.get("counts", {}).get("evaluations"))

    def open_journey(self, journey_id: str) -> None:
        """Go to the journey explorer showing ``journey_id``."""
        st.session_state["explorer_journey"] = journey_id
        st.switch_page(self.pages["journeys"], query_params={"journey_id": journey_id})

    def open_stage(self, journey: str, stage: str) -> None:
        """Go to the stage detail of ``stage``."""
        st.session_state["stage_pick"] = (journey, stage)
        st.switch_page(self.pages["stage"], query_params={"journey": journey, "stage": stage})


def _choice(label: str, options: list[str], key: str, help: str | None = None) -> str | None:
    picked = st.selectbox(label, [ALL, *options], key=key, help=help)
    return None if picked in (None, ALL) else picked


def _day(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def sidebar_filters(health: dict[str, Any]) -> FilterParams:
    """The sidebar's journey type, cohort, channel and time window, as the filters every page applies."""
    dims = health.get("dimensions", {})
    with st.sidebar:
        st.markdown("**Filters**")
        journey = _choice("Journey type", list(dims.get("journeys", [])), "f_journey")
        cohort = _choice("Cohort", list(dims.get("cohorts", [])), "f_cohort")
        channel = _choice(
            "Channel", list(dims.get("channels", [])), "f_channel", help="Visits that used this channel."
        )
        window = st.selectbox(
            "Time window",
            list(WINDOWS),
            key="f_window",
            help="Stage visits that started inside the window (UTC).",
        )
        since = until = None
        span = WINDOWS[window]
        if span == "custom":
            first, last = _day(dims.get("first_visit_at")), _day(dims.get("last_visit_at"))
            today = datetime.now(timezone.utc).date()
            picked = st.date_input(
                "Dates (UTC)",
                value=((first.date() if first else today), (last.date() if last else today)),
                key="f_dates",
            )
            if isinstance(picked, (tuple, list)) and len(picked) == 2:
                since = datetime.combine(picked[0], datetime.min.time(), timezone.utc).isoformat()
                until = datetime.combine(
                    picked[1] + timedelta(days=1), datetime.min.time(), timezone.utc
                ).isoformat()
        elif isinstance(span, timedelta):
            # Rounded to the minute, so the cached answers survive reruns within it.
            now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
            since = (now - span).isoformat()
    return FilterParams(journey=journey, cohort=cohort, channel=channel, since=since, until=until)


def guarded(fn: Callable[[], None]) -> None:
    """Run page code; turn every error into a message in the page, never a traceback."""
    try:
        fn()
    except JourneyscopeError as exc:
        show_error(exc)
    except Exception as exc:
        log.exception("dashboard page failed")
        st.error(f"Something went wrong drawing this page: {type(exc).__name__}: {exc}")


def run_page(render: Callable[[PageContext], None]) -> None:
    """What a page script does: render with the context the entry script built (nothing if it could not)."""
    ctx = st.session_state.get(CTX_KEY)
    if isinstance(ctx, PageContext):
        guarded(lambda: render(ctx))

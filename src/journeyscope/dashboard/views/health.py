"""Data health: can these numbers be trusted?

Spans missing ``journey.id`` or ``journey.stage``, stages the journey map does
not place, how far ingest lags behind the spans it stores, and what has been
evaluated. A funnel is only as good as its tagging; this page says how good.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import pct

TITLE = "Data health"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} days"


def _lag(ingest: dict[str, Any]) -> None:
    st.subheader("Ingest lag (stored at − span end)")
    rows = []
    for label, key in (("last hour", "lag_last_hour"), ("last day", "lag_last_day")):
        lag = ingest.get(key) or {}
        rows.append(
            {
                "ingested in the": label,
                "spans": f"{lag.get('spans', 0):,}",
                "median": _seconds(lag.get("median_s")),
                "p95": _seconds(lag.get("p95_s")),
                "max": _seconds(lag.get("max_s")),
            }
        )
    st.table(pd.DataFrame(rows).set_index("ingested in the"))
    st.caption(
        f"Last span stored at {ingest.get('last_ingested_at') or '–'} UTC; spans from "
        f"{ingest.get('first_span_at') or '–'} to {ingest.get('last_span_at') or '–'}. Imported or simulated "
        "history shows a lag of days: that is its age, not a slow receiver."
    )


def render(ctx: PageContext) -> None:
    st.title("Data health")
    h = ctx.full_health()
    counts, missing = h.get("counts", {}), h.get("missing", {})
    cols = st.columns(6)
    cols[0].metric("Spans", f"{counts.get('spans', 0):,}")
    cols[1].metric("Journeys", f"{counts.get('journeys', 0):,}")
    cols[2].metric("Customers", f"{counts.get('customers', 0):,}")
    cols[3].metric("Stage visits", f"{counts.get('stage_visits', 0):,}")
    cols[4].metric("Evaluations", f"{counts.get('evaluations', 0):,}")
    cols[5].metric("Journeys awaiting upkeep", f"{counts.get('visits_pending', 0):,}")
    for warning in h.get("warnings", []):
        st.warning(warning)

    st.subheader("Journey attributes")
    spans = counts.get("spans", 0) or 1
    no_id, no_stage = missing.get("spans_without_journey_id", 0), missing.get("spans_without_stage", 0)
    left, right = st.columns(2)
    left.metric("Spans without journey.id", f"{no_id:,}", help="Cannot be attributed to any journey.")
    left.caption(f"{pct(no_id / spans, 1)} of all spans")
    right.metric(
        "Spans with journey.id but no journey.stage",
        f"{no_stage:,}",
        help="Never part of a stage visit. A journey's root span has no stage by design.",
    )
    right.caption(f"{pct(no_stage / spans, 1)} of all spans")
    if missing.get("stage_without_journey_id"):
        st.warning(
            f"{missing['stage_without_journey_id']:,} spans carry journey.stage but no journey.id: "
            "their instrumentation sets the stage outside a journey context."
        )
    if missing.get("spans_with_feedback_left_out"):
        st.warning(
            f"{missing['spans_with_feedback_left_out']:,} spans carried a survey score off its scale or not a number: "
            "the score was left out, the rest kept (journey.feedback.rejected on the event says which)."
        )
    by_name = missing.get("without_stage_by_name") or []
    if by_name:
        st.caption("Spans without a stage, by span name (a journey root span per journey is expected):")
        st.table(pd.DataFrame(by_name).set_index("name"))

    st.subheader("Journey map")
    jm = h.get("journey_map", {})
    st.caption(f"Map: {jm.get('source') or 'none loaded (stage order inferred from first entries)'}.")
    order = jm.get("stage_order") or []
    if order:
        st.table(
            pd.DataFrame(
                [
                    {
                        "journey type": o["journey"],
                        "in map": "yes" if o["in_map"] else "no",
                        "order": o["order"],
                        "stages not in the map": ", ".join(o["unmapped_stages"]) or "–",
                    }
                    for o in order
                ]
            ).set_index("journey type")
        )
    _lag(h.get("ingest", {}))

    st.subheader("Evaluations")
    ev = h.get("evaluations", {})
    if not ev.get("results"):
        st.info("Nothing evaluated yet. Run `journeyscope evaluate --db PATH`.")
    else:
        evaluated = counts.get("evaluated_visits", 0)
        st.write(
            f"{ev['results']:,} results from {ev['evaluators']} evaluators over {evaluated:,} of "
            f"{counts.get('stage_visits', 0):,} stage visits ({pct(evaluated / max(1, counts.get('stage_visits', 0)))}); "
            f"{ev['errors']:,} errors; last scored at {ev.get('last_at')} UTC."
        )
    st.caption(
        f"Schema version {h.get('schema_version')} (this dashboard reads {h.get('schema_version_expected')}). "
        f"Generated {h.get('generated_at')} UTC."
    )


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

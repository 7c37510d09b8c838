"""Overview: where journeys stall, at a glance.

Leads with the sentence a product manager needs ("app-install completes 81%
vs ≥ 88% elsewhere", and the evaluator that fails there), then per journey
type: the funnel, completion and re-entry per stage with 95% intervals, and
evaluator fail rates by stage. Everything follows the sidebar's filters.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard import charts
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import (
    MIN_SCORED,
    NOT_ENOUGH,
    RETENTION,
    fail_matrix,
    pct,
    rate_text,
    reported_text,
    worst_stage,
)
from journeyscope.dashboard.widgets import not_evaluated

TITLE = "Overview"


def _headline(ctx: PageContext, report: dict[str, Any]) -> None:
    window = ctx.activity()
    cols = st.columns(5)
    cols[0].metric("Journeys", f"{window['journeys']:,}")
    cols[1].metric("Customers", f"{window['customers']:,}")
    cols[2].metric("Stage visits", f"{window['stage_visits']:,}")
    cols[3].metric("Spans", f"{window['spans']:,}", help="Spans inside the matching stage visits.")
    # Counting the distinct visits scored costs seconds at a million journeys: the health page shows that.
    cols[4].metric(
        "Evaluations",
        f"{ctx.health.get('counts', {}).get('evaluations', 0):,}",
        help="Evaluator results across the whole warehouse; the share of visits scored is on Data health.",
    )


def _alerts(ctx: PageContext, report: dict[str, Any]) -> None:
    for journey in report["journeys"]:
        alert = worst_stage(journey)
        if alert is None:
            continue
        text = f"**{alert.sentence()}**"
        if alert.hotspot:
            text += f" — {alert.hotspot}."
        retention = _retention_at(journey, alert.stage)
        if retention:
            text += f" Context retention there: {retention}."
        if alert.is_alert:
            st.warning(text, icon="⚠️")
        else:
            st.caption(text)


def _retention_at(journey: dict[str, Any], stage: str) -> str | None:
    s = next((x for x in journey["stages"] if x["stage"] == stage), None)
    e = next((x for x in (s or {}).get("evaluators", []) if x["evaluator"] == RETENTION), None)
    if not e or e.get("mean_score") is None:
        return None
    if e["scored"] < MIN_SCORED:
        return f"{NOT_ENOUGH} ({e['scored']} scored visits)"
    return f"mean {e['mean_score']:.2f}, fails {pct(e['fail_rate'])} of {e['scored']:,} scored visits"


def _table(journey: dict[str, Any], highlight: str | None) -> None:
    rows = []
    reported = any("csat" in s for s in journey["stages"])
    previous: int | None = None
    for s in journey["stages"]:
        conversion = s.get("conversion_from_previous")
        rows.append(
            {
                "stage": s["stage"]
                + ("" if s.get("in_map", True) else " (not in map)")
                + (" ⚠" if s["stage"] == highlight else ""),
                "entered": s["entered"],
                "completed": s["completed"],
                "dropped": s["dropped"],
                "completion [95% CI]": rate_text(
                    s["completion_rate"], s.get("completion_rate_ci"), s["entered"]
                ),
                "conversion": pct(conversion, 1) + (f" n={previous:,}" if conversion is not None else ""),
                "re-entry [95% CI]": rate_text(s["reentry_rate"], s.get("reentry_rate_ci"), s["entered"]),
                "visits": s["visits"],
                **({"CSAT [95% CI]": reported_text(s.get("csat"))} if reported else {}),
            }
        )
        if s.get("in_map", True):
            previous = s["entered"]
    st.table(pd.DataFrame(rows).set_index("stage"))


def _journey_section(ctx: PageContext, journey: dict[str, Any]) -> None:
    alert = worst_stage(journey)
    highlight = alert.stage if alert and alert.is_alert else None
    order = "journey-map order" if journey.get("order") == "map" else "order inferred from first entries"
    st.subheader(f"{journey['journey']} · {journey['total']:,} journeys")
    st.caption(f"Stages in {order}.")
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.funnel_chart(journey, highlight), key=f"funnel_{journey['journey']}")
    with right:
        st.plotly_chart(charts.rate_chart(journey, highlight), key=f"rates_{journey['journey']}")
    _table(journey, highlight)
    stages, evaluators, rates, sizes = fail_matrix(journey)
    if evaluators:
        st.caption(
            f"Evaluator fail rates count only the visits each evaluator could score (n); a cell with fewer "
            f"than {MIN_SCORED} scored visits shows \"{NOT_ENOUGH}\" and no colour."
        )
        st.plotly_chart(
            charts.fail_heatmap(stages, evaluators, rates, sizes, highlight),
            key=f"fails_{journey['journey']}",
        )
    if alert and st.button(f"Open stage {alert.stage} →", key=f"open_{journey['journey']}"):
        ctx.open_stage(journey["journey"], alert.stage)


def render(ctx: PageContext) -> None:
    st.title("Where journeys stall")
    report = ctx.funnel()
    if not report.get("journeys"):
        st.info(
            f"No stage visits match these filters ({report.get('note') or 'nothing recorded'}). "
            "Widen the filters, or record journeys with 'journeyscope demo' or 'journeyscope import'."
        )
        return
    _headline(ctx, report)
    _alerts(ctx, report)
    for warning in report.get("warnings", []):
        st.caption(f"⚠ {warning}")
    if not ctx.evaluated:
        not_evaluated("eval fail rate by stage")
    for journey in report["journeys"]:
        st.divider()
        _journey_section(ctx, journey)


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

"""Stage detail: why one stage stalls.

Score distributions per evaluator (binned in SQL), the failing visits worst
first with their reasons (one click opens the conversation), context
retention across the hand-offs into each stage, the friction signals
against the journey's other stages, and what customers reported about the
stage (CSAT, effort, NPS) with how well each evaluator predicts it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from journeyscope import conventions as cv
from journeyscope.dashboard import charts
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import (
    MIN_SCORED,
    NOT_ENOUGH,
    RETENTION,
    pct,
    rate_text,
    reported_text,
    worst_stage,
)
from journeyscope.dashboard.views.alerts import firing_badge
from journeyscope.dashboard.widgets import not_evaluated, stage_picker

TITLE = "Stage detail"
FAILING_LIMIT = 100


def _default(ctx: PageContext, report: dict[str, Any]) -> tuple[str, str] | None:
    """A link's stage (query parameters) first, else the worst stage of the first journey type."""
    qp = st.query_params
    if qp.get("journey") and qp.get("stage"):
        pick = (qp["journey"], qp["stage"])
        # A new link wins over what the pickers remember.
        if st.session_state.get("stage_link") != pick:
            st.session_state["stage_link"] = pick
            st.session_state["sd_journey"], st.session_state["sd_stage"] = pick
        return pick
    for journey in report["journeys"]:
        alert = worst_stage(journey)
        if alert:
            return journey["journey"], alert.stage
    return None


def _metrics(s: dict[str, Any]) -> None:
    cols = st.columns(5)
    cols[0].metric("Journeys entered", f"{s['entered']:,}")
    n = f"n={s['entered']:,}"
    cols[1].metric(
        f"Completed · {n}",
        pct(s["completion_rate"], 1),
        help=rate_text(s["completion_rate"], s.get("completion_rate_ci"), s["entered"]),
    )
    cols[2].metric(
        f"Re-entered · {n}",
        pct(s["reentry_rate"], 1),
        help=rate_text(s["reentry_rate"], s.get("reentry_rate_ci"), s["entered"]),
    )
    median = s.get("median_time_in_stage_s")
    p90 = s.get("p90_time_in_stage_s")
    cols[3].metric("Time in stage (median)", _duration(median), help=f"p90 {_duration(p90)}")
    retention = next((e for e in s.get("evaluators", []) if e["evaluator"] == RETENTION), None)
    scored = int(retention["scored"]) if retention else 0
    enough = retention is not None and retention.get("mean_score") is not None and scored >= MIN_SCORED
    cols[4].metric(
        f"Context retention (mean) · n={scored:,}",
        f"{retention['mean_score']:.2f}" if enough and retention else ("–" if not scored else NOT_ENOUGH),
        help=f"fails {pct(retention['fail_rate'])} of {scored:,} scored visits "
        f"({retention.get('unscored', 0):,} could not be scored)"
        if enough and retention
        else f"fewer than {MIN_SCORED} scored visits" if scored else "not evaluated yet",
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _failing(ctx: PageContext, journey: str, stage: str, evaluators: list[str]) -> None:
    st.subheader("Failing visits, worst score first")
    pick = st.selectbox("Evaluator", ["All evaluators", *evaluators], key="sd_failing_evaluator")
    evaluator = None if pick == "All evaluators" else pick
    rows = ctx.failing(stage, evaluator, FAILING_LIMIT, ctx.params.replace(journey=journey))
    if not rows:
        st.success("No failing visit at this stage for these filters.")
        return
    frame = pd.DataFrame(
        [
            {
                "journey_id": r["journey_id"],
                "evaluator": r["evaluator"],
                "score": r["score"],
                "label": r["label"],
                "reason": r["reason"],
                "visit": r["visit"],
                "channel": r["channel"],
                "cohort": r["cohort"],
                "started": r["started_at"],
                "outcome": r["outcome"],
                "open": f"./journeys?journey_id={r['journey_id']}",
            }
            for r in rows
        ]
    )
    st.caption(
        f"{len(rows)} failing evaluation(s){' (first ' + str(FAILING_LIMIT) + ')' if len(rows) >= FAILING_LIMIT else ''}."
        " Select a row to open its conversation."
    )
    picked = st.dataframe(
        frame,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="sd_failing_table",
        column_config={
            "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f"),
            "reason": st.column_config.TextColumn("reason", width="large"),
            "open": st.column_config.LinkColumn("open", display_text="transcript ↗"),
        },
    )
    selected = getattr(getattr(picked, "selection", None), "rows", None) or []
    if selected:
        ctx.open_journey(rows[selected[0]]["journey_id"])
    choice = st.selectbox("Or open a journey", [r["journey_id"] for r in rows], key="sd_open_pick")
    if st.button("Open conversation →", key="sd_open"):
        ctx.open_journey(choice)


def _reported(ctx: PageContext, journey: str, stage: str, s: dict[str, Any]) -> None:
    """CSAT, effort and NPS as customers reported them, and each evaluator's agreement with their CSAT."""
    st.subheader("What customers reported")
    if not s.get("feedback_responses"):
        st.info("No customer answered a survey about this stage for these filters (journey.feedback events).")
        return
    cols = st.columns(4)
    cols[0].metric("Responses", f"{s['feedback_responses']:,}",
                   help="visits with an answer: " + rate_text(s.get("feedback_response_rate"),
                                                               s.get("feedback_response_rate_ci")))
    for col, label, record, key, digits in (
        (cols[1], "CSAT (1-5)", s.get("csat"), "mean", 2),
        (cols[2], "Effort, CES (1-7, lower is easier)", s.get("ces"), "mean", 2),
        (cols[3], "NPS (-100..100)", s.get("nps"), "score", 0),
    ):
        value = "–" if not record or record.get(key) is None else f"{record[key]:.{digits}f}"
        col.metric(label, value, help=reported_text(record, key, digits))
    if not ctx.evaluated:
        return
    rows = [a for a in ctx.feedback_agreement(ctx.params.replace(journey=journey))
            if a["journey"] == journey and a["stage"] == stage]
    if not rows:
        return
    st.caption("Do the evaluators predict it? AUROC: how often a happy customer's visit (CSAT 4-5) scored above an "
               "unhappy one's (CSAT 1-2); 0.5 is chance. Spearman: rank correlation of score and CSAT.")
    st.dataframe(
        pd.DataFrame([
            {"evaluator": a["evaluator"], "rated visits": a["n"], "CSAT 1-2": a["n_low_csat"],
             "CSAT 4-5": a["n_high_csat"],
             "AUROC [95% CI]": reported_text({"mean": a["auroc"], "ci_low": a["auroc_ci"][0],
                                              "ci_high": a["auroc_ci"][1], "n": a["n_low_csat"] + a["n_high_csat"]}),
             "Spearman [95% CI]": reported_text({"mean": a["spearman"], "ci_low": a["spearman_ci"][0],
                                                 "ci_high": a["spearman_ci"][1], "n": a["n"]})}
            for a in sorted(rows, key=lambda a: -(a["auroc"] if a["auroc"] is not None else -1))
        ]),
        hide_index=True,
        key="sd_feedback_agreement",
    )


def render(ctx: PageContext) -> None:
    st.title("Stage detail")
    report = ctx.funnel()
    if not report.get("journeys"):
        st.info("No stage visits match these filters. Widen the filters in the sidebar.")
        return
    picked = stage_picker(report, _default(ctx, report), "sd")
    if picked is None:
        return
    journey_name, stage_name = picked
    journey = next(j for j in report["journeys"] if j["journey"] == journey_name)
    s = next(x for x in journey["stages"] if x["stage"] == stage_name)
    firing_badge(ctx, journey_name, stage_name)
    _metrics(s)
    if not ctx.evaluated:
        not_evaluated("score distribution, failing visit or friction signal")
    else:
        evaluators = sorted(
            (e["evaluator"] for e in s.get("evaluators", [])),
            key=lambda n: (n.startswith(cv.FRICTION_PREFIX), n != RETENTION, n),
        )
        st.subheader("Score distributions")
        dist = ctx.distribution(stage_name, None, ctx.params.replace(journey=journey_name))
        if dist.get("evaluators"):
            st.plotly_chart(charts.histogram_grid(dist, evaluators), key="sd_hist")
            unscored = [f"{e['evaluator']} ({e['unscored']})" for e in dist["evaluators"] if e["unscored"]]
            if unscored:
                st.caption("Visits an evaluator could not score (no evidence): " + ", ".join(unscored))
        else:
            st.info("No scored visit at this stage for these filters.")
        _failing(ctx, journey_name, stage_name, evaluators)
        left, right = st.columns(2)
        with left:
            st.subheader("Retention between stages")
            handoffs = ctx.retention(ctx.params.replace(journey=journey_name))
            if handoffs:
                st.plotly_chart(
                    charts.retention_heatmap(handoffs, journey_name, [x["stage"] for x in journey["stages"]]),
                    key="sd_retention",
                )
                into = [h for h in handoffs if h["to"] == stage_name]
                if into:
                    st.caption(
                        "Into this stage: "
                        + "; ".join(
                            f"from {h['from']} mean {h['mean_retention']:.2f}, fails {pct(h['fail_rate'])} "
                            f"n={h['visits']:,}"
                            for h in into
                        )
                    )
            else:
                st.info("No context-retention scores for these filters.")
        with right:
            st.subheader("Friction signals")
            if any(e["evaluator"].startswith(cv.FRICTION_PREFIX) for e in s.get("evaluators", [])):
                st.plotly_chart(charts.friction_chart(journey, stage_name), key="sd_friction")
            else:
                st.info("No friction signals were recorded for this stage.")
    _reported(ctx, journey_name, stage_name, s)


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

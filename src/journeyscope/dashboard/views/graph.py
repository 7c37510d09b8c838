"""Journey graph: how journeys really move between stages, backtracks and exits included.

A funnel draws a straight line; customers do not walk one. The Sankey shows
the observed stage-to-stage transitions of one journey type (backtracks in
orange, exits in red, completions in green), and the tables list the
backtracks and where journeys end.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st
from journeyscope.dashboard import charts
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import pct, rate_text

TITLE = "Journey graph"


def render(ctx: PageContext) -> None:
    st.title("Journey graph")
    report = ctx.funnel(evaluators=False)  # the journey types and their stage order only
    journeys = [j["journey"] for j in report.get("journeys", [])]
    if not journeys:
        st.info("No stage visits match these filters. Widen the filters in the sidebar.")
        return
    journey = st.selectbox("Journey type", journeys, key="jg_journey") if len(journeys) > 1 else journeys[0]
    order = [s["stage"] for s in next(j for j in report["journeys"] if j["journey"] == journey)["stages"]]
    flows = [t for t in ctx.transitions() if t["journey"] == journey]
    if not flows:
        st.info(f"No transitions recorded for {journey}.")
        return
    st.plotly_chart(charts.sankey(flows, journey, order), key="jg_sankey")
    total = sum(t["journeys"] for t in flows if t["from"] == order[0]) if order else 0
    left, right = st.columns(2)
    with left:
        st.subheader("Backtracks")
        back = sorted((t for t in flows if t["backtrack"]), key=lambda t: -t["journeys"])
        if back:
            st.table(
                pd.DataFrame(
                    [{"from": t["from"], "back to": t["to"], "journeys": t["journeys"]} for t in back]
                )
            )
        else:
            st.caption("No journey went back to an earlier stage.")
    with right:
        st.subheader("Where journeys end")
        st.caption(
            "The funnel's figures: exit = entered the stage and never completed it (its drop-off), "
            "completed = completed the last stage, in progress = may still move on."
        )
        ends = [t for t in flows if t["to"].startswith("(")]
        by_stage: dict[tuple[str, str], int] = {}
        for t in ends:
            by_stage[(t["from"], t["to"])] = by_stage.get((t["from"], t["to"]), 0) + t["journeys"]
        rows = [
            {"stage": s, "end": e.strip("()"), "journeys": n,
             "share": f"{pct(n / total)} n={total:,}" if total else "–"}
            for (s, e), n in sorted(by_stage.items(), key=lambda kv: -kv[1])
        ]
        st.table(pd.DataFrame(rows))
    # Journey-level outcomes cost a pass over every journey: asked for, not drawn by default.
    if not st.toggle(
        "Whole-journey completion and channel mix",
        key="jg_outcomes",
        help="Completion of whole journeys by channel sequence (slower on large warehouses).",
    ):
        return
    outcomes = ctx.outcomes()
    overall = outcomes.get("overall", {}).get(journey)
    if overall:
        st.caption(
            f"Whole-journey completion of {journey}: "
            f"{rate_text(overall['value'], [overall['ci_low'], overall['ci_high']])} of {overall['n']:,} journeys."
        )
    mix = [m for m in outcomes.get("channel_mix", []) if m["journey"] == journey and m["journeys"] >= 10][:10]
    if mix:
        st.subheader("Channel mix")
        st.table(
            pd.DataFrame(
                [
                    {
                        "channel sequence": m["channels"],
                        "journeys": m["journeys"],
                        "completion [95% CI]": rate_text(m["completion_rate"], m.get("completion_rate_ci")),
                        "lift": f"{m['lift']:.2f}×" if m.get("lift") is not None else "–",
                    }
                    for m in mix
                ]
            )
        )
    else:
        st.caption("No channel sequence with 10 or more journeys.")


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

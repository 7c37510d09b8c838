"""Journey explorer: the one conversation that shows the problem.

Pick a journey (search by journey or customer id, or follow a link from a
failing visit); see its timeline across stages and channels, every turn with
its stage, channel and time, the evaluator scores with their reasons, the
turns those scores cite highlighted, and the routing decisions taken.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard import charts
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import pct
from journeyscope.dashboard.transcript import TRANSCRIPT_CSS, clock, turn_html

TITLE = "Journey explorer"

def _pick(ctx: PageContext) -> str | None:
    """The journey to show: a link's id, else what the search box finds."""
    linked = st.query_params.get("journey_id")
    if linked and st.session_state.get("jx_linked") != linked:
        st.session_state["jx_linked"] = linked
        st.session_state["jx_query"] = linked
    query = st.text_input(
        "Journey id or customer id", key="jx_query", placeholder="e.g. onboarding-7-000010, or part of an id"
    ).strip()
    matches = ctx.search(query, limit=50)
    if not matches:
        if query:
            st.warning(f"No journey or customer id contains {query!r}.")
        else:
            st.info("No journeys recorded yet.")
        return None
    exact = next((m for m in matches if m["journey_id"] == query), None)
    if exact:
        return exact["journey_id"]
    labels = {
        m["journey_id"]: f"{m['journey_id']} · {m.get('journey') or '?'} · {m.get('path') or ''}"
        for m in matches
    }
    st.caption(f"{len(matches)} match(es){' (newest first)' if not query else ''}.")
    return st.selectbox("Journey", list(labels), format_func=labels.get, key="jx_pick")


def _when(ts: str | None) -> str:
    """``2026-11-12T09:39:02.918Z`` → ``2026-11-12 09:39``."""
    return ts[:16].replace("T", " ") if ts else "–"


def _header(detail: dict[str, Any]) -> None:
    st.subheader(detail["journey_id"])
    facts = [
        ("journey type", detail.get("journey")),
        ("customer", detail.get("customer_id")),
        ("cohort", detail.get("cohort")),
        ("visits", str(len(detail["visits"]))),
        ("last stage", f"{detail.get('last_stage')} ({detail.get('last_outcome')})"),
        ("channels", " → ".join(detail.get("channel_path") or []) or None),
        ("when (UTC)", f"{_when(detail.get('started_at'))} → {_when(detail.get('ended_at'))[11:]}"),
    ]
    st.markdown(" · ".join(f"{label} **{html.escape(value)}**" for label, value in facts if value))


def _scores(detail: dict[str, Any]) -> None:
    rows = [
        {
            "stage": v["stage"],
            "visit": v["visit"],
            "evaluator": e["evaluator"],
            "score": e["score"],
            "passed": e["passed"],
            "label": e["label"],
            "reason": e["reason"] if not e.get("error") else e["error"],
            "cited turns": ", ".join(str(i) for i in e.get("cited_turns", [])),
        }
        for v in detail["visits"]
        for e in v["evaluations"]
    ]
    if not rows:
        st.info(
            "This journey has no evaluator scores yet. Run `journeyscope evaluate`, then press Refresh data."
        )
        return
    frame = pd.DataFrame(rows).sort_values(["passed", "score"], na_position="last", kind="stable")
    st.dataframe(
        frame,
        hide_index=True,
        key="jx_scores",
        column_config={
            "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f"),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )


def _transcript(detail: dict[str, Any]) -> None:
    st.markdown(TRANSCRIPT_CSS, unsafe_allow_html=True)
    only_cited = st.toggle("Only visits with failing scores", key="jx_only_cited")
    for v in detail["visits"]:
        scores = {e["evaluator"]: e for e in v["evaluations"]}
        failed = [e for e in v["evaluations"] if e.get("passed") is False]
        if only_cited and not failed:
            continue
        title = (
            f"**{v['stage']}** · visit {v['visit']} · {v.get('channel') or '?'} · {v['outcome']} · "
            f"{clock(v['started_at'])}–{clock(v['ended_at'])}"
        )
        if failed:
            title += f" · :red[{len(failed)} failing score(s)]"
        st.markdown(title)
        for e in failed:
            st.caption(
                f"✗ {e['evaluator']} {e['score'] if e['score'] is None else round(e['score'], 2)}: {e['reason']}"
            )
        body = (
            "".join(turn_html(t, scores) for t in v["transcript"]) or '<div class="js-meta">no turns</div>'
        )
        st.markdown(f'<div class="js-visit">{body}</div>', unsafe_allow_html=True)


def _routes(detail: dict[str, Any]) -> None:
    st.subheader("Routing decisions")
    routes = detail.get("route_decisions") or []
    if not routes:
        st.caption("None recorded for this journey (decisions come from 'POST /v1/route' on a running server).")
        return
    columns = [
        c for c in ("decided_at", "stage", "action", "mode", "confidence", "policy_version", "reason", "decision_id")
        if c in routes[0]
    ]
    st.dataframe(pd.DataFrame(routes)[columns + [c for c in routes[0] if c not in columns]], hide_index=True)


def render(ctx: PageContext) -> None:
    st.title("Journey explorer")
    journey_id = _pick(ctx)
    if not journey_id:
        return
    detail = ctx.journey(journey_id)
    if detail is None:
        st.warning(f"No journey {journey_id!r} in this warehouse.")
        return
    _header(detail)
    st.plotly_chart(charts.timeline(detail), key="jx_timeline")
    evaluated = [e for v in detail["visits"] for e in v["evaluations"]]
    failing = [e for e in evaluated if e.get("passed") is False]
    st.caption(
        f"{len(evaluated)} scores, {len(failing)} failing ({pct(len(failing) / len(evaluated)) if evaluated else '–'})."
    )
    tab_transcript, tab_scores, tab_routes = st.tabs(["Transcript", "Scores", "Routing decisions"])
    with tab_transcript:
        _transcript(detail)
    with tab_scores:
        _scores(detail)
    with tab_routes:
        _routes(detail)


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

"""Small pieces several pages draw the same way: empty states, the "not evaluated yet" note, stage pickers."""

from __future__ import annotations

from typing import Any

import streamlit as st
from journeyscope.dashboard.source import SourceError

__all__ = ["not_evaluated", "show_error", "stage_picker"]

EVALUATE_HINT = (
    "Run `journeyscope evaluate --db PATH` to score every stage visit, then press **Refresh data**."
)


def show_error(exc: Exception) -> None:
    """One clear message (and what to do) instead of a traceback."""
    if isinstance(exc, SourceError):
        show = st.info if exc.kind == "empty" else st.error
        show(exc.message + (f"\n\n{exc.hint}" if exc.hint else ""))
    else:
        st.error(str(exc))


def not_evaluated(what: str) -> None:
    """The empty state of everything built on evaluator scores."""
    st.info(f"No evaluator scores yet, so there is no {what}. {EVALUATE_HINT}")


def stage_picker(funnel: dict[str, Any], default: tuple[str, str] | None, key: str) -> tuple[str, str] | None:
    """A journey type and one of its stages, starting at ``default`` (e.g. the worst stage, or a link's)."""
    journeys = [j["journey"] for j in funnel.get("journeys", [])]
    if not journeys:
        return None
    jkey, skey = f"{key}_journey", f"{key}_stage"
    # Values remembered in session state win over the default, unless no longer offered.
    if st.session_state.get(jkey) not in journeys:
        st.session_state.pop(jkey, None)
    start_j = default[0] if default and default[0] in journeys else journeys[0]
    left, right = st.columns(2)
    if jkey in st.session_state:
        journey = left.selectbox("Journey type", journeys, key=jkey)
    else:
        journey = left.selectbox("Journey type", journeys, index=journeys.index(start_j), key=jkey)
    stages = [s["stage"] for s in next(j for j in funnel["journeys"] if j["journey"] == journey)["stages"]]
    if st.session_state.get(skey) not in stages:
        st.session_state.pop(skey, None)
    start_s = default[1] if default and default[0] == journey and default[1] in stages else stages[0]
    if skey in st.session_state:
        stage = right.selectbox("Stage", stages, key=skey)
    else:
        stage = right.selectbox("Stage", stages, index=stages.index(start_s), key=skey)
    return journey, stage

"""Compliance: what personal data arrived, what was done to it, where it travelled, and who consented.

Counts only, never values: the page a compliance officer reads to know that no
clear PII sits in the warehouse, which stages received it (context bridges
carry PII too), that customers consented to AI evaluation, and every erasure,
retention run and policy change.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st
from journeyscope.dashboard.context import PageContext, run_page

TITLE = "Compliance"


def _consent_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One column per consent scope ("92 of 103 (89%)") instead of the raw scope and coverage maps."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("scopes", "coverage")}
        for scope, count in sorted((r.get("scopes") or {}).items()):
            share = (r.get("coverage") or {}).get(scope, 0)
            row[scope] = f"{count:,} of {r['journeys']:,} ({share * 100:.0f}%)"
        out.append(row)
    return out


def _detail_text(detail: Any) -> str:
    """An audit entry's detail in words: ``key: value`` pairs; a nested setting by its source or size."""
    if not isinstance(detail, dict):
        return "" if detail is None else str(detail)
    parts = []
    for key, value in detail.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, dict):
            value = value.get("source") or f"{len(value)} settings"
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _audit_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "detail": _detail_text(r.get("detail"))} for r in rows]


def _table(rows: list[dict] | None, empty: str) -> None:
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    else:
        st.caption(empty)


def render(ctx: PageContext) -> None:
    st.title("Compliance")
    view = ctx.compliance()
    policy = view.get("policy") or {}
    totals = view.get("totals") or {}
    cols = st.columns(3)
    cols[0].metric("Values redacted on ingest", f"{totals.get('values_redacted', 0):,}")
    cols[1].metric("Journeys that carried PII", f"{totals.get('journeys_with_pii', 0):,}")
    cols[2].metric("Redaction failures (stored as [REDACTION_FAILED])", f"{totals.get('failures', 0):,}")
    if policy:
        off = [t for t, action in (policy.get("types") or {}).items() if action == "off"]
        if off:
            st.warning(f"Redaction is turned off for: {', '.join(sorted(off))}. These values are stored in clear.")
        with st.expander("Privacy policy in force"):
            st.json(policy)
    else:
        st.info("No privacy policy recorded yet: the built-in default (mask every type) applies on the next write.")

    st.subheader("PII per stage, and what was done to it")
    stages = pd.DataFrame(view.get("stages") or [])
    if stages.empty:
        st.caption("No personal data detected so far.")
    else:
        chart = stages.assign(where=stages["journey"].fillna("?") + " / " + stages["stage"].fillna("(no stage)"))
        fig = px.bar(chart, x="where", y="values", color="pii_type", barmode="stack",
                     hover_data=["action", "journeys"], title="PII values by stage and type (what was done: hover)")
        st.plotly_chart(fig, width="stretch")
        st.dataframe(stages, hide_index=True)

    left, right = st.columns(2)
    with left:
        st.subheader("Where PII first entered journeys")
        _table(view.get("entry_points"), "None.")
    with right:
        st.subheader("PII carried to later stages")
        _table(view.get("flows"), "No hashed value seen again in a later stage.")

    st.subheader("Consent coverage per stage")
    _table(_consent_rows(view.get("consent") or []), "No stage visits yet.")

    st.subheader("Audit log (erasures, retention runs, policy changes)")
    _table(_audit_rows(view.get("audit") or []), "Nothing recorded yet.")


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

"""Alerts: what the monitors caught, while journeys are still alive, with the evidence.

Each alert names its monitor, the scope (journey type, stage, cohort, channel,
evaluator), the signal against its baseline, the run of observations that
made it fire with its 95% interval, and the failing visits behind it. Alerts
come from ``journeyscope serve --monitors FILE``; ``journeyscope monitors
backtest`` shows what a monitors file would have caught on past data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard.context import PageContext, run_page

TITLE = "Alerts"


def _scope(alert: dict[str, Any]) -> str:
    parts = [alert.get(k) for k in ("journey", "stage", "cohort", "channel", "evaluator")]
    return " / ".join(p for p in parts if p) or "all journeys"


def firing_badge(ctx: PageContext, journey: str, stage: str) -> None:
    """The stage page's badge: alerts firing on this stage, if any."""
    firing = [a for a in ctx.alerts() if a["status"] == "firing" and a.get("journey") == journey
              and a.get("stage") in (stage, None)]
    if firing:
        names = ", ".join(sorted({a["monitor"] for a in firing}))
        st.error(f"{len(firing)} alert(s) firing on this stage: {names}. See the Alerts page for the evidence.",
                 icon=":material/notifications_active:")


def _evidence(alert: dict[str, Any]) -> None:
    ev = alert.get("evidence") or {}
    run, base, window = ev.get("run", {}), ev.get("baseline", {}), ev.get("window", {})
    cols = st.columns(4)
    cols[0].metric(f"{alert['signal']} (run)", f"{alert['value']:.3g}",
                   help=f"95% interval {run.get('ci_low', 0):.3g}–{run.get('ci_high', 0):.3g}")
    cols[1].metric(f"Baseline ({base.get('of', '')})", f"{alert['baseline']:.3g}", help=f"n = {base.get('n')}")
    cols[2].metric("Observations in the run", f"{alert['n']:,}", help=f"from {run.get('from')} to {run.get('to')}")
    cols[3].metric("Last window", f"{window.get('n', 0):,}", help=f"from {window.get('from')} to {window.get('to')}")
    st.caption(ev.get("description", ""))
    visits = alert.get("failing_visits") or []
    if visits:
        st.dataframe(pd.DataFrame(visits), hide_index=True)


def render(ctx: PageContext) -> None:
    st.title("Alerts")
    alerts = ctx.alerts()
    if not alerts:
        st.info("No alerts. Run `journeyscope serve --monitors FILE` to monitor live data, and "
                "`journeyscope monitors backtest` to see what a monitors file would have caught.")
        return
    firing = [a for a in alerts if a["status"] == "firing"]
    st.metric("Firing now", len(firing))
    for alert in alerts:
        state = "FIRING" if alert["status"] == "firing" else f"resolved {alert['resolved_at']}"
        with st.expander(f"{state} · {alert['monitor']} · {_scope(alert)} · fired {alert['fired_at']}",
                         expanded=alert["status"] == "firing"):
            _evidence(alert)


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

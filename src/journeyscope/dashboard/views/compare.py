"""Compare: two periods (before/after a release) or two cohorts (an A/B test), stage by stage.

Uses :func:`journeyscope.warehouse.compare.compare`: completion and re-entry
of side B against side A per stage, with Newcombe 95% intervals; a difference
whose interval excludes zero is marked significant.

Two periods: B runs from the split day to the last day with data, A is as many days before
the split (or from the first day). The split starts at the latest marker in the data (the
first whole day after it; the demo marks its context bridge), otherwise B is the last 7 days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import streamlit as st
from journeyscope.dashboard import charts
from journeyscope.dashboard.context import PageContext, run_page
from journeyscope.dashboard.insights import pct
from journeyscope.dashboard.source import FilterParams

TITLE = "Compare"


def _day(value: str | None) -> date | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date() if value else None


def _start(d: date) -> str:
    return datetime.combine(d, datetime.min.time(), timezone.utc).isoformat()


def _default(key: str, **default: Any) -> dict[str, Any]:
    """A widget's default, unless session state already holds its value (Streamlit warns about both)."""
    return {} if key in st.session_state else default


def _apply_link(dims: dict[str, Any]) -> None:
    """``?split=YYYY-MM-DD`` or ``?a=COHORT&b=COHORT`` preset the controls once per link (shareable comparisons)."""
    qp = st.query_params
    link = (qp.get("split"), qp.get("a"), qp.get("b"))
    if not any(link) or st.session_state.get("cmp_link") == link:
        return
    st.session_state["cmp_link"] = link
    if link[1] in dims.get("cohorts", []) and link[2] in dims.get("cohorts", []):
        st.session_state.update(cmp_mode="Two cohorts", cmp_a=link[1], cmp_b=link[2])
    elif link[0]:
        try:
            split = date.fromisoformat(link[0])
        except ValueError:
            return
        first, last = _day(dims.get("first_visit_at")), _day(dims.get("last_visit_at"))
        if first and last and first < split <= last:
            st.session_state.update(cmp_mode="Two periods", cmp_split=split)


def _sides(ctx: PageContext) -> tuple[FilterParams, FilterParams, str] | None:
    dims = ctx.health.get("dimensions", {})
    _apply_link(dims)
    mode = st.segmented_control(
        "Compare",
        ["Two periods", "Two cohorts"],
        key="cmp_mode",
        **_default("cmp_mode", default="Two periods"),
    )
    if mode == "Two cohorts":
        cohorts = list(dims.get("cohorts", []))
        if len(cohorts) < 2:
            st.info("Comparing cohorts needs at least two cohorts (journey.cohort) in the data.")
            return None
        left, right = st.columns(2)
        a = left.selectbox("Cohort A", cohorts, key="cmp_a", **_default("cmp_a", index=0))
        b = right.selectbox("Cohort B", cohorts, key="cmp_b", **_default("cmp_b", index=1))
        return FilterParams(cohort=a), FilterParams(cohort=b), f"cohort {a} (A) vs cohort {b} (B)"
    first, last = _day(dims.get("first_visit_at")), _day(dims.get("last_visit_at"))
    if first is None or last is None or first == last:
        st.info("Comparing periods needs visits on at least two different days.")
        return None
    default_split, why = _default_split(dims, first, last)
    split = st.slider(
        "Split day (B starts here, UTC)",
        min_value=first + timedelta(days=1),
        max_value=last,
        key="cmp_split",
        format="YYYY-MM-DD",
        help=why,
        **_default("cmp_split", value=default_split),
    )
    start_a = max(first, split - (last - split) - timedelta(days=1))
    a = FilterParams(since=_start(start_a), until=_start(split))
    b = FilterParams(since=_start(split), until=_start(last + timedelta(days=1)))
    return a, b, f"{start_a} – {split - timedelta(days=1)} (A) vs {split} – {last} (B)"


def _default_split(dims: dict[str, Any], first: date, last: date) -> tuple[date, str]:
    """The first whole day after the latest marker inside the data, else the start of the last 7 days."""
    lowest, highest = first + timedelta(days=1), last
    for marker in reversed(dims.get("markers") or []):
        at = datetime.fromisoformat(marker["at"].replace("Z", "+00:00")).astimezone(timezone.utc)
        day = at.date() + (timedelta(days=1) if at.time() != datetime.min.time() else timedelta(0))
        if lowest <= day <= highest:
            return day, f"Starts at the marker \"{marker['name']}\" ({marker['at']})."
    return max(lowest, last - timedelta(days=6)), "Starts so that B is the last 7 days with data."


def _table(comparison: dict[str, Any], journey: str) -> pd.DataFrame:
    rows = []
    reported = any("csat" in s for s in comparison["stages"] if s["journey"] == journey)
    for s in comparison["stages"]:
        if s["journey"] != journey:
            continue
        c, r = s["completion"], s["reentry"]
        rows.append(
            {
                "stage": s["stage"],
                "completion A": pct(c["a"]["value"], 1),
                "completion B": pct(c["b"]["value"], 1),
                "Δ completion [95% CI]": _diff(c),
                "re-entry A": pct(r["a"]["value"], 1),
                "re-entry B": pct(r["b"]["value"], 1),
                "Δ re-entry [95% CI]": _diff(r),
                "journeys A / B": f"{c['a']['n']} / {c['b']['n']}",
                **({"Δ CSAT [95% CI]": _mean_diff(s["csat"]) if "csat" in s else "–"} if reported else {}),
            }
        )
    return pd.DataFrame(rows).set_index("stage") if rows else pd.DataFrame()


def _diff(d: dict[str, Any]) -> str:
    if d["difference"] is None:
        return "–"
    text = f"{d['difference'] * 100:+.1f} pts [{d['ci_low'] * 100:+.0f}, {d['ci_high'] * 100:+.0f}]"
    return text + (" ★" if d["significant"] else "")


def _mean_diff(d: dict[str, Any]) -> str:
    """A difference of mean CSAT (B − A) with its interval and the answers on each side."""
    if d["difference"] is None:
        return "–"
    interval = f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" if d["ci_low"] is not None else ""
    return f"{d['difference']:+.2f}{interval} n={d['a_n']}/{d['b_n']}" + (" ★" if d["significant"] else "")


def render(ctx: PageContext) -> None:
    st.title("Compare")
    sides = _sides(ctx)
    if sides is None:
        return
    a, b, label = sides
    # The sidebar's journey type and channel narrow both sides alike.
    a = a.replace(journey=ctx.params.journey, channel=ctx.params.channel)
    b = b.replace(journey=ctx.params.journey, channel=ctx.params.channel)
    comparison = ctx.compare(a, b)
    st.caption(f"{label}. ★ = the 95% interval of the difference excludes zero.")
    journeys = sorted({s["journey"] for s in comparison.get("stages", [])})
    if not journeys:
        st.info("Side B has no stage visits; pick another split or cohort.")
        return
    diffs = comparison.get("journeys", {})
    for journey in journeys:
        st.divider()
        d = diffs.get(journey)
        head = f"{journey}"
        if d and d["difference"] is not None:
            head += (
                f" · whole journey {pct(d['a']['value'], 1)} → {pct(d['b']['value'], 1)} ({_diff(d)}; "
                f"n={d['a']['n']:,} / {d['b']['n']:,})"
            )
        st.subheader(head)
        left, right = st.columns(2)
        with left:
            st.plotly_chart(charts.compare_chart(comparison, journey, "completion"), key=f"cmp_c_{journey}")
        with right:
            st.plotly_chart(charts.compare_chart(comparison, journey, "reentry"), key=f"cmp_r_{journey}")
        st.table(_table(comparison, journey))


if __name__ == "__main__":  # executed by st.navigation as a page
    run_page(render)

"""Plotly figures built from the API/library dicts (no Streamlit, no database).

Kept apart from the pages so each chart is a pure function of the data it
shows; the pages only choose which one and where. Rates are drawn with their
95% intervals as error bars wherever the data has them: a stage that looks bad
on twelve journeys should look uncertain too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from journeyscope import conventions as cv
from journeyscope.dashboard.insights import NOT_ENOUGH, pct

__all__ = [
    "compare_chart",
    "fail_heatmap",
    "friction_chart",
    "funnel_chart",
    "histogram_grid",
    "rate_chart",
    "retention_heatmap",
    "sankey",
    "timeline",
]

GOOD = "#2e9d5b"
BAD = "#d6453d"
NEUTRAL = "#9aa3ad"
ACCENT = "#3b6fd8"
WARN = "#e8a33d"
CHANNEL_COLORS = {
    "chat": "#3b6fd8",
    "email": "#8e5bd6",
    "voice": "#e8a33d",
    "web": "#2e9d5b",
    "app": "#17a2b8",
    "sms": "#d65b9a",
    "whatsapp": "#25a55f",
}


def _layout(fig: go.Figure, height: int, title: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 1, "xanchor": "right"},
        **extra,
    )
    return fig


def funnel_chart(journey: dict[str, Any], highlight: str | None = None) -> go.Figure:
    """Per stage, journeys entered split into completed, dropped and still open (bar height = entered)."""
    stages = [s["stage"] for s in journey["stages"]]
    fig = go.Figure()
    parts = (
        ("completed", GOOD, lambda s: s["completed"]),
        ("dropped", BAD, lambda s: s["dropped"]),
        ("open", NEUTRAL, lambda s: s.get("open", 0)),
    )
    for name, color, value in parts:
        fig.add_bar(
            name=name,
            x=stages,
            y=[value(s) for s in journey["stages"]],
            marker_color=color,
            hovertemplate=f"%{{x}}: %{{y}} journeys {name}<extra></extra>",
        )
    fig.add_scatter(
        x=stages,
        y=[s["entered"] for s in journey["stages"]],
        mode="text",
        text=[f"{s['entered']} in · {pct(s['completion_rate'])} done" for s in journey["stages"]],
        textposition="top center",
        showlegend=False,
        hoverinfo="skip",
    )
    if highlight in stages:
        fig.add_vrect(
            x0=stages.index(highlight) - 0.45,
            x1=stages.index(highlight) + 0.45,
            fillcolor=BAD,
            opacity=0.08,
            line_width=0,
        )
    top = max([s["entered"] for s in journey["stages"]] or [1])
    fig.update_yaxes(title="journeys", range=[0, top * 1.18])
    return _layout(fig, 380, "journeys per stage: completed, dropped, still open", barmode="stack")


def _rate_trace(stages: Sequence[dict[str, Any]], key: str, highlight: str | None) -> go.Scatter:
    values = [s[key] for s in stages]
    lows = [(s.get(f"{key}_ci") or [None, None])[0] for s in stages]
    highs = [(s.get(f"{key}_ci") or [None, None])[1] for s in stages]
    plus = [(h - v) if h is not None and v is not None else 0 for v, h in zip(values, highs)]
    minus = [(v - lo) if lo is not None and v is not None else 0 for v, lo in zip(values, lows)]
    return go.Scatter(
        x=[s["stage"] for s in stages],
        y=values,
        mode="markers+text",
        showlegend=False,
        marker={"size": 11, "color": [BAD if s["stage"] == highlight else ACCENT for s in stages]},
        error_y={"type": "data", "array": plus, "arrayminus": minus, "thickness": 1.5, "width": 5},
        text=[pct(v) for v in values],
        textposition="middle right",
        cliponaxis=False,
        customdata=[[s["entered"], pct(lo), pct(hi)] for s, lo, hi in zip(stages, lows, highs)],
        hovertemplate="%{x}: %{y:.1%} of %{customdata[0]} journeys (95% CI %{customdata[1]}–%{customdata[2]})"
        "<extra></extra>",
    )


def rate_chart(journey: dict[str, Any], highlight: str | None = None) -> go.Figure:
    """Completion (top) and re-entry (bottom) rate per stage with 95% intervals; the highlighted stage in red.

    One figure with two panels rather than two figures: every plotly chart costs the browser
    a render, and the overview draws this once per journey type.
    """
    from plotly.subplots import make_subplots

    stages = journey["stages"]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.16,
        subplot_titles=("completion rate (95% CI)", "re-entry rate (95% CI)"),
    )
    fig.add_trace(_rate_trace(stages, "completion_rate", highlight), row=1, col=1)
    fig.add_trace(_rate_trace(stages, "reentry_rate", highlight), row=2, col=1)
    # Completion zoomed to where the intervals are (the axis says so), so a 9-point gap is visible.
    low = min(
        [
            (s.get("completion_rate_ci") or [None, None])[0]
            for s in stages
            if (s.get("completion_rate_ci") or [None])[0] is not None
        ]
        + [1.0]
    )
    fig.update_yaxes(
        tickformat=".0%", range=[max(0.0, math.floor((low - 0.05) * 10) / 10), 1.02], row=1, col=1
    )
    top = max([(s.get("reentry_rate_ci") or [0, 0])[1] or 0 for s in stages] + [0.05])
    fig.update_yaxes(tickformat=".0%", range=[0, top * 1.2], row=2, col=1)
    fig.update_annotations(font_size=13, x=0, xanchor="left")
    fig = _layout(fig, 380, None, showlegend=False)
    fig.update_layout(margin={"t": 30})
    return fig


def fail_heatmap(
    stages: Sequence[str],
    evaluators: Sequence[str],
    rates: Sequence[Sequence[float | None]],
    sizes: Sequence[Sequence[int]],
    highlight: str | None = None,
) -> go.Figure:
    """Fail rate of every evaluator at every stage (darker = fails more), with the visits scored.

    A cell without a rate (fewer scored visits than :data:`~journeyscope.dashboard.insights.MIN_SCORED`,
    see :func:`~journeyscope.dashboard.insights.fail_matrix`) has no colour and says "not enough data".
    """
    text = [
        [
            f"{pct(r)} n={n:,}" if r is not None else (f"{NOT_ENOUGH} (n={n})" if n else "")
            for r, n in zip(row, size)
        ]
        for row, size in zip(rates, sizes)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=[[r if r is not None else None for r in row] for row in rates],
            x=list(stages),
            y=list(evaluators),
            text=text,
            texttemplate="%{text}",
            colorscale="Reds",
            zmin=0,
            zmax=max(0.3, _max(rates)),
            customdata=sizes,
            hovertemplate="%{y} at %{x}: %{text} (visits it could not score are left out)<extra></extra>",
            colorbar={"title": "fail rate", "tickformat": ".0%"},
            xgap=2,
            ygap=2,
        )
    )
    if highlight in stages:
        i = list(stages).index(highlight)
        fig.add_shape(
            type="rect",
            x0=i - 0.5,
            x1=i + 0.5,
            y0=-0.5,
            y1=len(evaluators) - 0.5,
            line={"color": BAD, "width": 2},
        )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 60 + 28 * max(1, len(evaluators)), "evaluator fail rate by stage")


def _max(rows: Sequence[Sequence[float | None]]) -> float:
    return max((r for row in rows for r in row if r is not None), default=0.0)


def histogram_grid(distribution: dict[str, Any], evaluators: Sequence[str]) -> go.Figure:
    """Small multiples: one score histogram per evaluator, from SQL-binned counts."""
    from plotly.subplots import make_subplots

    entries = {e["evaluator"]: e for e in distribution.get("evaluators", [])}
    names = [n for n in evaluators if n in entries]
    cols = 4 if len(names) > 4 else max(1, len(names))
    rows = (len(names) + cols - 1) // cols or 1
    edges = distribution["edges"]
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    width = (edges[1] - edges[0]) * 0.9 if len(edges) > 1 else 0.1
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[_short(n) for n in names],
        horizontal_spacing=0.05,
        vertical_spacing=0.18,
    )
    for i, name in enumerate(names):
        entry = entries[name]
        colors = [BAD if c < 0.5 else (WARN if c < 0.7 else GOOD) for c in centres]
        fig.add_bar(
            x=centres,
            y=entry["counts"],
            width=width,
            marker_color=colors,
            showlegend=False,
            hovertemplate=f"{name}<br>score %{{x:.2f}}: %{{y}} visits<extra></extra>",
            row=i // cols + 1,
            col=i % cols + 1,
        )
    fig.update_xaxes(range=[0, 1], tickformat=".1f")
    fig.update_annotations(font_size=12)
    return _layout(fig, 190 * rows + 40, None)


def _short(name: str) -> str:
    return name.replace(cv.EVALUATOR_PREFIX, "").replace("conversation_", "conv. ")


def retention_heatmap(handoffs: Sequence[dict[str, Any]], journey: str, order: Sequence[str]) -> go.Figure:
    """Mean context-retention score by hand-off (previous stage → this stage)."""
    rows = [h for h in handoffs if h["journey"] == journey]
    known = list(order) + sorted(({h["from"] for h in rows} | {h["to"] for h in rows}) - set(order))
    sources = [s for s in known if any(h["from"] == s for h in rows)]
    targets = [s for s in known if any(h["to"] == s for h in rows)]
    z: list[list[float | None]] = [[None] * len(targets) for _ in sources]
    n: list[list[int]] = [[0] * len(targets) for _ in sources]
    text: list[list[str]] = [[""] * len(targets) for _ in sources]
    for h in rows:
        i, j = sources.index(h["from"]), targets.index(h["to"])
        z[i][j] = h["mean_retention"]
        n[i][j] = h["visits"]
        text[i][j] = f"{h['mean_retention']:.2f}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=targets,
            y=sources,
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmin=0,
            zmax=1,
            customdata=n,
            hovertemplate="%{y} → %{x}: mean retention %{z:.2f} over %{customdata} visits<extra></extra>",
            colorbar={"title": "retention"},
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(title="into stage")
    fig.update_yaxes(title="from stage", autorange="reversed")
    return _layout(fig, 120 + 34 * max(1, len(sources)), "context retention across hand-offs")


_END_COLORS = {"(completed)": GOOD, "(exit)": BAD, "(in progress)": NEUTRAL}


def sankey(transitions: Sequence[dict[str, Any]], journey: str, order: Sequence[str]) -> go.Figure:
    """Observed stage-to-stage flow; backtracks in orange, exits in red, completions in green."""
    rows = [t for t in transitions if t["journey"] == journey]
    stages = list(order) + sorted({t["from"] for t in rows} - set(order) - set(_END_COLORS))
    ends = [e for e in _END_COLORS if any(t["to"] == e for t in rows)]
    extra = sorted({t["to"] for t in rows} - set(stages) - set(ends))
    labels = stages + extra + ends
    index = {name: i for i, name in enumerate(labels)}
    link_colors = []
    for t in rows:
        if t["to"] in _END_COLORS:
            link_colors.append(_rgba(_END_COLORS[t["to"]], 0.35))
        elif t["backtrack"]:
            link_colors.append(_rgba(WARN, 0.75))
        else:
            link_colors.append(_rgba(ACCENT, 0.3))
    node_colors = [_END_COLORS.get(name, ACCENT) for name in labels]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": node_colors, "pad": 22, "thickness": 18},
            textfont={"size": 13, "color": "#1f2933"},
            link={
                "source": [index[t["from"]] for t in rows],
                "target": [index[t["to"]] for t in rows],
                "value": [t["journeys"] for t in rows],
                "color": link_colors,
                "customdata": ["backtrack" if t["backtrack"] else "" for t in rows],
                "hovertemplate": "%{source.label} → %{target.label}: %{value} journeys %{customdata}<extra></extra>",
            },
        )
    )
    return _layout(fig, 460, f"{journey}: observed flow between stages")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def timeline(detail: dict[str, Any], order: Sequence[str] = ()) -> go.Figure:
    """The journey's visits on a time axis, one row per stage, coloured by channel; turns as ticks."""
    visits = detail["visits"]
    stages = [s for s in order if any(v["stage"] == s for v in visits)]
    stages += [v["stage"] for v in visits if v["stage"] not in stages]
    stages = list(dict.fromkeys(stages))
    fig = go.Figure()
    seen: set[str] = set()
    for v in visits:
        start, end = _time(v["started_at"]), _time(v["ended_at"])
        if start is None or end is None:
            continue
        channel = v["channel"] or "?"
        millis = max((end - start).total_seconds() * 1000, 20_000)
        if channel not in seen:  # a clean legend entry per channel (bars carry an outcome outline)
            fig.add_bar(
                x=[None],
                y=[None],
                orientation="h",
                name=channel,
                legendgroup=channel,
                marker_color=CHANNEL_COLORS.get(channel, NEUTRAL),
            )
        fig.add_bar(
            base=[start],
            x=[millis],
            y=[v["stage"]],
            orientation="h",
            name=channel,
            legendgroup=channel,
            showlegend=False,
            marker_color=CHANNEL_COLORS.get(channel, NEUTRAL),
            marker_line={
                "color": BAD if v["outcome"] in ("abandoned", "failed", "escalated") else "white",
                "width": 2,
            },
            hovertemplate=(
                f"{v['stage']} (visit {v['visit']}) on {channel}<br>{v['started_at']} → "
                f"{v['ended_at']}<br>outcome: {v['outcome']}<extra></extra>"
            ),
        )
        seen.add(channel)
    turns_x, turns_y, turns_text = [], [], []
    for v in visits:
        for t in v["transcript"]:
            ts = _time(t["ts"])
            if ts is not None:
                turns_x.append(ts)
                turns_y.append(v["stage"])
                turns_text.append(f"{t['role']}: {t['text'][:80]}")
    if turns_x:
        fig.add_scatter(
            x=turns_x,
            y=turns_y,
            mode="markers",
            name="turns",
            text=turns_text,
            marker={"symbol": "line-ns-open", "size": 14, "color": "#333"},
            hovertemplate="%{x}<br>%{text}<extra></extra>",
        )
    fig.update_xaxes(type="date")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(reversed(stages)))
    return _layout(
        fig,
        90 + 40 * max(1, len(stages)),
        "timeline across stages and channels (red outline: visit abandoned, failed or escalated)",
        barmode="overlay",
    )


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def compare_chart(comparison: dict[str, Any], journey: str, metric: str = "completion") -> go.Figure:
    """B − A per stage with Newcombe 95% intervals; significant differences coloured and starred."""
    rows = [
        s for s in comparison["stages"] if s["journey"] == journey and s[metric]["difference"] is not None
    ]
    x = [s["stage"] for s in rows]
    d = [s[metric]["difference"] for s in rows]
    plus = [s[metric]["ci_high"] - s[metric]["difference"] for s in rows]
    minus = [s[metric]["difference"] - s[metric]["ci_low"] for s in rows]
    good_up = metric == "completion"
    colors = [
        (GOOD if (v > 0) == good_up else BAD) if s[metric]["significant"] else NEUTRAL
        for s, v in zip(rows, d)
    ]
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=d,
            mode="markers+text",
            marker={"size": 12, "color": colors},
            error_y={"type": "data", "array": plus, "arrayminus": minus, "thickness": 1.5, "width": 6},
            text=[
                f"{v * 100:+.1f} pts" + (" ★" if s[metric]["significant"] else "") for s, v in zip(rows, d)
            ],
            textposition="middle right",
            customdata=[[pct(s[metric]["a"]["value"], 1), pct(s[metric]["b"]["value"], 1)] for s in rows],
            hovertemplate="%{x}: A %{customdata[0]} → B %{customdata[1]} (%{y:+.1%})<extra></extra>",
        )
    )
    fig.add_hline(y=0, line_color="#666", line_width=1)
    name = "completion" if metric == "completion" else "re-entry"
    fig.update_yaxes(tickformat="+.0%", title=f"{name} B − A")
    fig.update_xaxes(range=[-0.5, len(x) - 0.1])  # room for the last point's label
    return _layout(fig, 300, f"{name} rate difference, B − A (95% CI, ★ significant)", showlegend=False)


def friction_chart(journey: dict[str, Any], stage: str) -> go.Figure:
    """Fail rate of each ``friction_*`` signal at ``stage`` against the journey's other stages, with 95% CIs."""
    here: dict[str, dict[str, Any]] = {}
    rest: dict[str, list[int]] = {}
    for s in journey["stages"]:
        for e in s.get("evaluators", []):
            if not e["evaluator"].startswith(cv.FRICTION_PREFIX) or not e.get("scored"):
                continue
            if s["stage"] == stage:
                here[e["evaluator"]] = e
            else:
                agg = rest.setdefault(e["evaluator"], [0, 0])
                agg[0] += round((e["fail_rate"] or 0) * e["scored"])
                agg[1] += e["scored"]
    names = sorted(here)
    fig = go.Figure()
    fig.add_bar(
        name=f"at {stage}",
        x=[n.removeprefix(cv.FRICTION_PREFIX) for n in names],
        y=[here[n]["fail_rate"] for n in names],
        marker_color=BAD,
        error_y={
            "type": "data",
            "array": [(here[n]["fail_rate_ci"][1] or 0) - here[n]["fail_rate"] for n in names],
            "arrayminus": [here[n]["fail_rate"] - (here[n]["fail_rate_ci"][0] or 0) for n in names],
        },
        customdata=[here[n]["scored"] for n in names],
        hovertemplate="%{x}: fails %{y:.1%} of %{customdata} visits here<extra></extra>",
    )
    fig.add_bar(
        name="other stages",
        x=[n.removeprefix(cv.FRICTION_PREFIX) for n in names],
        y=[(rest[n][0] / rest[n][1]) if rest.get(n, [0, 0])[1] else None for n in names],
        marker_color=NEUTRAL,
        hovertemplate="%{x}: fails %{y:.1%} at the other stages<extra></extra>",
    )
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return _layout(fig, 300, "friction signals: share of visits failing", barmode="group")

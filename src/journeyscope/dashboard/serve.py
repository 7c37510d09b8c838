"""``python -m journeyscope.dashboard.serve run APP ...``: ``streamlit run`` with the pages' libraries warmed.

Streamlit imports a page's libraries only when the first visitor's session runs the script,
so the first visit paid for importing pandas, plotly and DuckDB and for plotly's first figure
(seconds on a busy machine). Here that happens before the server starts (the launcher announces
the URL once the server answers, so after it); the script then finds them imported. Not in a
thread beside the server: a page importing pandas while the thread is half-way through would see
a partly initialised module. Nothing Streamlit-specific is imported early (the dashboard's cached
functions must be created inside Streamlit's runtime).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def _warm() -> None:
    import duckdb  # noqa: F401
    import pandas  # noqa: F401
    import plotly.express  # noqa: F401
    import plotly.graph_objects as go
    import plotly.subplots  # noqa: F401

    import journeyscope.warehouse.compare
    import journeyscope.warehouse.flows
    import journeyscope.warehouse.funnel
    import journeyscope.warehouse.health
    import journeyscope.warehouse.journey_detail  # noqa: F401

    # plotly builds its property validators on first use of each trace type
    go.Figure([go.Bar(x=[0], y=[0]), go.Scatter(x=[0], y=[0]), go.Heatmap(z=[[0]])])


def main() -> None:
    _warm()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()

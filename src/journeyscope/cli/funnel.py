"""``journeyscope funnel``: the per-stage funnel as a table or as DESIGN.md JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.console import Console

from journeyscope.cli.common import console, db_option, map_option
from journeyscope.cli.output import SHORT_LEGEND, TABLE_FORMATS, emit_csv, emit_json, short_name, table
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport, funnel
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.stats import Mean, Rate


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low * 100:.0f}–{high * 100:.0f}]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _between(low: float | None, high: float | None, digits: int) -> str:
    return "" if low is None or high is None else f" [{low:.{digits}f}–{high:.{digits}f}]"


def _mean(m: Mean) -> str:
    return "–" if m.mean is None else f"{m.mean:.2f}" + _between(m.low, m.high, 1)


def _rate(r: Rate) -> str:
    return _pct(r.value) + _ci(r.low, r.high)


def render(report: FunnelReport, console: Console) -> None:
    """Per journey type: the funnel, re-entry and time in stage, then each evaluator at each stage.

    Three narrow tables rather than one wide one, so an 80-column terminal shows every column with
    no name cut; rates carry their 95% intervals, evaluator fail rates the visits they count.
    """
    if report.note:
        console.print(report.note)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for journey in report.journeys:
        order = "journey map order" if journey.order == "map" else "order inferred from first entries (no journey map)"
def _between(low: float | None, high: float | None, digits: int) -> str:
    return "" if low is None or high is None else f" [{low:.{digits}f}–{high:.{digits}f}]"


def _mean(m: Mean) -> str:
    return "–" if m.mean is None else f"{m.mean:.2f}" + _between(m.low, m.high, 1)


def _rate(r: Rate) -> str:
    return _pct(r.value) + _ci(r.low, r.high)


@click.command("funnel")
@db_option
@map_option
@click.option("--journey", help="Only this journey type.")
@click.option("--cohort", help="Only journeys in this cohort.")
@click.option("--channel", help="Only visits on this channel.")
@click.option("--since", type=click.DateTime(), help="Visits that started at or after this UTC time.")
@click.option("--until", type=click.DateTime(), help="Visits that started before this UTC time.")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True,
              help="table for people; json (DESIGN.md shape) or csv (one row per stage) for scripts.")
def funnel_command(
    db: str,
    map_file: str | None,
    journey: str | None,
    cohort: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
) -> None:
    """Per-stage funnel: entered, completed, conversion, drop-off, re-entry, time in stage, scores."""
    filters = Filters(journey=journey, cohort=cohort, channel=channel, since=since, until=until)
    with Warehouse(db, read_only=True, journey_map=load_journey_map(map_file)) as warehouse:
        report = funnel(warehouse, filters)
    if fmt == "json":
        emit_json(report.as_dict())
    elif fmt == "csv":
        emit_csv(csv_rows(report))
    else:
        render(report, console())

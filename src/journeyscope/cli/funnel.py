"""``journeyscope funnel``: the per-stage funnel as a table or as DESIGN.md JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from journeyscope.cli.common import db_option, map_option
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport, StageFunnel, funnel
from journeyscope.warehouse.journey_map import load_journey_map


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low * 100:.0f}–{high * 100:.0f}]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _csat(stage: StageFunnel) -> str:
    csat = stage.feedback.csat if stage.feedback is not None else None
    return "–" if csat is None or csat.mean is None else f"{csat.mean:.2f} (n={csat.n})"


def render(report: FunnelReport, console: Console) -> None:
    """Print one table per journey type, rates with their 95% intervals."""
    if report.note:
        console.print(report.note)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for journey in report.journeys:
        order = "journey map order" if journey.order == "map" else "order inferred from first entries (no journey map)"
        table = Table(title=f"{journey.journey}: {journey.total} journeys ({order})", title_justify="left")
        reported = any(s.feedback is not None for s in journey.stages)
        columns = ["stage", "entered", "completed", "completion [95% CI]", "conversion", "dropped",
                   "re-entered", "re-entry", "visits", "time median/p90"] + (["CSAT"] if reported else [])
        for column in columns:
            table.add_column(column, justify="left" if column == "stage" else "right")
        for s in journey.stages:
            table.add_row(
                s.stage + ("" if s.in_map else " (not in map)"),
                str(s.entered),
                str(s.completed),
                _pct(s.completion.value) + _ci(s.completion.low, s.completion.high),
                _pct(s.conversion.value) if s.conversion else "–",
                str(s.dropped),
                str(s.reentered),
                _pct(s.reentry.value),
                str(s.visits),
                f"{_duration(s.median_seconds)} / {_duration(s.p90_seconds)}",
                *([_csat(s)] if reported else []),
            )
        console.print(table)


@click.command("funnel")
@db_option
@map_option
@click.option("--journey", help="Only this journey type.")
@click.option("--cohort", help="Only journeys in this cohort.")
@click.option("--channel", help="Only visits on this channel.")
@click.option("--since", type=click.DateTime(), help="Visits that started at or after this UTC time.")
@click.option("--until", type=click.DateTime(), help="Visits that started before this UTC time.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
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
    """Per-stage funnel: entered, completed, conversion, drop-off, re-entry (with 95% intervals)."""
    filters = Filters(journey=journey, cohort=cohort, channel=channel, since=since, until=until)
    with Warehouse(db, read_only=True, journey_map=load_journey_map(map_file)) as warehouse:
        report = funnel(warehouse, filters)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        # Piped output has no terminal width: give the table room rather than folding every cell.
        render(report, Console(width=None if sys.stdout.isatty() else 150))

"""``journeyscope monitors backtest``: when each monitor would have fired and resolved over history."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.table import Table

from journeyscope.cli.common import db_option, map_option
from journeyscope.errors import InvalidInputError
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.monitors import Alert, backtest, load_monitors
from journeyscope.warehouse.monitors.engine import validate


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _number(value: float) -> str:
    return f"{value:.3g}"


def render(alerts: list[Alert], console: Console) -> None:
    """One row per alarm, in firing order."""
    if not alerts:
        console.print("no monitor would have fired")
        return
    table = Table(title=f"{len(alerts)} alerts", title_justify="left")
    for column in ("monitor", "scope", "fired (UTC)", "resolved (UTC)", "value", "baseline", "n"):
        table.add_column(column, justify="right" if column in ("value", "baseline", "n") else "left")
    for a in alerts:
        scope = "/".join(v for v in (a.scope.get(d) for d in ("journey", "stage", "cohort", "channel", "evaluator")) if v)
        table.add_row(a.monitor, scope or "(all)", a.fired_at.strftime("%Y-%m-%d %H:%M"),
                      a.resolved_at.strftime("%Y-%m-%d %H:%M") if a.resolved_at else "firing",
                      _number(a.value), _number(a.baseline), str(a.n))
    console.print(table)


@click.group("monitors")
def monitors() -> None:
    """Monitors and alerts: backtest a monitors file against history."""


@monitors.command("backtest")
@db_option
@map_option
@click.option("--monitors", "monitors_file", type=click.Path(dir_okay=False),
              help="Monitors file (TOML). Default: the shipped default set.")
@click.option("--since", type=click.DateTime(), help="Replay from this UTC time (default: the first data).")
@click.option("--until", type=click.DateTime(),
              help="Replay up to this UTC time (default: an hour after the last visit ended, at most now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def backtest_command(db: str, map_file: str | None, monitors_file: str | None, since: datetime | None,
                     until: datetime | None, fmt: str) -> None:
    """Replay history as if live and list when each monitor would have fired and resolved."""
    monitor_set = load_monitors(monitors_file)
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInputError(f"--since ({since:%Y-%m-%d %H:%M}) must be before --until ({until:%Y-%m-%d %H:%M})")
    with Warehouse(db, read_only=True, journey_map=load_journey_map(map_file)) as warehouse:
        validate(warehouse, monitor_set)
        alerts = backtest(warehouse, monitor_set, since=since, until=until)
    if fmt == "json":
        click.echo(json.dumps({"alerts": [a.as_dict() for a in alerts]}, indent=2))
    else:
        render(alerts, Console(width=None if sys.stdout.isatty() else 150))

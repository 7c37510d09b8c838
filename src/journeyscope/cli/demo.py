"""``journeyscope demo``: simulate journeys into a warehouse and show what happened."""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyscope.cli.common import db_option
from journeyscope.demo import run_demo
from journeyscope.simulator import SimulationConfig


@click.command()
@db_option
@click.option("--journeys", type=click.IntRange(min=1), default=2000, show_default=True, help="How many journeys.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same journeys.")
@click.option("--days", type=click.IntRange(min=1), default=14, show_default=True, help="Length of the simulated period.")
@click.option(
    "--bridge-day",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Day the app-install context bridge ships (>= --days: never).",
)
@click.option("--fresh", is_flag=True, help="Delete the warehouse file first.")
@click.option("--no-dashboard", is_flag=True, help="Do not open the dashboard afterwards.")
@click.option("--dashboard-port", default=8501, show_default=True, type=click.IntRange(1, 65535))
def demo(
    db: str, journeys: int, seed: int, days: int, bridge_day: int, fresh: bool, no_dashboard: bool, dashboard_port: int
) -> None:
    """Simulate customer journeys through the real instrumentation into the warehouse.

    Includes the streaming-onboarding case study: the app-install agent does not
    see the content-prefs context until the context bridge ships.
    """
    console = Console(stderr=True)
    config = SimulationConfig(journeys=journeys, seed=seed, days=days, bridge_day=bridge_day if bridge_day < days else None)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=journeys < 200,
    ) as progress:
        task = progress.add_task("simulating journeys", total=journeys)
        scoring: list[int] = []

        def on_eval(done: int, total: int) -> None:
            if not scoring:
                scoring.append(progress.add_task("scoring stage visits", total=total))
            progress.update(scoring[0], completed=done, total=total)

        result = run_demo(
            db, config, fresh=fresh, progress=lambda n: progress.advance(task, n), eval_progress=on_eval
        )
    elapsed = time.perf_counter() - started
    summary = result.summary
    out = Console()
    out.print(
        f"[bold]{journeys}[/] journeys simulated, {result.spans_recorded} spans recorded in {elapsed:.1f}s "
        f"→ {result.db}: {summary['spans']} spans, {summary['journeys']} journeys, {summary['customers']} customers"
    )
    table = Table("journey", "stage", "journeys", "spans", title="Stages in the warehouse")
    for row in summary["stages"]:
        table.add_row(str(row["journey"]), str(row["stage"]), str(row["journeys"]), str(row["spans"]))
    out.print(table)
    if result.evaluation is not None:
        ev = result.evaluation
        out.print(f"evaluated {ev.scored} stage visits ({ev.results} results, {ev.errors} errors) "
                  f"in {ev.seconds:.1f}s; {ev.skipped_open} still open")
    out.print(f"funnel: journeyscope funnel --db {result.db}")
    if not no_dashboard:
        from journeyscope.dashboard.launch import run

        out.print(f"opening the dashboard on http://127.0.0.1:{dashboard_port} (Ctrl-C to stop)")
        run(db=result.db, port=dashboard_port, open_browser=True)

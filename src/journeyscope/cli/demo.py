"""``journeyscope demo``: simulate journeys into a warehouse and show what happened."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from journeyscope.cli.common import console, db_option, map_option
from journeyscope.demo import demo_map_beside, run_demo
from journeyscope.ports import ensure_free
from journeyscope.simulator import SimulationConfig


@click.command()
@db_option
@map_option
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
@click.option("--no-dashboard", is_flag=True, help="Do not serve the dashboard afterwards.")
@click.option("--port", "--dashboard-port", "port", default=8501, show_default=True,
              type=click.IntRange(1, 65535), help="Dashboard port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the dashboard on.")
@click.option("--no-browser", is_flag=True,
              help="Do not open a browser (one opens only where a desktop can show it).")
def demo(
    db: str, map_file: str | None, journeys: int, seed: int, days: int, bridge_day: int, fresh: bool,
    no_dashboard: bool, port: int, host: str, no_browser: bool,
) -> None:
    """Simulate customer journeys through the real instrumentation into the warehouse.

    Includes the streaming-onboarding case study: the app-install agent does not
    see the content-prefs context until the context bridge ships. Then serves the
    dashboard until Ctrl-C (no prompt, whether or not stdin is a terminal).
    """
    if not no_dashboard:  # a taken port is found before minutes of simulating, not after
        ensure_free(host, port)
    if map_file is None and Path(db).resolve().parent.is_dir():
        map_file = str(demo_map_beside(db))
    err = console(stderr=True)
    config = SimulationConfig(journeys=journeys, seed=seed, days=days, bridge_day=bridge_day if bridge_day < days else None)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
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
            db, config, fresh=fresh, progress=lambda n: progress.advance(task, n), eval_progress=on_eval,
            map_file=map_file,
        )
    elapsed = time.perf_counter() - started
    summary = result.summary
    out = console()
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
    out.print(f"journey map: {result.map_file}", highlight=False)
    out.print(f"funnel: journeyscope funnel --db {result.db}", highlight=False)
    if not no_dashboard:
        from journeyscope.dashboard.launch import run

        run(db=result.db, map_file=result.map_file, host=host, port=port, open_browser=not no_browser,
            announce=lambda url_line: out.print(url_line, highlight=False, soft_wrap=True))

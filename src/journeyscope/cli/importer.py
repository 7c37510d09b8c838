"""``journeyscope import``: journeys from a JSONL file (DESIGN.md format) into the warehouse."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from journeyscope.cli.common import db_option
from journeyscope.errors import ImportLineError
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.importer import import_jsonl

#: Broken lines listed one by one at most; the rest are counted.
_MAX_LISTED = 20


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@click.option("--map", "map_file", type=click.Path(dir_okay=False), envvar="JOURNEYSCOPE_MAP",
              help="Journey map (TOML). Default: ./journeys.toml when present. Env: JOURNEYSCOPE_MAP.")
def import_(file: str, db: str, map_file: str | None) -> None:
    """Import journeys from FILE.jsonl (or .jsonl.gz), one journey a line; bad lines are reported and skipped."""
    journey_map = load_journey_map(map_file)
    skipped: list[ImportLineError] = []

    def on_skip(problem: ImportLineError) -> None:
        skipped.append(problem)
        if len(skipped) <= _MAX_LISTED:
            progress.console.print(f"[yellow]skipped[/] {file}:{problem.line}: {problem.detail}", highlight=False)

    size = Path(file).stat().st_size
    with Warehouse(db, journey_map=journey_map) as warehouse:
        with Progress(
            TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            transient=True, disable=size < 1_000_000,
        ) as progress:
            task = progress.add_task("import", total=size)
            summary = import_jsonl(
                warehouse, file, on_progress=lambda done: progress.update(task, completed=done), on_skip=on_skip
            )
    lines = ", ".join(str(n) for n in summary.skipped_lines[:_MAX_LISTED])
    more = f" (+{len(summary.skipped) - _MAX_LISTED} more)" if len(summary.skipped) > _MAX_LISTED else ""
    click.echo(
        f"imported {summary.journeys} journeys, {summary.spans} spans "
        f"({summary.new_spans} new, {summary.duplicates} already stored) into {db}"
    )
    for warning in summary.warnings[:_MAX_LISTED]:
        click.echo(f"left out {file}:{warning.line}: {warning.detail}", err=True)
    if len(summary.warnings) > _MAX_LISTED:
        click.echo(f"left out values on {len(summary.warnings) - _MAX_LISTED} more items", err=True)
    if summary.skipped:
        click.echo(f"skipped {len(summary.skipped)} lines: {lines}{more}", err=True)

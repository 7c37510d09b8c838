"""``journeyscope import``: journeys from a JSONL file (docs/contracts.md format) into the warehouse."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from journeyscope.cli.common import console, db_option, map_option
from journeyscope.errors import ImportLineError, InvalidInputError
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.importer import ImportSummary, import_jsonl

#: Broken lines listed one by one at most; the rest are counted.
MAX_LISTED = 5


def _problem(file: str, problem: ImportLineError) -> str:
    return f"{file}:{problem.line}: {problem.detail}"


def nothing_imported(file: str, summary: ImportSummary) -> str:
    """The one line for a file without a single valid journey."""
    if not summary.skipped:
        return f"no journeys in {file}: it has no lines (one JSON journey a line expected)"
    first = summary.skipped[0]
    more = len(summary.skipped) - 1
    rest = f"; {more} more line{'s' if more != 1 else ''} could not be read either" if more else ""
    return f"no journeys in {file}: line {first.line}: {first.detail}{rest}"


@click.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
@map_option
def import_(file: str, db: str, map_file: str | None) -> None:
    """Import journeys from FILE.jsonl (or .jsonl.gz), one journey a line; bad lines are reported and skipped.

    A file without one valid journey changes nothing (no warehouse is created) and exits 1.
    """
    journey_map = load_journey_map(map_file)
    size = Path(file).stat().st_size
    err = console(stderr=True)
    with contextlib.ExitStack() as stack:
        # Opened at the first valid journey: a file of nothing valid creates no warehouse.
        def open_warehouse() -> Warehouse:
            return stack.enter_context(Warehouse(db, journey_map=journey_map))

        with Progress(
            TextColumn("importing"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=err, transient=True, disable=size < 1_000_000,
        ) as progress:
            task = progress.add_task("import", total=size)
            summary = import_jsonl(
                open_warehouse, file, on_progress=lambda done: progress.update(task, completed=done)
            )
    if not summary.journeys:
        raise InvalidInputError(nothing_imported(file, summary))
    for problem in summary.skipped[:MAX_LISTED]:
        click.echo(f"skipped {_problem(file, problem)}", err=True)
    if len(summary.skipped) > MAX_LISTED:
        click.echo(f"skipped {len(summary.skipped) - MAX_LISTED} more lines (lines "
                   f"{summary.skipped[MAX_LISTED].line}–{summary.skipped[-1].line})", err=True)
    click.echo(
        f"imported {summary.journeys} journeys, {summary.spans} spans "
        f"({summary.new_spans} new, {summary.duplicates} already stored) into {db}"
    )
    for warning in summary.warnings[:MAX_LISTED]:
        click.echo(f"left out {file}:{warning.line}: {warning.detail}", err=True)
    if len(summary.warnings) > MAX_LISTED:
        click.echo(f"left out values on {len(summary.warnings) - MAX_LISTED} more items", err=True)
    if summary.skipped:
        lines = summary.journeys + len(summary.skipped)
        click.echo(f"skipped {len(summary.skipped)} of {lines} lines", err=True)

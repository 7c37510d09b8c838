"""``journeyscope export``: tables out as JSONL, CSV or Parquet."""

from __future__ import annotations

import sys

import click

from journeyscope.cli.common import db_option
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.export import FORMATS, export_names, export_table


@click.command()
@click.argument("table", type=click.Choice(export_names()), metavar="|".join(export_names()))
@db_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File to write (default: standard output).")
def export(table: str, db: str, fmt: str, output: str | None) -> None:
    """Export spans, stage visits or evaluations in the documented record shapes."""
    with Warehouse(db, read_only=True) as warehouse:
        sys.stdout.flush()
        count = export_table(warehouse, table, fmt, output or sys.stdout.buffer)
    if output:
        click.echo(f"wrote {count} {table} records to {output}", err=True)

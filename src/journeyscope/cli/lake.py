"""``journeyscope lake``: move a warehouse file into a lake, and keep a lake compact."""

from __future__ import annotations

import click

from journeyscope.cli.common import db_option, map_option
from journeyscope.warehouse.convert import convert_to_lake
from journeyscope.warehouse.journey_map import load_journey_map


@click.group("lake")
def lake() -> None:
    """Storage on a DuckLake (catalog in PostgreSQL, Parquet on S3 or a directory)."""


@lake.command("convert")
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False),
              help="The warehouse file (DuckDB) to copy from; it is migrated first and left in place.")
@db_option
@map_option
def convert(source: str, db: str, map_file: str | None) -> None:
    """Copy a warehouse file into an empty lake (--db ducklake:..., --data-path)."""
    copied = convert_to_lake(source, db, journey_map=load_journey_map(map_file))
    for table, rows in copied.items():
        click.echo(f"  {table:<22} {rows:>10} rows")
    click.echo(f"converted {source} into the lake: {sum(copied.values())} rows")

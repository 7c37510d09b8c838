"""``journeyscope lake``: move a warehouse file into a lake, and keep a lake compact."""

from __future__ import annotations

import click

from journeyscope.cli.common import db_option, map_option
from journeyscope.errors import ConfigError
from journeyscope.privacy.policy import parse_age
from journeyscope.warehouse.convert import convert_to_lake
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.lake import is_lake
from journeyscope.warehouse.lake_upkeep import compact
from journeyscope.warehouse.store import Warehouse


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


@lake.command("compact")
@db_option
@click.option("--margin", default="1h", show_default=True, metavar="AGE",
              help="Keep snapshots (and their files) this recent: longer than any query runs.")
def compact_command(db: str, margin: str) -> None:
    """Merge a lake's small files and expire old snapshots (run it on a schedule; running queries are safe)."""
    with _open(db) as warehouse:
        done = compact(warehouse, margin_s=parse_age(margin, "--margin"))
    click.echo(f"compacted the lake: {done.files_before} -> {done.files_after} data files, "
               f"{done.snapshots_before} -> {done.snapshots_after} snapshots in {done.seconds:.2f}s")


def _open(db: str) -> Warehouse:
    if not is_lake(db):
        raise ConfigError(f"--db {db!r} is not a lake (ducklake:postgres:<conninfo> or ducklake:CATALOG.duckdb)")
    return Warehouse(db)

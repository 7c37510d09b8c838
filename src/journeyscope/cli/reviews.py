"""``journeyscope reviews import``: people's pass/fail verdicts on evaluator results, from a JSONL file."""

from __future__ import annotations


import click

from journeyscope.cli.common import db_option, require_warehouse
from journeyscope.errors import InvalidInputError
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.audit import default_actor
from journeyscope.warehouse.reviews import import_reviews

#: Rejected lines listed one by one at most; the rest are counted.
_MAX_LISTED = 20


@click.group()
def reviews() -> None:
    """Reviews of evaluator results: what agreement and calibrated thresholds are measured against."""


@reviews.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
@click.option("--reviewer", help="Who gave the reviews that name no reviewer. Default: $JOURNEYSCOPE_ACTOR or the OS user.")
def import_command(file: str, db: str, reviewer: str | None) -> None:
    """Import reviews from FILE.jsonl, one a line:
    {"journey_id", "stage", "visit", "evaluator", "passed": true|false, "reviewer"?, "note"?}.

    Lines naming an unknown visit or evaluator are rejected with the reason; the rest are kept.
    A later review of the same visit and evaluator by the same reviewer supersedes the earlier one.
    """
    require_warehouse(db)
    with Warehouse(db) as warehouse:
        result = import_reviews(warehouse, file, reviewer=reviewer or default_actor())
    for rejected in result.rejected[:_MAX_LISTED]:
        click.echo(f"rejected {file}:{rejected.where}: {rejected.reason}", err=True)
    if len(result.rejected) > _MAX_LISTED:
        click.echo(f"... and {len(result.rejected) - _MAX_LISTED} more rejected lines", err=True)
    if not result.accepted:
        what = f"all {len(result.rejected)} lines were rejected" if result.rejected else "the file holds no reviews"
        raise InvalidInputError(f"no reviews imported from {file}: {what}")
    superseded = f", superseding {result.superseded} earlier" if result.superseded else ""
    rejected = f"; {len(result.rejected)} lines rejected" if result.rejected else ""
    click.echo(f"imported {result.accepted} reviews{superseded} into {db}{rejected}")

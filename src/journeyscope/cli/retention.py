"""``journeyscope retention``: delete journeys older than an age (once; the server runs it on a timer)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import click

from journeyscope.cli.common import db_option, require_warehouse
from journeyscope.errors import ConfigError
from journeyscope.privacy.policy import load_policy, parse_age
from journeyscope.warehouse.erasure import compact_file
from journeyscope.warehouse.lake import is_lake
from journeyscope.warehouse.lake_upkeep import compact as compact_lake
from journeyscope.warehouse.retention import apply_retention
from journeyscope.warehouse.store import Warehouse


@click.command("retention")
@click.option("--older-than", "older_than", metavar="AGE",
              help='Delete journeys whose last activity is older than this ("90d", "12h", "2w"). '
                   "Default: [retention] max_age of the privacy policy.")
@db_option
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
@click.option("--compact/--no-compact", default=True, show_default=True,
              help="Rewrite the file afterwards so deleted rows leave no bytes behind.")
def retention(older_than: str | None, db: str, dry_run: bool, compact: bool) -> None:
    """Delete data older than the retention age (whole journeys), audited."""
    if older_than is not None:
        seconds = parse_age(older_than, "--older-than")
    else:
        policy = load_policy()
        if policy.retention_s is None:
            raise ConfigError(
                "no retention age: pass --older-than AGE or set [retention] max_age in privacy.toml"
            )
        seconds = policy.retention_s
    require_warehouse(db, hint="")
    lake = is_lake(db)
    with Warehouse(db) as warehouse:
        result = apply_retention(warehouse, seconds, now_ns=time.time_ns(), dry_run=dry_run)
        if lake and compact and result.total and not dry_run:
            # On a lake, on a schedule: files mostly deleted are rewritten and snapshots older than the margin
            # expired; running queries keep theirs (forget, not retention, removes rows at once).
            done = compact_lake(warehouse)
            click.echo(f"compacted the lake: {done.files_before} -> {done.files_after} data files")
            compact = False
    cutoff = datetime.fromtimestamp(result.cutoff_ns / 1e9, timezone.utc).isoformat(timespec="seconds")
    if dry_run:
        click.echo(f"dry run: {result.journeys} journeys ended before {cutoff} would be deleted")
        return
    for table, count in result.rows.items():
        click.echo(f"  {table:<16} {count:>8} rows deleted")
    click.echo(f"retention: {result.journeys} journeys ended before {cutoff} deleted, "
               f"{result.total} rows (audit entry {result.audit_id})")
    if compact and result.total:
        c = compact_file(db)
        click.echo(f"compacted {db}: {c.bytes_before:,} -> {c.bytes_after:,} bytes in {c.seconds:.2f}s")

"""``journeyscope forget``: erase one customer from a warehouse file, and prove it."""

from __future__ import annotations


import click

from journeyscope.cli.common import db_option, require_warehouse
from journeyscope.errors import WarehouseError
from journeyscope.warehouse.erasure import forget_customer
from journeyscope.warehouse.lake import is_lake


@click.command("forget")
@click.option("--customer", "customer_id", required=True, help="The customer id (customer.id) to erase.")
@db_option
@click.option("--reference", help="Request reference for the audit log, e.g. a ticket number (never the id).")
@click.option("--also-check", multiple=True, metavar="TEXT",
              help="Another identifier of this customer (an e-mail, a name) to verify is gone.")
@click.option("--no-compact", is_flag=True,
              help="Only delete rows: the file keeps their bytes in free blocks until it is compacted.")
def forget(
    customer_id: str, db: str, reference: str | None, also_check: tuple[str, ...], no_compact: bool
) -> None:
    """Erase a customer's spans, visits, evaluations, routing decisions and redaction log, then verify.

    The warehouse is rewritten into a fresh file (deleted rows leave no bytes behind)
    and its raw bytes are searched for the customer id, their journey ids and every
    --also-check value. Stop 'journeyscope serve' first: the file must not be open.

    An id with no rows is an error (exit 1), so a mistyped id is never taken for an erasure
    done; the request is still recorded in the audit log, and the file checked for the id.
    """
    require_warehouse(db, hint="")
    result = forget_customer(db, customer_id, reference=reference, compact=not no_compact,
                             verify=not no_compact, also_check=list(also_check))
    if not result.total:
        checked = ""
        if result.still_found == []:
            checked = f"; its bytes were checked and do not contain {customer_id!r}"
        raise WarehouseError(
            f"no such customer: {db} holds no rows of customer {customer_id!r}, nothing was erased "
            f"(the request is recorded as audit entry {result.audit_id}{checked}); check the id"
        )
    for table, count in result.rows.items():
        click.echo(f"  {table:<16} {count:>8} rows deleted")
    click.echo(f"erased {result.total} rows of {result.journeys} journeys (audit entry {result.audit_id})")
    if result.compaction is not None:
        c = result.compaction
        if is_lake(db):  # a lake's compaction counts data files, not bytes
            click.echo(f"rewrote the lake's files holding deleted rows and deleted the old ones: "
                       f"{c.bytes_before} -> {c.bytes_after} data files in {c.seconds:.2f}s")
        else:
            click.echo(f"compacted {db}: {c.bytes_before:,} -> {c.bytes_after:,} bytes in {c.seconds:.2f}s")
    if result.still_found:
        raise WarehouseError(
            f"{len(result.still_found)} identifier(s) still found in the bytes of {db}: "
            + ", ".join(result.still_found)
        )
    if result.still_found is not None:
        checked = 1 + result.journeys + len(also_check)
        click.echo(f"verified: none of {checked} identifier(s) remain in the bytes of {db}")
    else:
        click.echo("not compacted: deleted rows may remain in the file's free blocks until it is compacted")

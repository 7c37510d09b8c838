"""``journeyscope keys new``: mint an API key; only its digest goes in the key file."""

from __future__ import annotations

import click

from journeyscope.server.auth import SCOPES, key_entry, new_token


@click.group()
def keys() -> None:
    """Manage API keys for 'journeyscope serve --keys FILE'."""


@keys.command("new")
@click.option("--name", required=True, help="A name for the key (shown in logs and the decision log).")
@click.option("--project", default="default", show_default=True, help="The project the key reaches.")
@click.option("--scopes", default="read", show_default=True,
              help=f"Comma-separated scopes: {', '.join(sorted(SCOPES))}.")
def new(name: str, project: str, scopes: str) -> None:
    """Print a new token (give it to the client) and the [[keys]] entry for the key file."""
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    unknown = sorted(set(wanted) - SCOPES)
    if unknown or not wanted:
        raise click.BadParameter(f"unknown scope(s) {', '.join(unknown) or '(none)'}; use {', '.join(sorted(SCOPES))}",
                                 param_hint="--scopes")
    token, digest = new_token()
    click.echo(f"token (shown once; the server keeps only its digest): {token}", err=True)
    click.echo(key_entry(name, project, wanted, digest))

"""``journeyscope dashboard``: the Streamlit dashboard on a warehouse file or a server's API."""

from __future__ import annotations

from pathlib import Path

import click

from journeyscope.cli.common import db_option, map_option
from journeyscope.errors import ConfigError, InvalidInputError
from journeyscope.warehouse.lake import describe, is_lake
from journeyscope.settings import load as load_settings


@click.command()
@db_option
@click.option(
    "--api",
    help="Read a running 'journeyscope serve' instead, e.g. http://127.0.0.1:4318 "
    "(needed while a server holds the file). Env: JOURNEYSCOPE_API.",
    default=lambda: load_settings().api,
)
@map_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the dashboard on.")
@click.option(
    "--port", default=8501, show_default=True, type=click.IntRange(1, 65535), help="Dashboard port."
)
@click.option("--no-browser", is_flag=True,
              help="Do not open a browser (one opens only where a desktop can show it).")
def dashboard(db: str, api: str | None, map_file: str | None, host: str, port: int, no_browser: bool) -> None:
    """Serve the dashboard until Ctrl-C: funnels, stage detail, journeys, flows, comparisons and data health.

    Never prompts (stdin need not be a terminal) and writes nothing to your home directory.
    """
    if api and not api.startswith(("http://", "https://")):
        raise InvalidInputError(f"--api must be an http(s) URL, got {api!r}")
    if not api and not is_lake(db) and not Path(db).exists():
        raise ConfigError(
            f"no warehouse at {db}: create one with 'journeyscope demo', or pass --db PATH or --api URL"
        )
    from journeyscope.dashboard.launch import run

    where = api or describe(db)
    run(
        db=None if api else db, api=api, map_file=map_file, host=host, port=port, open_browser=not no_browser,
        announce=lambda url_line: click.echo(f"journeyscope {url_line}, reading {where}", err=True),
    )

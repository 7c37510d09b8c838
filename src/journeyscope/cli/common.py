"""What every command shares: the ``--db`` option, opening the warehouse, error handling."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from journeyscope.errors import JourneyscopeError, WarehouseError
from journeyscope.settings import DEFAULT_DB
from journeyscope.settings import environment as settings_environment
from journeyscope.settings import load as load_settings

F = TypeVar("F", bound=Callable[..., Any])

#: Width of tables written to a file or a pipe when ``COLUMNS`` does not say (a terminal's own width wins).
PIPE_WIDTH = 120


def console(stderr: bool = False) -> Console:
    """The rich console every command prints through: text is never hard-wrapped.

    ``soft_wrap``: a message is one line however long, so a log or a terminal folds it, not rich at
    80 columns. Tables take the terminal's width, or ``$COLUMNS``, or :data:`PIPE_WIDTH` when the
    output is a file or a pipe.
    """
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width, highlight=False)


def _data_path(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # The lake's data path is read where the warehouse opens (journeyscope.warehouse.lake), in this process and
    # in the ones it starts (dashboard, server workers): the environment carries it to all of them.
    if value:
        os.environ.update(settings_environment(data_path=value))


def db_option(fn: F) -> F:
    """``--db PATH``, defaulting to ``$JOURNEYSCOPE_DB`` or ``./journeyscope.duckdb``; ``--data-path`` for a lake."""
    fn = click.option(
        "--data-path",
        default=lambda: load_settings().data_path,
        expose_value=False,
        callback=_data_path,
        help="Where a lake's Parquet files go: s3://bucket/prefix/ or a directory. Env: JOURNEYSCOPE_DATA_PATH.",
    )(fn)
    return click.option(
        "--db",
        "db",
        default=lambda: load_settings().db,
        show_default=f"$JOURNEYSCOPE_DB or {DEFAULT_DB}",
        type=click.Path(dir_okay=False),
        help="Warehouse: a DuckDB file, or a lake (ducklake:postgres:<conninfo>, ducklake:CATALOG.duckdb). "
             "Env: JOURNEYSCOPE_DB.",
    )(fn)


def map_option(fn: F) -> F:
    """``--map FILE``: the journey map, defaulting to ``$JOURNEYSCOPE_MAP`` or ``./journeys.toml``."""
    return click.option(
        "--map",
        "map_file",
        default=lambda: load_settings().map_file,
        type=click.Path(dir_okay=False),
        help="Journey map (TOML). Default: ./journeys.toml when present. Env: JOURNEYSCOPE_MAP.",
    )(fn)


def db_threads_option(fn: F) -> F:
    """``--db-threads N``: threads per DuckDB query (default: :func:`journeyscope.server.priority.database_threads`,
    one fewer than the cores), for the long-running processes that share a machine with others."""
    return click.option(
        "--db-threads",
        type=click.IntRange(1, 256),
        help="Threads per DuckDB query. Default: one fewer than the cores (at least 1), one left for the API "
             "and the other processes on the machine.",
    )(fn)


def require_warehouse(db: str, hint: str = "create one with 'journeyscope demo' or 'journeyscope import'") -> None:
    """Refuse a ``--db`` that names no warehouse: a DuckDB file that is not there. A lake is checked when it is
    opened (its catalog says), and ``:memory:`` is always there."""
    from journeyscope.warehouse.lake import is_lake

    if db != ":memory:" and not is_lake(db) and not Path(db).is_file():
        raise WarehouseError(f"no warehouse at {db}" + (f": {hint}" if hint else ""))


def run_cli(group: click.Group, argv: list[str] | None) -> int:
    """Run the click group, turning project errors into one line on stderr and exit code 1."""
    try:
        group.main(args=argv, prog_name="journeyscope", standalone_mode=False)
    except JourneyscopeError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BrokenPipeError:  # e.g. `journeyscope export spans | head`
        sys.stderr.close()
        return 0
    return 0

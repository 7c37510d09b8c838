"""The ``journeyscope`` command: a thin shell over the library.

Each command lives in its own module under this package, opens what it needs,
calls one library function and turns :class:`~journeyscope.errors.JourneyscopeError`
into one clear line and a non-zero exit (never a traceback for bad input).
"""

from __future__ import annotations

import sys

import click

from journeyscope import __version__
from journeyscope.cli.common import run_cli
from journeyscope.cli.dashboard import dashboard
from journeyscope.cli.demo import demo
from journeyscope.cli.derive import derive
from journeyscope.cli.evaluate import evaluate
from journeyscope.cli.evaluators import evaluators
from journeyscope.cli.export import export
from journeyscope.cli.forget import forget
from journeyscope.cli.funnel import funnel_command
from journeyscope.cli.importer import import_
from journeyscope.cli.keys import keys
from journeyscope.cli.lake import lake
from journeyscope.cli.monitors import monitors
from journeyscope.cli.privacy import privacy
from journeyscope.cli.retention import retention
from journeyscope.cli.reviews import reviews
from journeyscope.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="journeyscope")
def cli() -> None:
    """Trace and evaluate AI-run customer journeys, stage by stage."""


cli.add_command(dashboard)
cli.add_command(demo)
cli.add_command(derive)
cli.add_command(evaluate)
cli.add_command(evaluators)
cli.add_command(export)
cli.add_command(forget)
cli.add_command(funnel_command)
cli.add_command(import_)
cli.add_command(keys)
cli.add_command(lake)
cli.add_command(monitors)
cli.add_command(privacy)
cli.add_command(retention)
cli.add_command(reviews)
cli.add_command(serve)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))


__all__ = ["cli", "main"]

"""The ``journeyscope`` command: a thin shell over the library.

Each command lives in its own module under this package, opens what it needs,
calls one library function and turns :class:`~journeyscope.errors.JourneyscopeError`
into one clear line and a non-zero exit (never a traceback for bad input).

A command's module is imported only when that command runs (or ``--help`` lists them all): every
command pays at start-up for what it uses, not for the dashboard's, the lake's and the server's imports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import click

from journeyscope.cli.common import run_cli

#: Each command's name and how to load it (its module is imported then).
_COMMANDS: dict[str, Callable[[], click.Command]] = {
    "dashboard": lambda: importlib.import_module("journeyscope.cli.dashboard").dashboard,
    "demo": lambda: importlib.import_module("journeyscope.cli.demo").demo,
    "derive": lambda: importlib.import_module("journeyscope.cli.derive").derive,
    "evaluate": lambda: importlib.import_module("journeyscope.cli.evaluate").evaluate,
    "evaluators": lambda: importlib.import_module("journeyscope.cli.evaluators").evaluators,
    "export": lambda: importlib.import_module("journeyscope.cli.export").export,
    "forget": lambda: importlib.import_module("journeyscope.cli.forget").forget,
    "funnel": lambda: importlib.import_module("journeyscope.cli.funnel").funnel_command,
    "import": lambda: importlib.import_module("journeyscope.cli.importer").import_,
    "keys": lambda: importlib.import_module("journeyscope.cli.keys").keys,
    "lake": lambda: importlib.import_module("journeyscope.cli.lake").lake,
    "monitors": lambda: importlib.import_module("journeyscope.cli.monitors").monitors,
    "privacy": lambda: importlib.import_module("journeyscope.cli.privacy").privacy,
    "retention": lambda: importlib.import_module("journeyscope.cli.retention").retention,
    "reviews": lambda: importlib.import_module("journeyscope.cli.reviews").reviews,
    "serve": lambda: importlib.import_module("journeyscope.cli.serve").serve,
}


class _Commands(click.Group):
    """The command group, loading each command on first use."""

    def list_commands(self, ctx: click.Context | None) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            self.add_command(_COMMANDS[cmd_name](), cmd_name)
        return self.commands.get(cmd_name)


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from journeyscope import __version__

    click.echo(f"journeyscope, version {__version__}")
    ctx.exit()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and exit.")
def cli() -> None:
    """Trace and evaluate AI-run customer journeys, stage by stage."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    sys.exit(run_cli(cli, argv))


__all__ = ["cli", "main"]

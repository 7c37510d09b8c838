"""The dashboard's settings: which data source, which journey map, how long answers are cached.

``streamlit run`` owns the command line, so ``journeyscope dashboard`` passes
the settings after ``--`` (``streamlit run app.py -- --db PATH``) and also in
the environment (read by :mod:`journeyscope.settings`), which is what tests and a hand-started ``streamlit run`` use. The command line
wins over the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from journeyscope import settings

__all__ = ["DEFAULT_DB", "DEFAULT_TTL_S", "DashboardSettings", "load_settings"]

DEFAULT_DB = settings.DEFAULT_DB
#: How long a cached answer is shown before the warehouse is asked again (seconds).
DEFAULT_TTL_S = 120


@dataclass(frozen=True)
class DashboardSettings:
    """Read the file at ``db``, or the API at ``api`` when set (the two are exclusive)."""

    db: str = DEFAULT_DB
    api: str | None = None
    api_key: str | None = None
    map_file: str | None = None
    #: The page shown at ``/`` (``overview``, ``stage``, ``journeys``, ``graph``, ``compare``, ``health``, ``review``, ...).
    page: str = "overview"

    def key(self) -> str:
        """Identifies the source in cache keys: two dashboards on two files never share answers."""
        return f"api:{self.api}" if self.api else f"db:{os.path.abspath(self.db)}|map:{self.map_file or ''}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journeyscope dashboard", add_help=False, allow_abbrev=False)
    parser.add_argument("--db")
    parser.add_argument("--api")
    parser.add_argument("--map", dest="map_file")
    parser.add_argument("--page")
    return parser


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> DashboardSettings:
    """Settings from script arguments (unknown ones ignored: under AppTest argv is pytest's) and environment."""
    env = settings.load(environ)
    args, _ = _parser().parse_known_args(list(argv or []))
    # A --db on the command line means the file, even when the environment names an API.
    api = args.api if (args.api or args.db) else env.api
    return DashboardSettings(
        db=args.db or env.db,
        api=api.rstrip("/") if api else None,
        api_key=env.api_key,
        map_file=args.map_file or env.map_file,
        page=args.page or env.dashboard_page,
    )

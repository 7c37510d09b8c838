"""Every ``JOURNEYSCOPE_*`` environment variable, read here and nowhere else.

:func:`load` builds one :class:`Settings` from the environment; the server's and
the dashboard's settings, the CLI's defaults, the privacy policy, the LLM judge and
the OTLP decoder take their values from it. :data:`VARIABLES` names each variable,
its default and what it means: the README's table is kept equal to it by a test
(``tests/test_settings.py``), as is the list of names the source mentions.

A value that cannot be right (``JOURNEYSCOPE_BACKGROUND_NICE=high``) is one
:class:`SettingsError` naming the variable, not a silent default. An empty value
counts as unset. Only the standard library is imported: every layer may use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from journeyscope.errors import ConfigError

__all__ = ["PREFIX", "VARIABLES", "Settings", "SettingsError", "Variable", "environment", "load"]

#: What every journeyscope variable's name starts with.
PREFIX: Final = "JOURNEYSCOPE_"

DEFAULT_DB: Final = "journeyscope.duckdb"
DEFAULT_CHROMIUM: Final = "/usr/bin/chromium"
DEFAULT_BACKGROUND_NICE: Final = 10
#: Seconds between looks at a PostgreSQL lake's change feed for commits of other processes.
DEFAULT_FEED_POLL_S: Final = 0.1

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class SettingsError(ConfigError):
    """An environment variable holds a value journeyscope cannot use; the message names it."""


@dataclass(frozen=True)
class Variable:
    """One environment variable: the :class:`Settings` field it sets, its default and its meaning."""

    name: str
    field: str
    default: str
    meaning: str


#: Every variable journeyscope reads, in the order the README lists them.
VARIABLES: Final[tuple[Variable, ...]] = (
    Variable("JOURNEYSCOPE_DB", "db", f"`./{DEFAULT_DB}`",
             "The warehouse file (DuckDB) of every command, the server, the dashboard and "
             "`instrument.setup()` when none is named (`--db`, `db=`)."),
    Variable("JOURNEYSCOPE_MAP", "map_file", "`./journeys.toml` when present",
             "The journey map (TOML): stage order and idle timeouts (`--map`)."),
    Variable("JOURNEYSCOPE_API", "api", "none (read the file)",
             "The eval API the dashboard reads instead of the file (`journeyscope dashboard --api`)."),
    Variable("JOURNEYSCOPE_API_KEY", "api_key", "none",
             "The API key the dashboard sends to `JOURNEYSCOPE_API`."),
    Variable("JOURNEYSCOPE_DASHBOARD_PAGE", "dashboard_page", "`overview`",
             "The dashboard page shown at `/` (`overview`, `stage`, `journeys`, `graph`, `compare`, "
             "`health`, `review`, ...)."),
    Variable("JOURNEYSCOPE_CHROMIUM", "chromium", f"`{DEFAULT_CHROMIUM}`",
             "The Chromium the dashboard's browser checks and screenshots drive."),
    Variable("JOURNEYSCOPE_KEYS", "keys_file", "none (local requests only)",
             "API keys and projects (TOML) of `journeyscope serve` (`--keys`)."),
    Variable("JOURNEYSCOPE_POLICIES", "policies_file", "the built-in policies",
             "Routing policies (TOML) of `journeyscope serve` (`--policies`)."),
    Variable("JOURNEYSCOPE_MONITORS", "monitors_file", "none (no live monitoring)",
             "Monitors (TOML) of `journeyscope serve` (`--monitors`)."),
    Variable("JOURNEYSCOPE_PRIVACY", "privacy", "`./privacy.toml` when present, else the defaults",
             "The privacy policy: a TOML file's path, or inline rules such as `ip=off,email=hash`."),
    Variable("JOURNEYSCOPE_PII_KEY", "pii_key", "none (`hash` masks instead)",
             "The secret (at least 16 characters) keying the policy's `hash` action."),
    Variable("JOURNEYSCOPE_ACTOR", "actor", "the OS user (`os:NAME`)",
             "Who the audit log and reviews name as the actor (a service account in a scheduled job)."),
    Variable("JOURNEYSCOPE_LLM_BASE_URL", "llm_base_url", "none (no llm engine)",
             "The OpenAI-compatible endpoint of the llm judge, including `/v1`."),
    Variable("JOURNEYSCOPE_LLM_MODEL", "llm_model", "none (no llm engine)",
             "The llm judge's model name."),
    Variable("JOURNEYSCOPE_LLM_API_KEY", "llm_api_key", "none",
             "The llm judge's API key (sent as a bearer token)."),
    Variable("JOURNEYSCOPE_PURE_PYTHON", "pure_python", "`0`",
             "`1` decodes OTLP in Python even when the compiled decoder is built."),
    Variable("JOURNEYSCOPE_BACKGROUND_NICE", "background_nice", f"`{DEFAULT_BACKGROUND_NICE}`",
             "How much lower (a nice increment, 0-19; 0 turns it off) the server's background work runs."),
    Variable("JOURNEYSCOPE_DATA_PATH", "data_path", "none",
             "A lake's data path (`s3://bucket/prefix/` or a directory) when `--db` names a `ducklake:` catalog "
             "(`--data-path`)."),
    Variable("JOURNEYSCOPE_S3_ENDPOINT", "s3_endpoint", "none (AWS, or `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`)",
             "The endpoint of an S3-compatible store holding a lake's data, e.g. `http://127.0.0.1:8333`."),
    Variable("JOURNEYSCOPE_FEED_POLL", "feed_poll_s", f"`{DEFAULT_FEED_POLL_S}`",
             "Seconds between a process's looks at a PostgreSQL lake's change feed for other processes' commits "
             "(derive workers, journey states)."),
)


@dataclass(frozen=True)
class Settings:
    """The values of :data:`VARIABLES` (``None``: not set), parsed and checked."""

    db: str = DEFAULT_DB
    map_file: str | None = None
    api: str | None = None
    api_key: str | None = None
    dashboard_page: str = "overview"
    chromium: str = DEFAULT_CHROMIUM
    keys_file: str | None = None
    policies_file: str | None = None
    monitors_file: str | None = None
    privacy: str | None = None
    pii_key: str | None = None
    actor: str | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    pure_python: bool = False
    background_nice: int = DEFAULT_BACKGROUND_NICE
    data_path: str | None = None
    s3_endpoint: str | None = None
    feed_poll_s: float = DEFAULT_FEED_POLL_S

    @property
    def llm_configured(self) -> bool:
        """Whether the llm engine can run: a base URL and a model are both set."""
        return bool(self.llm_base_url and self.llm_model)


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={value!r} is not a yes/no value (use 1 or 0)")


def _nice(name: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = -1
    if not 0 <= number <= 19:
        raise SettingsError(f"{name}={value!r} is not a whole number from 0 to 19")
    return number


def _seconds(name: str, value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        number = -1.0
    if not 0.005 <= number <= 60:
        raise SettingsError(f"{name}={value!r} is not a number of seconds from 0.005 to 60")
    return number


_PARSERS: Final = {"pure_python": _flag, "background_nice": _nice, "feed_poll_s": _seconds}


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in ``environ`` (default: ``os.environ``); :class:`SettingsError` for a bad value.

    Read on each call, not cached at import, so a test or a launcher that changes the
    environment is seen.
    """
    env = os.environ if environ is None else environ
    given: dict[str, object] = {}
    for var in VARIABLES:
        value = env.get(var.name)
        if not value:
            continue
        parse = _PARSERS.get(var.field)
        given[var.field] = parse(var.name, value) if parse else value
    return Settings(**given)  # type: ignore[arg-type]



def environment(**values: object) -> dict[str, str]:
    """The variables that carry ``values`` (by :class:`Settings` field) to a child process; unset ones omitted.

    The inverse of :func:`load`, for launchers (the dashboard's Streamlit child).
    """
    by_field = {var.field: var for var in VARIABLES}
    unknown = sorted(set(values) - set(by_field))
    if unknown:
        raise TypeError(f"not a setting: {', '.join(unknown)}")
    return {by_field[k].name: str(v) for k, v in values.items() if v is not None and v != ""}

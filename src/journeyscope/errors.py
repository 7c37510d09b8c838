"""The one exception tree of journeyscope.

Every error a user can cause (bad input, a missing database, an invalid
config file) is a :class:`JourneyscopeError`, so the CLI, the server and the
dashboard can turn it into one clear line instead of a traceback. Errors of
third-party libraries (DuckDB, protobuf, HTTP) are translated into this tree
where they enter the project.

No message of this tree carries a secret: :func:`redact_secrets` takes passwords (a libpq connection string's or
a URI's) and the AWS secret key out of every one as it is made, so a ``--db`` quoted in an error, a log line, an
HTTP answer or CLI output never shows them.

    JourneyscopeError
    ├── InvalidJourneyError      a journey context or attribute that cannot be right
    ├── InvalidInputError        a payload, file line or query parameter that cannot be read
    │   └── ImportLineError      one line of an import file (carries the line number)
    ├── ConfigError              a config, map or policy file that cannot be used
    └── WarehouseError           the DuckDB file cannot be opened, written or is too new
        └── WarehouseUnavailable a lake's catalog database or object store cannot be reached now: retry later
"""

from __future__ import annotations

import os
import re

_HIDDEN = "***"
#: ``password=secret`` or ``password='with spaces'`` in a libpq conninfo (any case, spaces around ``=``), and the
#: ``password`` parameter of a URI's query string.
_CONNINFO_PASSWORD = re.compile(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&'"]+)""", re.IGNORECASE)
#: ``scheme://user:password@host``: the password of a URI.
_URI_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)(@)", re.IGNORECASE)
#: A DuckDB secret's options, should a statement creating one be quoted: ``SECRET 'x'``, ``SESSION_TOKEN 'x'``.
_SECRET_OPTION = re.compile(r"((?:SECRET|SESSION_TOKEN)\s+)('(?:[^']|'')*')", re.IGNORECASE)
#: Environment variables whose values are secrets wherever they show up.
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")


def redact_secrets(text: str) -> str:
    """``text`` without passwords (libpq conninfo and URI ones) and without the values of the AWS secret key,
    session token and ``PGPASSWORD`` of this process's environment: the one rule for every message, log line
    and answer that may quote a ``--db`` or a storage error."""
    text = _CONNINFO_PASSWORD.sub(rf"\1{_HIDDEN}", text)
    text = _URI_PASSWORD.sub(rf"\1{_HIDDEN}\3", text)
    text = _SECRET_OPTION.sub(rf"\1'{_HIDDEN}'", text)
    for name in _SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:  # a one-letter "secret" would blot out the message
            text = text.replace(value, _HIDDEN)
    return text


class JourneyscopeError(Exception):
    """Base class: something the user can fix; the message says what and where (secrets redacted)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_secrets(a) if isinstance(a, str) else a for a in args))


class InvalidJourneyError(JourneyscopeError, ValueError):
    """A journey id, stage, channel or outcome that would produce a wrong tag."""


class InvalidInputError(JourneyscopeError, ValueError):
    """Input that cannot be read: a malformed payload, record or parameter."""


class ImportLineError(InvalidInputError):
    """One line of an import file is unusable; the rest of the file is kept."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.detail = message


class ConfigError(JourneyscopeError):
    """A configuration file (journey map, policies, redaction rules) is invalid."""


class WarehouseError(JourneyscopeError):
    """The warehouse cannot be opened or written (path, permissions, schema)."""


class WarehouseUnavailable(WarehouseError):
    """A lake's catalog database or object store cannot be reached now: retry later (503 / ``UNAVAILABLE``).

    Nothing is wrong with the request: the receivers refuse it with a retry hint, and the same request sent again
    once the service is back is stored (once)."""

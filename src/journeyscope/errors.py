"""The one exception tree of journeyscope.

Every error a user can cause (bad input, a missing database, an invalid
config file) is a :class:`JourneyscopeError`, so the CLI, the server and the
dashboard can turn it into one clear line instead of a traceback. Errors of
third-party libraries (DuckDB, protobuf, HTTP) are translated into this tree
where they enter the project.

    JourneyscopeError
    ├── InvalidJourneyError      a journey context or attribute that cannot be right
    ├── InvalidInputError        a payload, file line or query parameter that cannot be read
    │   └── ImportLineError      one line of an import file (carries the line number)
    ├── ConfigError              a config, map or policy file that cannot be used
    └── WarehouseError           the DuckDB file cannot be opened, written or is too new
        └── WarehouseUnavailable a lake's catalog database or object store cannot be reached now: retry later
"""

from __future__ import annotations


class JourneyscopeError(Exception):
    """Base class: something the user can fix; the message says what and where."""


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

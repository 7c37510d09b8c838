"""The one translation of DuckDB's errors into the project's error tree (:mod:`journeyscope.errors`), secrets taken out.

DuckDB's messages run over several lines (a caret under the SQL, hints); a user needs
the first, with what journeyscope was doing. Every place a DuckDB error enters the
project raises ``warehouse_error(exc, doing)``; writes get it from
:meth:`journeyscope.warehouse.Warehouse.transaction`.

A lake's errors can quote what it was given: a libpq connection string (``password=...``, or a
``postgresql://user:password@host/db`` URI), an S3 request. :func:`first_line` takes the secrets out
(:func:`journeyscope.errors.redact_secrets`, which every message of the project's errors goes through too).
"""

from __future__ import annotations

import re

import duckdb

from journeyscope.errors import WarehouseError, WarehouseUnavailable, redact_secrets

__all__ = ["first_line", "is_unreachable", "unreachable_service", "warehouse_error"]

def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), secrets redacted."""
    text = str(exc)
    return redact_secrets(text.splitlines()[0]) if text.strip() else type(exc).__name__


#: What DuckDB (httpfs, the postgres scanner, ducklake) says when a service cannot be reached, as opposed to a
#: request it refused (a bad bucket, wrong credentials, a permission: those stay errors to fix, not to retry).
_UNREACHABLE = re.compile(
    r"could not connect|connection refused|connection reset|connection timed out|timed out|timeout"
    r"|could not establish|unable to connect|server closed the connection|no connection to the server"
    r"|connection to server .* failed|broken pipe|could not resolve|name or service not known"
    r"|SSL SYSCALL error|terminating connection|the database system is (?:starting up|shutting down)"
    r"|\bHTTP 50[0234]\b|Service Unavailable|SlowDown",
    re.IGNORECASE)


def is_unreachable(text: str) -> bool:
    """Whether an error's text says a service (the catalog database, the object store) could not be reached."""
    return bool(_UNREACHABLE.search(text))


def unreachable_service(text: str) -> str:
    """Which of a lake's services an unreachable error's text is about: its object store (an HTTP request) or its
    catalog database."""
    return "the object store" if re.search(r"\bHTTP\b|s3://|https?://", text) else "the catalog database"


def warehouse_error(exc: duckdb.Error, doing: str) -> WarehouseError:
    """``WarehouseError("{doing}: {first line}")``; :class:`WarehouseUnavailable` when a lake's catalog database or
    object store could not be reached (retry later); a file locked by another process is said so plainly."""
    text = first_line(exc)
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower() and not is_unreachable(text):
        return WarehouseError(
            f"{doing}: the file is open for writing in another process (is 'journeyscope serve' running?); "
            "read through the server's API or stop it first"
        )
    if isinstance(exc, (duckdb.IOException, duckdb.HTTPException, duckdb.ConnectionException,
                        duckdb.InternalException, duckdb.InvalidInputException)) and is_unreachable(text):
        return WarehouseUnavailable(f"{doing}: {unreachable_service(text)} cannot be reached now ({text})")
    return WarehouseError(f"{doing}: {text}")

"""The one translation of DuckDB's errors into the project's error tree (:mod:`journeyscope.errors`), and the one
place secrets are taken out of the text that leaves the warehouse.

DuckDB's messages run over several lines (a caret under the SQL, hints); a user needs
the first, with what journeyscope was doing. Every place a DuckDB error enters the
project raises ``warehouse_error(exc, doing)``; writes get it from
:meth:`journeyscope.warehouse.Warehouse.transaction`.

A lake's errors can quote what it was given: a libpq connection string (``password=...``, or a
``postgresql://user:password@host/db`` URI), an S3 request. :func:`redact` takes the passwords and the AWS secret
keys out; :func:`first_line` (and so :func:`warehouse_error`) and every ``--db`` shown in a message or log line
(:func:`journeyscope.warehouse.lake.describe`) go through it.
"""

from __future__ import annotations

import os
import re

import duckdb

from journeyscope.errors import WarehouseError, WarehouseUnavailable

__all__ = ["first_line", "is_unreachable", "redact", "unreachable_service", "warehouse_error"]

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


def redact(text: str) -> str:
    """``text`` without passwords (libpq conninfo and URI ones) and without the values of the AWS secret key,
    session token and ``PGPASSWORD`` of this process's environment."""
    text = _CONNINFO_PASSWORD.sub(rf"\1{_HIDDEN}", text)
    text = _URI_PASSWORD.sub(rf"\1{_HIDDEN}\3", text)
    text = _SECRET_OPTION.sub(rf"\1'{_HIDDEN}'", text)
    for name in _SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:  # a one-letter "secret" would blot out the message
            text = text.replace(value, _HIDDEN)
    return text


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none), secrets redacted."""
    text = str(exc)
    return redact(text.splitlines()[0]) if text.strip() else type(exc).__name__


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

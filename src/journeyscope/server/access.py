"""Who is calling, and which project they may reach: the API's one access check.

With a key file, every request needs ``Authorization: Bearer TOKEN`` of a key
holding the route's scope, and reaches only that key's project. Without one,
the server is local-only: requests from loopback addresses reach the default
project; anything else is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from journeyscope.server.auth import DEFAULT_PROJECT, bearer, is_loopback


class AccessDenied(Exception):
    """401 (no or an unknown key) or 403 (not allowed); the HTTP and gRPC receivers translate it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Caller:
    """The key (or local user) behind a request and the project it reaches."""

    name: str
    scopes: frozenset[str]
    project: Any  # journeyscope.server.project.Project


def identify(request_headers: Any, client_host: str | None, state: Any, scope: str) -> Caller:
    """Resolve the caller of a request, or raise :class:`AccessDenied` (HTTP routes and OTLP receivers alike)."""
    keys = state.keys
    projects = state.projects
    if keys is None:
        if not is_loopback(client_host):
            raise AccessDenied(403, "this server has no API keys configured and accepts local requests only")
        return Caller("local", frozenset({"ingest", "read", "write", "admin"}), projects[DEFAULT_PROJECT])
    token = bearer(request_headers.get("authorization"))
    if token is None:
        raise AccessDenied(401, "missing 'Authorization: Bearer <api key>'")
    key = keys.identify(token)
    if key is None:
        raise AccessDenied(401, "unknown API key")
    if scope not in key.scopes:
        raise AccessDenied(403, f"key {key.name!r} lacks the {scope!r} scope")
    return Caller(key.name, key.scopes, projects[key.project])


def caller_for(scope: str) -> Callable[[Request], Caller]:
    """A FastAPI dependency requiring ``scope``."""

    async def dependency(request: Request) -> Caller:  # async: a key lookup is no reason for a thread hop
        client = request.client.host if request.client else None
        try:
            return identify(request.headers, client, request.app.state, scope)
        except AccessDenied as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            raise HTTPException(exc.status, exc.message, headers=headers) from None

    return dependency

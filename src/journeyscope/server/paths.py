"""Ids in URL paths stay opaque: ``/v1/journeys/a%2Fb`` is the journey ``a/b``, never a sub-route of ``a``.

ASGI servers hand the app a percent-decoded ``path``, in which an encoded
slash is a slash: ``/v1/journeys/plain%2Fdetail`` would be routed to the
detail page of journey ``plain``. :class:`OpaquePaths` routes on the path as
the client sent it instead (``raw_path``), decoding each segment but keeping
``%`` and ``/`` inside a segment encoded; the routes that take an id decode it
once with :func:`path_id` (the :data:`PathId` type does it for FastAPI). So a
journey or customer id that ingest accepts is found as itself. Clients encode
an id with :func:`journeyscope.client.path_segment`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from pydantic import AfterValidator
from starlette.types import ASGIApp, Receive, Scope, Send

from journeyscope.conventions import MAX_VALUE_LENGTH

__all__ = ["OpaquePaths", "PathId", "path_id"]


def _kept(segment: str) -> str:
    return unquote(segment).replace("%", "%25").replace("/", "%2F")


class OpaquePaths:
    """ASGI middleware: route on the client's own segments (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path")
            if raw and b"%" in raw:  # without an escape the decoded path is the raw one
                text = raw.decode("utf-8", "replace").partition("?")[0]
                scope = {**scope, "path": "/".join(_kept(s) for s in text.split("/"))}
        await self.app(scope, receive, send)


def path_id(segment: str) -> str:
    """The id a path segment routed by :class:`OpaquePaths` names (refused beyond the ingest limit)."""
    value = unquote(segment)
    if len(value) > MAX_VALUE_LENGTH:
        raise ValueError(f"is {len(value)} characters long; ids have at most {MAX_VALUE_LENGTH}")
    return value


#: A path parameter holding an id (journey, customer): decoded once, length-checked into a 422.
PathId = Annotated[str, AfterValidator(path_id)]

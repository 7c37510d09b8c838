"""The three routes an orchestrator calls on every turn, answered from memory before FastAPI's router.

``POST /v1/route``, ``GET /v1/stages`` and ``GET /v1/journeys/{id}`` are
FastAPI routes like every other: FastAPI declares, validates and documents
them. Their answers come from memory (held journey states, held stage
signals), yet going through the router, the dependency solver and the response
classes cost about a millisecond of CPU per request, most of the server's time
at 200 requests/s; on two cores that is what set the tail latency while spans
were being ingested.

:class:`HotRoutes` answers the ordinary case of those three routes directly:
a caller the access check lets through, a well-formed request, and an answer
already held in memory, built by the same functions the FastAPI routes call
(:func:`~journeyscope.server.access.identify`,
:func:`~journeyscope.server.api.held_route`, ...). Everything else, such as an unknown
key, a malformed body, a time filter, or a journey or filter not held yet, goes on
to the FastAPI route unchanged, so errors, validation and first reads have a
single implementation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from journeyscope.errors import InvalidInputError
from journeyscope.server.access import AccessDenied, Caller, identify
from journeyscope.server.api import RouteRequest, held_route, held_stages
from journeyscope.server.paths import path_id
from journeyscope.warehouse.filters import Filters

__all__ = ["HotRouteStats", "HotRoutes"]

_JOURNEYS = "/v1/journeys/"
#: Query parameters of ``/v1/stages`` answered here; a time window (``since``, ``until``, ``window``) is not.
_STAGE_FILTERS = frozenset({"journey", "cohort", "channel"})
_MAX_BODY = 64 * 1024


@dataclass
class HotRouteStats:
    """How often the hot routes were answered from memory here, and how often passed on to FastAPI."""

    answered: int = 0
    passed_on: int = 0


class HotRoutes:
    """ASGI middleware: answers held ``/v1/route``, ``/v1/stages`` and ``/v1/journeys/{id}`` requests."""

    def __init__(self, app: ASGIApp, stats: HotRouteStats | None = None) -> None:
        self.app = app
        self.stats = stats if stats is not None else HotRouteStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            hot, answer = True, None
            if method == "POST" and path == "/v1/route":
                messages, body = await _read_body(receive)
                if body is not None:
                    answer = self._route(scope, body)
                receive = _replay(messages, receive)
            elif method == "GET" and path == "/v1/stages":
                answer = self._stages(scope)
            elif method == "GET" and path.startswith(_JOURNEYS) and "/" not in path[len(_JOURNEYS):]:
                answer = self._journey(scope, path[len(_JOURNEYS):])
            else:
                hot = False
            if answer is not None:
                self.stats.answered += 1
                await _send_json(send, answer)
                return
            if hot:
                self.stats.passed_on += 1
        await self.app(scope, receive, send)

    def _route(self, scope: Scope, body: bytes) -> bytes | None:
        request = _route_request(scope, body)
        caller = _caller(scope) if request is not None else None
        if request is None or caller is None:
            return None
        decision = held_route(caller, request)
        return None if decision is None else JSONResponse(decision).body

    def _stages(self, scope: Scope) -> bytes | None:
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        given = dict(pairs)
        if len(given) != len(pairs) or not given.keys() <= _STAGE_FILTERS:
            return None
        try:
            filters = Filters(**given)
        except InvalidInputError:
            return None
        caller = _caller(scope)
        return None if caller is None else held_stages(caller, filters)

    def _journey(self, scope: Scope, segment: str) -> bytes | None:
        caller = _caller(scope) if segment and not scope["query_string"] else None
        if caller is None:
            return None
        try:
            journey_id = path_id(segment)
        except ValueError:
            return None
        state = caller.project.states.held_state(journey_id)
        return None if state is None else JSONResponse(state).body


def _caller(scope: Scope) -> Caller | None:
    """The caller when the access check lets them read; ``None`` lets the FastAPI route answer 401/403."""
    headers = {"authorization": v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"}
    client = scope.get("client")
    try:
        return identify(headers, client[0] if client else None, scope["app"].state, "read")
    except AccessDenied:
        return None


def _route_request(scope: Scope, body: bytes) -> RouteRequest | None:
    """A ``/v1/route`` body FastAPI would accept as it is, else ``None`` (FastAPI then says what is wrong)."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if content_type.split(b";")[0].strip() != b"application/json":
        return None
    try:
        fields = json.loads(body)
    except ValueError:
        return None
    if not isinstance(fields, dict) or not fields.keys() <= RouteRequest.model_fields.keys():
        return None  # a field the model would ignore: FastAPI answers, as for any unusual request
    try:
        return RouteRequest.model_validate(fields)
    except ValidationError:
        return None


async def _read_body(receive: Receive) -> tuple[list[MutableMapping[str, Any]], bytes | None]:
    """The messages read, and the whole body (``None`` if the client went away or it is too large)."""
    messages: list[MutableMapping[str, Any]] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > _MAX_BODY:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(
    messages: list[MutableMapping[str, Any]], receive: Receive
) -> Callable[[], Awaitable[MutableMapping[str, Any]]]:
    """A ``receive`` that hands the next app the messages already read, then listens as before."""
    pending = list(messages)

    async def replayed() -> MutableMapping[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _send_json(send: Send, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})

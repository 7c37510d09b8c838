"""Connection limits and read timeouts for the HTTP side, which uvicorn does not have on its own.

uvicorn closes a keep-alive connection idle between requests (``timeout_keep_alive``) but waits forever
for a request's headers and for its body: a client that announces 100,000 bytes and sends two holds a
connection, a file descriptor and a request task until it goes away, and enough of them exhaust the
process's open files. :class:`GuardedProtocol` is uvicorn's httptools protocol with three limits:

- ``header_timeout_s``: from a connection's first byte (or the end of its previous response) until the
  request's headers are complete;
- ``body_timeout_s``: from the end of the headers until the whole body is in;
- ``max_connections``: connections open at once; one more is closed as soon as it is accepted.

A request cut by a timeout is answered ``408 Request Timeout`` (unless its response began) and its
connection closed; the application sees the client disconnect (one log line, see
:func:`log_disconnect`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from journeyscope.server.settings import ServerSettings

__all__ = ["GuardedProtocol", "guarded_protocol", "log_disconnect"]

logger = logging.getLogger(__name__)

_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: %d\r\nconnection: close\r\n\r\n%s")

#: Seconds between warnings about connections refused at the limit (a flood must not flood the log too).
_WARN_EVERY_S = 60.0


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body timeouts and a connection limit (see the module)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1000
    refused = 0  #: connections closed at the limit since start (all connections share it)
    _warned_at = -_WARN_EVERY_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            cls = type(self)
            cls.refused += 1
            now = time.monotonic()
            if now - cls._warned_at >= _WARN_EVERY_S:
                cls._warned_at = now
                logger.warning("journeyscope: %d HTTP connections open, closing new ones (max_connections); "
                               "%d closed so far", self.max_connections, cls.refused)
            transport.close()
            return
        self._arm(self.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a request's first byte after a keep-alive pause
            self._arm(self.header_timeout_s, "headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout_s, "body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str, seconds: float) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            message = f"request {what} not received within {seconds:g} s".encode()
            self.transport.write(_TIMEOUT_ANSWER % (len(message), message))
        self.transport.close()


def guarded_protocol(settings: ServerSettings) -> type[GuardedProtocol]:
    """The protocol class uvicorn should use, with ``settings``' limits (a class: uvicorn instantiates it)."""
    return type("JourneyscopeHttpProtocol", (GuardedProtocol,), {
        "header_timeout_s": settings.header_timeout_s,
        "body_timeout_s": settings.body_timeout_s,
        "max_connections": settings.max_connections,
    })


async def log_disconnect(request: Request, exc: Exception) -> Response:
    """A client that went away mid-request (or was timed out): one line, not a traceback."""
    assert isinstance(exc, ClientDisconnect)
    client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
    logger.warning("journeyscope: %s disconnected before sending all of %s %s", client, request.method,
                   request.url.path)
    return Response(status_code=400)  # never sent: the connection is gone

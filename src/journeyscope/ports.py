"""Is a port free? Asked before a command creates anything, so a taken port costs nothing but one line.

``journeyscope serve``, ``dashboard`` and ``demo`` call :func:`ensure_free` before they open or create
the warehouse or start a child server: a port another program holds is then one clear error naming the
address, and no empty database file or half-started dashboard is left behind. (A program could still
take the port between the check and the bind; the servers report that too, only later.)
"""

from __future__ import annotations

import errno
import socket

from journeyscope.errors import ConfigError

__all__ = ["ensure_free"]


def ensure_free(host: str, port: int, what: str = "", option: str = "--port") -> None:
    """Raise :class:`ConfigError` ("cannot listen on HOST:PORT ...") unless ``host:port`` can be bound now.

    Port 0 (the system picks one) is always free. ``what`` names the listener in the message
    (e.g. ``"for gRPC"``), ``option`` the flag that picks another port. Binds with ``SO_REUSEADDR``,
    as the servers do, so a port whose last connections are in TIME_WAIT counts as free.
    """
    if port == 0:
        return
    label = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    where = f"{label} {what}".rstrip()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {where}: unknown host ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                reason = f"the port is already in use (choose another with {option})"
            elif exc.errno == errno.EACCES:
                reason = "permission denied (ports below 1024 need privileges)"
            elif exc.errno == errno.EADDRNOTAVAIL:
                reason = "no such address on this machine"
            else:
                reason = exc.strerror or str(exc)
            raise ConfigError(f"cannot listen on {where}: {reason}") from None

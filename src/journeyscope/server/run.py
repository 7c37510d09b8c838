"""Run the server process: bind the HTTP socket, start uvicorn with the app, print where it listens."""

from __future__ import annotations

import gc
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from journeyscope.server.app import Started, create_app
from journeyscope.server.connections import guarded_protocol
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse.lake import describe


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they
    # are TCP, and with Nagle on, keep-alive answers written in two parts wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    # Listening from here on: the ready line is printed during the app's startup, before uvicorn would
    # call listen(), and a client that connects on reading it must be queued, not refused.
    sock.listen(2048)  # uvicorn's own backlog
    sock.set_inheritable(True)
    return sock


def _freeze_when_warm(started: Started) -> None:
    """Once every project holds its recent journeys, take what is alive out of the collector's sight.

    Those objects (modules, held journey rows) live as long as the process; left in the oldest
    generation, each full collection walks them all while holding the GIL, and an API answer waits for
    it (the README gives a full collection's cost with and without the freeze).
    """
    for project in started.projects.values():
        if project.states is not None:
            project.states.warmed.wait(600)
    gc.freeze()


def ready_line(settings: ServerSettings, http_port: int, started: Started) -> str:
    """The one line printed at start (tests and scripts read the ports from it)."""
    grpc = f"OTLP/gRPC on {settings.host}:{started.grpc_port}" if started.grpc_port else "OTLP/gRPC off"
    projects = "" if list(started.projects) == ["default"] else f" ({len(started.projects)} projects)"
    return (
        f"journeyscope serving {describe(settings.db)}{projects}: OTLP/HTTP on http://{settings.host}:{http_port}/v1/traces, "
        f"{grpc}, API on http://{settings.host}:{http_port}/v1 (docs: /docs)"
    )


def uvicorn_config(app: Any, settings: ServerSettings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: httptools with the settings' timeouts and connection limit
    (:mod:`journeyscope.server.connections`); ``options`` are further ``uvicorn.Config`` arguments."""
    return uvicorn.Config(
        app,
        access_log=False,
        lifespan="on",
        # httptools (uvicorn[standard]): parsing a request in C instead of h11's Python is most of an
        # eval API request's cost; the guarded protocol adds the read timeouts and the connection limit.
        http=guarded_protocol(settings),
        loop="auto",
        **options,
    )


def serve(settings: ServerSettings, *, echo: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; on the way out, commit what was accepted and close the file.

    Binding fails before the warehouse is opened, with an OSError naming the address.
    """
    from journeyscope.warehouse import Warehouse, load_journey_map

    # Fail with one clear line (a locked or too-new file, a bad map) before listening at all.
    Warehouse(settings.db, journey_map=load_journey_map(settings.map_file)).close()
    sock = bind_socket(settings.host, settings.port)
    http_port = sock.getsockname()[1]
    say = echo or (lambda line: print(line, flush=True, file=sys.stdout))

    def on_ready(started: Started) -> None:
        say(ready_line(settings, http_port, started))
        threading.Thread(target=_freeze_when_warm, args=(started,), name="journeyscope-gc-freeze", daemon=True).start()

    # The writer, the derive loop and the timers are threads of this process. Python hands the GIL
    # over every 5 ms by default, which a request waiting behind one of them pays in full; 1 ms keeps
    # an API answer's wait for the GIL short at a small cost in switches (benchmarks/bench_switch.py).
    sys.setswitchinterval(0.001)
    app = create_app(settings, on_ready=on_ready)
    config = uvicorn_config(app, settings, log_level="warning", timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if getattr(server, "started", True) is False:
        raise SystemExit(1)

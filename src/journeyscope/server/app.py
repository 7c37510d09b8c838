"""The HTTP side of ``journeyscope serve``: one FastAPI app built from one settings object.

It serves the OTLP/HTTP receiver (``POST /v1/traces``) and the eval API
(``/v1/stages``, ``/v1/route``, ...) from the same process, which owns the
warehouse file(s): one project per key-file project, each with its own file and
writer (see :mod:`journeyscope.server.auth`). The lifespan opens the projects,
then the gRPC receiver, and closes them in the reverse order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from journeyscope import __version__
from journeyscope.errors import InvalidInputError, JourneyscopeError, WarehouseError
from journeyscope.server import api, otlp_http
from journeyscope.server.access import AccessDenied, Caller, caller_for, identify
from journeyscope.server.auth import DEFAULT_PROJECT, load_keys
from journeyscope.server.connections import log_disconnect
from journeyscope.server.hot_routes import HotRouteStats, HotRoutes
from journeyscope.server.paths import OpaquePaths
from journeyscope.server.workers import WorkerPool
from journeyscope.server.policy_store import PolicyStore
from journeyscope.server.project import Project
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse.writer import Writer

logger = logging.getLogger(__name__)

_snapshots = itertools.count(1)


class Started:
    """What the lifespan opened, handed to ``on_ready`` (the CLI prints the addresses)."""

    def __init__(self, projects: dict[str, Project], grpc_port: int | None) -> None:
        self.projects = projects
        self.grpc_port = grpc_port


def _open_projects(settings: ServerSettings, keys: Any, workers: WorkerPool,
                   loop: asyncio.AbstractEventLoop) -> dict[str, Project]:
    policies = PolicyStore(settings.policies_file)
    declared = keys.projects if keys is not None else {DEFAULT_PROJECT: None}
    projects: dict[str, Project] = {}
    try:
        for name, db in declared.items():
            project_settings = replace(settings, db=db or settings.db)
            projects[name] = Project(name, project_settings, policies, loop, workers).start()
    except BaseException:
        for project in projects.values():
            project.stop()
        raise
    policies.watch()
    return projects


def create_app(settings: ServerSettings, *, on_ready: Callable[[Started], None] | None = None) -> FastAPI:
    """The app; its lifespan opens the projects' warehouses, writers and the gRPC receiver, and closes them."""
    keys = load_keys(settings.keys_file)  # an invalid key file fails here, before anything opens

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.workers = workers = WorkerPool(settings.workers)
        try:
            projects = await asyncio.to_thread(_open_projects, settings, keys, workers, asyncio.get_running_loop())
        except BaseException:
            workers.close()
            raise
        app.state.projects = projects
        grpc_server = grpc_port = None
        try:
            if settings.grpc_port is not None:
                from journeyscope.server.otlp_grpc import start_grpc_server

                def resolve(metadata: dict[str, str], peer: str) -> Writer:
                    return identify(metadata, peer, app.state, "ingest").project.writer

                grpc_server, grpc_port = start_grpc_server(resolve, settings, workers)
            if keys is None:
                logger.warning("journeyscope: no API keys configured: accepting requests from this machine only")
            if on_ready is not None:
                on_ready(Started(projects, grpc_port))
            yield
        finally:
            if grpc_server is not None:
                grpc_server.stop(grace=5).wait(10)
            for project in projects.values():
                await asyncio.to_thread(project.stop)
            next(iter(projects.values())).policies.stop()
            await asyncio.to_thread(workers.close)

    app = FastAPI(
        title="journeyscope",
        version=__version__,
        lifespan=lifespan,
        description="OTLP receiver and eval API for AI-run customer journeys.",
    )
    app.state.settings = settings
    app.state.keys = keys
    app.include_router(otlp_http.router)
    app.include_router(api.router)
    app.state.hot_routes = HotRouteStats()
    app.add_middleware(HotRoutes, stats=app.state.hot_routes)
    app.add_middleware(OpaquePaths)  # added last, so it runs first: the hot routes see the kept segments too

    app.add_exception_handler(ClientDisconnect, log_disconnect)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 naming each bad field (never a 500 for input)."""
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"detail": detail, "errors": problems}, status_code=422)

    @app.exception_handler(InvalidInputError)
    async def invalid_input(request: Request, exc: InvalidInputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(JourneyscopeError)
    async def project_error(request: Request, exc: JourneyscopeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503 if isinstance(exc, WarehouseError) else 400)

    snapshot_lock = asyncio.Lock()

    @app.post("/v1/ingest/snapshot")
    async def snapshot(caller: Caller = Depends(caller_for("admin"))) -> JSONResponse:
        """Write a consistent copy of the warehouse next to it, for readers in other processes.

        Admin only, one at a time (each writes a full copy of the database); the answer names the new
        file, never the server's directories.
        """
        if snapshot_lock.locked():
            return JSONResponse({"detail": "a snapshot is being written; retry when it is done"},
                                status_code=429, headers={"Retry-After": "5"})
        async with snapshot_lock:
            base = Path(caller.project.settings.db)
            stamp = time.strftime("%Y%m%dT%H%M%S")
            target = base.with_name(f"{base.stem}.snapshot-{stamp}-{next(_snapshots)}.duckdb")
            try:
                path = await asyncio.to_thread(caller.project.warehouse.snapshot, target)
            except WarehouseError as exc:
                logger.error("journeyscope: snapshot failed: %s", exc)
                raise HTTPException(503, "the snapshot could not be written; the server log says why") from None
        return JSONResponse({"snapshot": path.name})

    return app


__all__ = ["AccessDenied", "Started", "create_app"]

"""``POST /v1/traces`` and ``POST /v1/logs``: the OTLP/HTTP receivers (one path, two signals).

Kept off FastAPI's validation machinery on purpose: the body is read raw
(bounded), un-gzipped (bounded) and decoded into columns by
:mod:`journeyscope.warehouse.otlp` off the event loop (the compiled decoder on a
thread, else a worker process: :mod:`journeyscope.server.workers`), then redacted
and queued on a thread by the write door (:meth:`journeyscope.warehouse.writer.Writer.ingest`);
nothing per span goes through pydantic.
Status codes follow the OTLP/HTTP spec: 200 with the
``ExportTraceServiceResponse`` (``partial_success`` when spans were refused),
400 for a payload that is not OTLP, 413 too large, 415 unknown content type,
503 with ``Retry-After`` when the write queue is full (exporters retry).
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from google.rpc import status_pb2

from journeyscope.errors import InvalidInputError, WarehouseError
from journeyscope.server.access import AccessDenied, identify
from journeyscope.warehouse.log_records import decode_logs, encode_logs_response
from journeyscope.warehouse.writer import Overloaded
from journeyscope.warehouse.otlp import encode_response

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

router = APIRouter()


class _TooLarge(Exception):
    pass


def _error(status: int, message: str, as_json: bool, headers: dict[str, str] | None = None) -> Response:
    """An OTLP error response: a ``google.rpc.Status`` in the request's encoding."""
    if as_json:
        import json

        body = json.dumps({"code": status, "message": message}).encode()
        return Response(body, status_code=status, media_type=JSON, headers=headers)
    body = status_pb2.Status(code=status, message=message).SerializeToString()
    return Response(body, status_code=status, media_type=PROTOBUF, headers=headers)


def _retry_after(seconds: float) -> dict[str, str]:
    """``Retry-After`` is whole seconds (RFC 9110), rounded down (at least 1): every second a refused sender
    waits is one fewer of the exporter's budget, and the line in the writer, not the hint, keeps order."""
    return {"Retry-After": str(max(1, math.floor(seconds)))}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    """Decompress with a ceiling, so a small gzip bomb cannot take the process's memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge
    if not inflater.eof:
        raise InvalidInputError("body is not valid gzip: truncated stream")
    return out


@router.post("/v1/traces")
async def export_traces(request: Request) -> Response:
    """Receive one OTLP ``ExportTraceServiceRequest``; answer once its spans are committed."""
    return await _export(request, _TRACES)


@router.post("/v1/logs")
async def export_logs(request: Request) -> Response:
    """Receive one OTLP ``ExportLogsServiceRequest``; answer once its GenAI records are committed
    (other records are accepted and dropped: :mod:`journeyscope.warehouse.log_records`)."""
    return await _export(request, _LOGS)


class _Signal(NamedTuple):
    """What differs between the trace and the log receiver: decoding, what the door stores, the response."""

    what: str
    decode: Callable[[Request, bytes, bool], Awaitable[Any]]
    logs: bool
    respond: Callable[..., bytes]


async def _decode_traces(request: Request, body: bytes, as_json: bool) -> Any:
    return await request.app.state.workers.decode(body, as_json)


async def _decode_logs(request: Request, body: bytes, as_json: bool) -> Any:
    return await asyncio.to_thread(decode_logs, body, as_json)


_TRACES = _Signal("spans", _decode_traces, False, encode_response)
_LOGS = _Signal("log records", _decode_logs, True, encode_logs_response)


async def _export(request: Request, signal: _Signal) -> Response:
    settings = request.app.state.settings
    try:
        caller = identify(request.headers, request.client.host if request.client else None, request.app.state, "ingest")
    except AccessDenied as exc:
        as_json = request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON
        return _error(exc.status, exc.message, as_json)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (PROTOBUF, JSON):
        return _error(415, f"unsupported content type {content_type or '(none)'!r}; use {PROTOBUF} or {JSON}",
                      False, {"Accept-Post": f"{PROTOBUF}, {JSON}"})
    as_json = content_type == JSON
    writer = caller.project.writer
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        return _error(415, f"unsupported content encoding {encoding!r}; use gzip or none", as_json)
    try:
        body = await _read_body(request, settings.max_body_bytes)
        if encoding == "gzip":
            body = _gunzip(body, settings.max_body_bytes)
    except _TooLarge:
        return _error(413, f"request body larger than {settings.max_body_bytes} bytes", as_json)
    except InvalidInputError as exc:
        return _error(400, str(exc), as_json)
    try:
        writer.check_room()
    except Overloaded as exc:
        return _error(503, str(exc), as_json, _retry_after(exc.retry_after_s))
    try:
        batch = await signal.decode(request, body, as_json)
    except InvalidInputError as exc:
        return _error(400, str(exc), as_json)
    table = batch.table
    if table.num_rows:
        # The door redacts on the calling thread: one of its own here (pyarrow's kernels let go of the GIL).
        try:
            future = await asyncio.to_thread(writer.ingest, table, logs=signal.logs, wait_s=settings.queue_wait_s)
        except Overloaded as exc:
            return _error(503, str(exc), as_json, _retry_after(exc.retry_after_s))
        try:
            await asyncio.wait_for(asyncio.wrap_future(future), settings.ack_timeout_s)
        except Overloaded as exc:  # waited in line for room in vain
            return _error(503, str(exc), as_json, _retry_after(exc.retry_after_s))
        except (WarehouseError, asyncio.TimeoutError) as exc:
            message = str(exc) or "write not committed in time"
            return _error(503, f"{signal.what} not stored: {message}", as_json, _retry_after(writer.retry_hint()))
    body = signal.respond(batch.rejected, batch.error_message, as_json=as_json)
    return Response(body, status_code=200, media_type=JSON if as_json else PROTOBUF)


@router.get("/v1/ready")
async def ready(request: Request) -> Response:
    """Readiness for a load balancer or orchestrator: 200 when the storage answers, else 503 with ``Retry-After``
    (a lake's catalog database or object store down).

    A caller with a key (or a local caller of a key-less server) learns which service is down and why, for its
    project. A caller without one, as a load balancer's health check is, learns only ``ready``, for the whole
    server: every project's storage answers, or not.
    """
    try:
        caller = identify(request.headers, request.client.host if request.client else None, request.app.state, "read")
    except AccessDenied as exc:
        if request.headers.get("authorization") is not None:
            raise HTTPException(exc.status, exc.message) from None
        projects = list(request.app.state.projects.values())
        states = await asyncio.to_thread(lambda: [p.warehouse.readiness()["ready"] for p in projects])
        if all(states):
            return JSONResponse({"ready": True})
        hint = max(p.writer.retry_hint() for p in projects)
        return JSONResponse({"ready": False}, status_code=503, headers=_retry_after(hint))
    state = await asyncio.to_thread(caller.project.warehouse.readiness)
    if state["ready"]:
        return JSONResponse(state)
    return JSONResponse(state, status_code=503, headers=_retry_after(caller.project.writer.retry_hint()))


@router.get("/v1/ingest/status")
async def ingest_status(request: Request) -> dict[str, object]:
    """Writer counters and the stored span count (for operators, benchmarks and tests)."""
    try:
        caller = identify(request.headers, request.client.host if request.client else None, request.app.state, "read")
    except AccessDenied as exc:
        raise HTTPException(exc.status, exc.message) from None
    project = caller.project
    stats = project.writer.stats
    spans = await asyncio.to_thread(project.warehouse.span_count)
    return {
        "spans_in_warehouse": spans,
        "requests": stats.requests,
        "spans_submitted": stats.spans_submitted,
        "spans_stored": stats.spans_stored,
        "duplicates": stats.duplicates,
        "refused_requests": stats.refused_requests,
        "refused_spans": stats.refused_spans,
        "queued_spans": stats.queued_spans,
        "waiting_spans": stats.waiting_spans,
        "waited_requests": stats.waited_requests,
        "transactions": stats.transactions,
        "failed_transactions": stats.failed_transactions,
        "unavailable_transactions": stats.unavailable_transactions,
        "write_seconds": round(stats.write_seconds, 3),
        "visit_seconds": round(project.upkeep.seconds, 3) if project.upkeep is not None else 0.0,
        "scores_written": project.scoring.results if project.scoring is not None else 0,
        "scoring_cpu_seconds": round(project.scoring.seconds, 3) if project.scoring is not None else 0.0,
        "generation": project.warehouse.feed.generation(),
        "checkpoints": stats.checkpoints,
        "checkpoint_failures": stats.checkpoint_failures,
        "checkpoint_seconds": round(stats.checkpoint_seconds, 3),
    }

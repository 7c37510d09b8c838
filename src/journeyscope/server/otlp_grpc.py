"""The OTLP/gRPC ``TraceService/Export`` and ``LogsService/Export`` receivers (grpcio, generic handlers).

Same decoder and writer as OTLP/HTTP: the handler takes the request's raw bytes
(no deserializer), so the body is decoded (on this handler's thread with the
compiled decoder, else in the worker processes) and redacted like an HTTP one, and a body that is not an OTLP message gets ``INVALID_ARGUMENT`` with the
reason. A full write queue answers
``UNAVAILABLE`` with a ``google.rpc.RetryInfo`` delay in the trailers, which the
OTel exporters honour before retrying; a refused span is reported through
``partial_success`` like over HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from urllib.parse import unquote

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo

from journeyscope.errors import InvalidInputError, WarehouseError
from journeyscope.server.access import AccessDenied
from journeyscope.server.workers import WorkerPool
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse.writer import Overloaded, Writer
from journeyscope.warehouse.log_records import decode_logs, encode_logs_response
from journeyscope.warehouse.otlp import encode_response

logger = logging.getLogger(__name__)

__all__ = ["TraceReceiver", "start_grpc_server"]


def _retry_metadata(seconds: float) -> tuple[tuple[str, bytes], ...]:
    whole = int(seconds)
    info = RetryInfo(retry_delay=Duration(seconds=whole, nanos=int((seconds - whole) * 1e9)))
    return (("google.rpc.retryinfo-bin", info.SerializeToString()),)


#: Resolves the writer of the project a call may ingest into, from its metadata and peer address;
#: raises ``PermissionError`` (no or a wrong key: UNAUTHENTICATED) or ``LookupError`` (scope: PERMISSION_DENIED).
WriterResolver = Callable[[dict[str, str], str], Writer]

_GRPC_STATUS = {401: grpc.StatusCode.UNAUTHENTICATED, 403: grpc.StatusCode.PERMISSION_DENIED}


_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


class TraceReceiver:
    """``Export``: check the caller, decode, queue for its project's single writer, answer once committed.

    ``logs=True``: the ``LogsService`` (GenAI log records, :mod:`journeyscope.warehouse.log_records`).
    """

    def __init__(self, resolve: WriterResolver, settings: ServerSettings, workers: WorkerPool,
                 *, logs: bool = False) -> None:
        self._resolve = resolve
        self._settings = settings
        self._workers = workers
        self._logs = logs

    def Export(  # noqa: N802 - the service's method name
        self, request: bytes, context: grpc.ServicerContext
    ) -> bytes:
        metadata = {key.lower(): value for key, value in context.invocation_metadata() if isinstance(value, str)}
        try:
            writer = self._resolve(metadata, _peer_host(context.peer()))
        except AccessDenied as exc:
            context.abort(_GRPC_STATUS.get(exc.status, grpc.StatusCode.PERMISSION_DENIED), exc.message)
        try:
            writer.check_room()
        except Overloaded as exc:
            context.set_trailing_metadata(_retry_metadata(exc.retry_after_s))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            batch = decode_logs(request) if self._logs else self._workers.decode_sync(request)
        except InvalidInputError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        table = batch.table
        if table.num_rows:
            try:  # the door redacts on this handler's thread, not the writer's
                future = writer.ingest(table, logs=self._logs, wait_s=self._settings.queue_wait_s)
            except Overloaded as exc:
                context.set_trailing_metadata(_retry_metadata(exc.retry_after_s))
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            try:
                future.result(timeout=self._settings.ack_timeout_s)
            except Overloaded as exc:  # waited in line for room in vain
                context.set_trailing_metadata(_retry_metadata(exc.retry_after_s))
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except (WarehouseError, futures.TimeoutError) as exc:
                context.set_trailing_metadata(_retry_metadata(writer.retry_hint()))
                what = "log records" if self._logs else "spans"
                context.abort(grpc.StatusCode.UNAVAILABLE, f"{what} not stored: {exc or 'write not committed in time'}")
        if self._logs:
            return encode_logs_response(batch.rejected, batch.error_message)
        return encode_response(batch.rejected, batch.error_message)


def _peer_host(peer: str) -> str:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` (gRPC percent-encodes it: ``ipv6:%5B::1%5D:5000``) → the address."""
    _, _, rest = unquote(peer).partition(":")
    host = rest.rsplit(":", 1)[0] if rest.count(":") >= 1 else rest
    return host.strip("[]")


def start_grpc_server(
    resolve: WriterResolver, settings: ServerSettings, workers: WorkerPool
) -> tuple[grpc.Server, int]:
    """Start the gRPC server on ``settings.host:settings.grpc_port``; return it and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="journeyscope-grpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.so_reuseport", 0),
            # A connection is asked to reconnect after this age (the OTel exporters do so transparently);
            # a call still arriving gets the body timeout more, then the connection is closed.
            ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.body_timeout_s * 1000)),
            ("grpc.max_connection_idle_ms", int(settings.grpc_max_connection_age_s * 1000)),
        ],
        maximum_concurrent_rpcs=settings.max_connections,
    )
    handlers = []
    for service, logs in ((_SERVICE, False), (_LOGS_SERVICE, True)):
        receiver = TraceReceiver(resolve, settings, workers, logs=logs)
        # the response is serialised by the receiver (bytes), as the request is left for it to decode
        export = grpc.unary_unary_rpc_method_handler(receiver.Export, request_deserializer=None,
                                                     response_serializer=None)
        handlers.append(grpc.method_handlers_generic_handler(service, {"Export": export}))
    server.add_generic_rpc_handlers(tuple(handlers))
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    port = server.add_insecure_port(f"{host}:{settings.grpc_port or 0}")
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {settings.host}:{settings.grpc_port}")
    server.start()
    return server, port

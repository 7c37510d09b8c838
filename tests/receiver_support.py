"""Shared by the receiver tests: run the real server in-process on ephemeral ports, build OTLP payloads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from journeyscope.server.app import Started, create_app
from journeyscope.server.project import Project
from journeyscope.server.run import bind_socket, uvicorn_config
from journeyscope.server.runtime import Runtime
from journeyscope.server.settings import ServerSettings


@dataclass
class RunningServer:
    base_url: str
    grpc_target: str
    runtime: Runtime
    project: Project
    app: Any = None

    @property
    def traces_url(self) -> str:
        return self.base_url + "/v1/traces"

    def flush(self) -> None:
        """Everything accepted so far committed: spans, routing decisions, their stage visits."""
        assert self.project.flush(30)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        self.flush()
        assert self.runtime.warehouse is not None
        return self.runtime.warehouse.query(sql, params)


@contextmanager
def running_server(settings: ServerSettings, host: str = "127.0.0.1") -> Iterator[RunningServer]:
    """The real app under uvicorn in a thread, HTTP and gRPC on free ports of ``host`` (``base_url`` and
    ``grpc_target`` always name 127.0.0.1)."""
    sock = bind_socket(host, 0)
    port = sock.getsockname()[1]
    settings = replace(settings, host=host, port=port, grpc_port=0)
    ready: list[Started] = []
    app = create_app(settings, on_ready=ready.append)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (server.started and ready):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    started = ready[0]
    try:
        yield RunningServer(
            f"http://127.0.0.1:{port}", f"127.0.0.1:{started.grpc_port}", started.projects["default"].runtime,
            started.projects["default"], app,
        )
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def make_span(trace: int, span: int, name: str = "journey.turn", *, start_ns: int | None = None,
              parent: int | None = None, **attributes: Any) -> Span:
    start = start_ns if start_ns is not None else time.time_ns()
    return Span(
        trace_id=trace.to_bytes(16, "big") if trace >= 0 else b"\x01\x02",
        span_id=span.to_bytes(8, "big") if span >= 0 else b"\x01",
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1000,
        attributes=[kv(k.replace("__", "."), v) for k, v in attributes.items()],
    )


def make_request(spans: list[Span], service: str = "test-agent") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": [kv("service.name", service)]},
                scope_spans=[ScopeSpans(scope={"name": "tests"}, spans=spans)],
            )
        ]
    )


def journey_spans(journey: str, n: int, *, trace: int, first_span: int = 1, stage: str = "sign-up") -> list[Span]:
    return [
        make_span(trace, first_span + i, journey__id=journey, customer__id="c-1", journey__stage=stage,
                  journey__turn__role="customer" if i % 2 == 0 else "agent", journey__turn__text=f"turn {i}")
        for i in range(n)
    ]


def no_proxy() -> None:
    """Exporters and httpx must reach 127.0.0.1 directly, whatever the environment says."""
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def eventually(check: Any, timeout_s: float = 60.0, interval_s: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something true, and return that; fail after ``timeout_s``.

    The timeout only stops a test that would otherwise hang: it is generous on purpose, so a loaded
    machine does not fail a test about behaviour (how fast is the benchmarks' business).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)

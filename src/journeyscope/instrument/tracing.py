"""One call to send an agent's spans, journey-tagged, to journeyscope.

:func:`setup` adds the journey stamping processor and an exporter to the
application's ``TracerProvider`` (or makes one when there is none). Where the
spans go is an ordinary OTel ``SpanExporter``: the embedded DuckDB file by
default, OTLP when an endpoint is configured the standard way, or any exporter
the caller passes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from journeyscope import __version__, settings
from journeyscope.errors import ConfigError
from journeyscope.instrument.processor import JourneySpanProcessor

logger = logging.getLogger(__name__)

DEFAULT_DB = settings.DEFAULT_DB
_OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OTLP_PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
#: OpenTelemetry's entry-point group of span exporters, and the name the warehouse's embedded exporter has in it.
EXPORTER_GROUP = "opentelemetry_traces_exporter"
EMBEDDED_EXPORTER = "journeyscope"


def default_db_path() -> str:
    """The warehouse file used when none is named: ``$JOURNEYSCOPE_DB`` or ``./journeyscope.duckdb``."""
    return settings.load().db


@dataclass
class Tracing:
    """What :func:`setup` configured; shut it down to flush the last spans."""

    provider: TracerProvider
    tracer: trace.Tracer
    exporter: SpanExporter
    processors: list[SpanProcessor] = field(default_factory=list)
    owns_provider: bool = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything buffered so far; ``True`` when it all went out in time."""
        return all(p.force_flush(timeout_millis) for p in self.processors)

    def shutdown(self) -> None:
        """Flush and stop what ``setup`` added (and the provider, if ``setup`` made it)."""
        if self.owns_provider:
            self.provider.shutdown()
            return
        for processor in self.processors:
            processor.shutdown()


def otlp_exporter(endpoint: str | None = None, protocol: str | None = None) -> SpanExporter:
    """An OTLP span exporter; standard ``OTEL_EXPORTER_OTLP_*`` variables fill in what is not given."""
    protocol = protocol or next((os.environ[v] for v in _OTLP_PROTOCOL_VARS if os.environ.get(v)), "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=True) if endpoint else GrpcExporter()
    if protocol not in ("http/protobuf", "http/json"):
        raise ValueError(f"unsupported OTLP protocol {protocol!r}: use 'grpc' or 'http/protobuf'")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=endpoint) if endpoint else HttpExporter()


def _choose_exporter(db: str | None, endpoint: str | None, protocol: str | None) -> SpanExporter:
    if db is None and (endpoint or any(os.environ.get(v) for v in _OTLP_ENDPOINT_VARS)):
        return otlp_exporter(endpoint, protocol)
    return embedded_exporter(db or default_db_path())


def embedded_exporter(db: str) -> SpanExporter:
    """The embedded warehouse's exporter writing to ``db``, found by its entry point.

    The instrumentation sits below the warehouse and never imports it (an agent that sends
    OTLP never loads DuckDB): the warehouse registers its exporter under :data:`EMBEDDED_EXPORTER`
    in OpenTelemetry's :data:`EXPORTER_GROUP`, the way the SDK finds its own exporters.
    """
    found = entry_points(group=EXPORTER_GROUP, name=EMBEDDED_EXPORTER)
    if not found:
        raise ConfigError(
            f"no {EMBEDDED_EXPORTER!r} span exporter is installed ({EXPORTER_GROUP} entry point): "
            "install journeyscope with pip, or pass exporter= or endpoint= to setup()"
        )
    factory = next(iter(found)).load()
    return factory(db)  # type: ignore[no-any-return]


def setup(
    *,
    db: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    exporter: SpanExporter | None = None,
    service_name: str | None = None,
    provider: TracerProvider | None = None,
    set_global: bool = True,
    batch: bool = True,
    id_generator: IdGenerator | None = None,
    instrument_threads: bool = True,
    max_queue_size: int | None = None,
    max_export_batch_size: int | None = None,
    redact: bool = False,
) -> Tracing:
    """Configure tracing so every span inside a journey context reaches journeyscope.

    Where spans go, first match wins: ``exporter``; ``db`` (a DuckDB file, the
    embedded warehouse); ``endpoint`` or the standard OTLP endpoint variables
    (OTLP, protocol from ``protocol`` or ``OTEL_EXPORTER_OTLP_PROTOCOL``); else the
    embedded warehouse at :func:`default_db_path`.

    If the application already has an SDK ``TracerProvider`` (passed as
    ``provider`` or set globally) the processors are added to it and nothing is
    replaced; otherwise a provider is created (global unless ``set_global=False``).
    ``instrument_threads`` turns on OTel's threading instrumentation so the
    journey follows work handed to threads and thread pools. The batch sizes
    default to the standard ``OTEL_BSP_*`` variables; a bulk producer (the
    simulator, a replay) raises them so nothing is dropped. ``redact=True`` wraps
    the exporter in :class:`journeyscope.privacy.RedactingSpanExporter`, so spans
    are redacted by the privacy policy before they leave the process.
    """
    owns = False
    if provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            resource = Resource.create({"service.name": service_name} if service_name else {})
            provider = TracerProvider(resource=resource, id_generator=id_generator)
            owns = True
            if set_global:
                trace.set_tracer_provider(provider)
    chosen = exporter or _choose_exporter(db, endpoint, protocol)
    if redact:  # PII never leaves the process: the policy in force (privacy.toml / env) before any exporter
        from journeyscope.privacy.exporter import RedactingSpanExporter

        chosen = RedactingSpanExporter(chosen)
    stamping = JourneySpanProcessor()
    export: SpanProcessor = (
        BatchSpanProcessor(chosen, max_queue_size=max_queue_size, max_export_batch_size=max_export_batch_size)
        if batch
        else SimpleSpanProcessor(chosen)
    )
    provider.add_span_processor(stamping)
    provider.add_span_processor(export)
    if instrument_threads:
        _instrument_threads()
    return Tracing(
        provider=provider,
        tracer=provider.get_tracer("journeyscope.instrument", __version__),
        exporter=chosen,
        processors=[stamping, export],
        owns_provider=owns,
    )


def _instrument_threads() -> None:
    try:
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    except ImportError:  # pragma: no cover - it is a declared dependency
        logger.warning("opentelemetry-instrumentation-threading is missing: journeys will not follow threads")
        return
    instrumentor = ThreadingInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()

"""An OpenTelemetry span exporter that writes into the embedded warehouse.

The embedded default of :func:`journeyscope.instrument.setup`: no server, the
agent's own process appends to a DuckDB file. The instrumentation sits below the
warehouse and never imports it: it finds this class by name, as the ``journeyscope``
entry point of OpenTelemetry's ``opentelemetry_traces_exporter`` group (pyproject.toml),
the way the SDK finds its OTLP exporter. It converts SDK spans straight to
:class:`SpanRows` (no protobuf round trip) and hands them to the same
:meth:`Warehouse.ingest` the OTLP receiver uses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from journeyscope import settings
from journeyscope.errors import JourneyscopeError
from journeyscope.warehouse.rows import SpanRows, long_id
from journeyscope.warehouse.store import Warehouse

logger = logging.getLogger(__name__)


def rows_from_spans(spans: Sequence[ReadableSpan]) -> SpanRows:
    """SDK spans as one columnar batch (a span whose id is too long to be found is left out, logged)."""
    rows = SpanRows()
    for span in spans:
        ctx = span.context
        if ctx is None:
            continue
        problem = long_id(span.attributes or {})
        if problem is not None:
            logger.warning("journeyscope: span %r not exported: %s", span.name, problem)
            continue
        parent = span.parent
        resource = span.resource.attributes if span.resource is not None else {}
        scope = span.instrumentation_scope
        rows.add(
            trace_id=format(ctx.trace_id, "032x"),
            span_id=format(ctx.span_id, "016x"),
            parent_span_id=format(parent.span_id, "016x") if parent is not None else None,
            name=span.name,
            start_ns=span.start_time or 0,
            end_ns=span.end_time,
            attributes=span.attributes or {},
            events=[
                {"name": e.name, "time": e.timestamp, "attributes": dict(e.attributes or {})} for e in span.events
            ],
            links=[
                {
                    "trace_id": format(link.context.trace_id, "032x"),
                    "span_id": format(link.context.span_id, "016x"),
                    "attributes": dict(link.attributes or {}),
                }
                for link in span.links
            ],
            resource=resource,
            kind=span.kind.name.lower(),
            status_code=span.status.status_code.name.lower(),
            status_message=span.status.description,
            scope_name=scope.name if scope is not None else None,
        )
    return rows


class DuckDBSpanExporter(SpanExporter):
    """Exports finished spans into a warehouse file (opened on first use, kept open).

    Like every OTel exporter it never raises into the host application: a
    failed write is logged and reported as ``SpanExportResult.FAILURE``.
    """

    def __init__(self, target: str | Path | Warehouse | None = None) -> None:
        """``target``: a warehouse file, an open :class:`Warehouse`, or ``None`` for ``$JOURNEYSCOPE_DB``."""
        if target is None:
            target = settings.load().db
        # A path is a str or PathLike; anything else must be an open warehouse (by what it does, not its class,
        # so a module imported twice cannot make it a "path"): str() of a Warehouse would name a file its repr.
        is_path = isinstance(target, (str, os.PathLike))
        if not is_path and not callable(getattr(target, "ingest", None)):
            raise TypeError(f"DuckDBSpanExporter needs a file path or a Warehouse, got {type(target).__name__}")
        self._warehouse = None if is_path else target  # type: ignore[assignment]
        self._path = str(target) if is_path else None
        self._owns = self._warehouse is None
        self.exported = 0

    @property
    def warehouse(self) -> Warehouse:
        if self._warehouse is None:
            assert self._path is not None
            self._warehouse = Warehouse(self._path)
        return self._warehouse

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.warehouse.ingest(rows_from_spans(spans))
        except JourneyscopeError as exc:
            logger.error("journeyscope: %s", exc)
            return SpanExportResult.FAILURE
        except Exception:  # noqa: BLE001 - telemetry must never crash its host
            logger.exception("journeyscope: exporting %d spans failed", len(spans))
            return SpanExportResult.FAILURE
        self.exported += result.accepted
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._owns and self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

"""``RedactingSpanExporter``: redact spans inside the agent's process, before any exporter sees them.

For teams whose rule is "PII never leaves the process": wrap the exporter
(``instrument.setup(redact=True)`` does it) and OTLP, the embedded warehouse or
any other sink receives only redacted spans. Journey keys are left alone, so the
journey still joins; the warehouse redacts again on ingest, which changes
nothing on already redacted text (tokens are never matched twice).

Like every OTel exporter it never raises into the host: a span that cannot be
redacted is not exported (counted in :attr:`RedactingSpanExporter.withheld`)
rather than exported in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, Status

from journeyscope.privacy.policy import PrivacyPolicy, load_policy
from journeyscope.privacy.redactor import Redactor

logger = logging.getLogger(__name__)


class RedactingSpanExporter(SpanExporter):
    """Wraps ``inner``: each span's attributes, events, links, status and resource are redacted first."""

    def __init__(self, inner: SpanExporter, policy: PrivacyPolicy | None = None) -> None:
        self.inner = inner
        self.redactor = Redactor(policy if policy is not None else load_policy())
        self.redacted = 0  #: values replaced so far
        self.withheld = 0  #: spans not exported because redacting them failed
        self._resources: dict[int, tuple[Resource, Resource]] = {}
        for note in self.redactor.policy.notes():
            logger.warning("journeyscope privacy: %s", note)

    def _resource(self, resource: Resource) -> Resource:
        hit = self._resources.get(id(resource))
        if hit is None or hit[0] is not resource:
            attrs, counts = self.redactor.attributes(dict(resource.attributes))
            self.redacted += sum(counts.values()) if counts else 0
            if len(self._resources) > 64:
                self._resources.clear()
            redacted = Resource(attrs, resource.schema_url) if counts else resource
            hit = self._resources[id(resource)] = (resource, redacted)
        return hit[1]

    def _attrs(self, attributes: object) -> dict[str, object]:
        attrs, counts = self.redactor.attributes(dict(attributes or {}))  # type: ignore[call-overload]
        if counts:
            self.redacted += sum(counts.values())
        return attrs

    def _redact(self, span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:
            text, counts = self.redactor.text(status.description)
            if counts:
                self.redacted += sum(counts.values())
                status = Status(status.status_code, text)
        name, counts = self.redactor.text(span.name)
        if counts:
            self.redacted += sum(counts.values())
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=self._resource(span.resource) if span.resource is not None else None,
            attributes=self._attrs(span.attributes),
            events=tuple(Event(e.name, self._attrs(e.attributes), e.timestamp) for e in span.events),
            links=tuple(Link(link.context, self._attrs(link.attributes)) for link in span.links),
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.redactor.active:
            return self.inner.export(spans)
        out: list[ReadableSpan] = []
        for span in spans:
            try:
                out.append(self._redact(span))
            except Exception:  # noqa: BLE001 - withhold the span rather than export clear text
                self.withheld += 1
                logger.exception("journeyscope privacy: a span could not be redacted and was not exported")
        return self.inner.export(out) if out else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)

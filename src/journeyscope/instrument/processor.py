"""The span processor that stamps the journey on every span.

Modelled on OTel contrib's ``BaggageSpanProcessor``: the journey lives in W3C
baggage (so it crosses process boundaries in headers), and ``on_start`` copies
the allow-listed journey keys onto the span. Because it runs on *every* span
started by the provider, spans from third-party instrumentors (OpenInference,
HTTP clients, databases) are tagged too, without their cooperation.
"""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from journeyscope.conventions import JOURNEY_KEYS


class JourneySpanProcessor(SpanProcessor):
    """Copies the journey baggage entries onto each span as attributes.

    An attribute the span already carries (set explicitly by the caller) is left
    alone: explicit beats ambient. It never raises and never blocks.
    """

    def __init__(self, keys: tuple[str, ...] = JOURNEY_KEYS) -> None:
        self._keys = keys

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        entries = baggage.get_all(parent_context)
        if not entries:
            return
        existing = span.attributes or {}
        stamped = {k: entries[k] for k in self._keys if k in entries and k not in existing}
        if stamped:
            span.set_attributes(stamped)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

"""Shared fixtures: a real SDK tracer provider with the journey processor and an in-memory sink."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope.instrument import JourneySpanProcessor

TESTS = Path(__file__).parent
STAR = TESTS / "data" / "star"


@pytest.fixture
def memory_tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider (not global) that stamps journeys and keeps finished spans in memory."""
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(JourneySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(sink))
    yield provider, sink
    provider.shutdown()

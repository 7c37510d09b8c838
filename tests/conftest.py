"""Shared fixtures: a real SDK tracer provider with the journey processor and an in-memory sink."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope.instrument import JourneySpanProcessor

TESTS = Path(__file__).parent
STAR = TESTS / "data" / "star"


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Streamlit's AppTest leaves the dashboard script as ``__main__``; the server's spawned worker
    processes import ``__main__`` again, and would run the dashboard. Put the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture
def memory_tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A provider (not global) that stamps journeys and keeps finished spans in memory."""
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(JourneySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(sink))
    yield provider, sink
    provider.shutdown()

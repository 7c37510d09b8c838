"""Per-span cost of journey stamping, the only work journeyscope adds to a host application's hot path.

Runs the same loop of span starts/ends three ways on the real SDK, with an
exporter that drops spans (so export cost is not measured, only the SDK path):
a bare provider, the same inside a journey context, and with the
``JourneySpanProcessor`` stamping the journey on every span. Prints nanoseconds
per span (best of several rounds) and the overhead the processor adds.

    python benchmarks/bench_instrument.py [--spans 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from journeyscope.instrument import JourneySpanProcessor, journey


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_span_ns(stamp: bool, in_journey: bool, spans: int, rounds: int) -> float:
    provider = TracerProvider()
    if stamp:
        provider.add_span_processor(JourneySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    tracer = provider.get_tracer("bench")
    best = float("inf")
    for _ in range(rounds):
        ctx = journey("j-bench", "c-bench", name="onboarding", stage="payment", channel="chat", cohort="trial")
        if in_journey:
            ctx.__enter__()
        start = time.perf_counter_ns()
        for _ in range(spans):
            tracer.start_span("step").end()
        best = min(best, (time.perf_counter_ns() - start) / spans)
        if in_journey:
            ctx.__exit__(None, None, None)
    provider.shutdown()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bare = per_span_ns(False, False, args.spans, args.rounds)
    context_only = per_span_ns(False, True, args.spans, args.rounds)
    stamped = per_span_ns(True, True, args.spans, args.rounds)
    print(f"spans per round: {args.spans}, best of {args.rounds}")
    print(f"bare SDK span (start+end):            {bare:8.0f} ns")
    print(f"inside a journey context, no stamping: {context_only:8.0f} ns")
    print(f"with JourneySpanProcessor (7 keys):    {stamped:8.0f} ns")
    print(f"stamping overhead per span:            {stamped - context_only:8.0f} ns ({(stamped / context_only - 1) * 100:.0f}%)")


if __name__ == "__main__":
    main()

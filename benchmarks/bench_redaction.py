"""What PII redaction costs on the ingest path: spans/s with and without it.

Builds a realistic batch stream from the simulator (real instrumentation, real SDK
spans, converted by ``rows_from_spans`` exactly as the in-process exporter does),
then measures, on the same batches:

1. ``redact_rows`` alone (default policy = mask; and hash with a key), with the
   redactor's text cache on (repeated texts, as in the simulator) and off (every
   text new, the worst case for real traffic);
2. end-to-end ingest into a DuckDB file, without redaction and with it (redact,
   insert, log counts to ``redaction_log``), as ``Warehouse.ingest`` will run it.

    python benchmarks/bench_redaction.py [--journeys 2000] [--batch 8192]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope.instrument import JourneySpanProcessor
from journeyscope.privacy import BUILTIN_TYPES, Action, PrivacyPolicy, Redactor, redact_rows
from journeyscope.simulator import SeededIdGenerator, SimulationConfig, Simulator
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.exporter import rows_from_spans
from journeyscope.warehouse.redaction import PrivacyHook


def simulated_batches(journeys: int, batch: int, seed: int = 11) -> list[pa.Table]:
    sink = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SeededIdGenerator(seed))
    provider.add_span_processor(JourneySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(sink))
    for _ in Simulator(SimulationConfig(journeys=journeys, seed=seed), provider.get_tracer("bench")).run():
        pass
    spans = sink.get_finished_spans()
    return [rows_from_spans(spans[i:i + batch]).to_table() for i in range(0, len(spans), batch)]


def rate(fn, batches: list[pa.Table], repeat: int = 5) -> float:
    """Best-of-``repeat`` spans/s of ``fn`` over all batches."""
    spans = sum(b.num_rows for b in batches)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for b in batches:
            fn(b)
        times.append(time.perf_counter() - started)
    return spans / min(times)


def ingest_rates(batches: list[pa.Table], hook: PrivacyHook, repeat: int = 3) -> tuple[float, float]:
    """(plain, redacted) ingest spans/s into two fresh files, batch by batch alternately.

    Alternating keeps both sides under the same machine load, so their ratio holds even
    on a busy machine where the absolute figures move.
    """
    spans = sum(b.num_rows for b in batches)
    plain_s: list[float] = []
    redacted_s: list[float] = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            with Warehouse(Path(folder) / "a.duckdb") as plain, Warehouse(Path(folder) / "b.duckdb") as red:
                t_plain = t_red = 0.0
                for b in batches:
                    started = time.perf_counter()
                    plain.ingest(b, update_visits=False)
                    t_plain += time.perf_counter() - started
                    started = time.perf_counter()
                    table, report = hook.redact(b)
                    red.ingest(table, update_visits=False)
                    cur = red.cursor()
                    hook.log(cur, report)
                    cur.close()
                    t_red += time.perf_counter() - started
                plain_s.append(t_plain)
                redacted_s.append(t_red)
    return spans / statistics.median(plain_s), spans / statistics.median(redacted_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8192)
    args = parser.parse_args()
    os.environ.pop("JOURNEYSCOPE_PRIVACY", None)
    batches = simulated_batches(args.journeys, args.batch)
    spans = sum(b.num_rows for b in batches)
    mask = PrivacyPolicy()
    hashing = PrivacyPolicy({t: Action.HASH for t in BUILTIN_TYPES}, key=b"bench-key-0123456789")
    touched = sum(len({(r[0], r[1]) for r in redact_rows(b, Redactor(mask))[1].rows}) for b in batches)
    print(f"{spans} spans from {args.journeys} simulated journeys, batches of {args.batch}; "
          f"{touched} spans ({touched / spans:.1%}) carry PII\n")
    print("| measurement | spans/s |")
    print("|---|---:|")
    for label, policy in (("mask", mask), ("hash", hashing)):
        warm = Redactor(policy)
        cached = rate(lambda b: redact_rows(b, warm), batches)
        print(f"| redact_rows, {label}, text cache on | {cached:,.0f} |")
        print(f"| redact_rows, {label}, text cache off | "
              f"{rate(lambda b: redact_rows(b, Redactor(policy, cache_size=0)), batches):,.0f} |")
    plain, redacted = ingest_rates(batches, PrivacyHook(mask))
    print(f"| ingest into DuckDB, no redaction | {plain:,.0f} |")
    print(f"| ingest into DuckDB, redaction (mask) + redaction_log | {redacted:,.0f} |")
    print(f"\nredaction costs {1 - redacted / plain:.0%} of end-to-end ingest throughput")


if __name__ == "__main__":
    main()

"""Freshness: how long after an agent's span is acknowledged the eval API shows it.

``journeyscope serve`` runs on a demo warehouse in its own process; this process sends one new
journey at a time through the real instrumentation and OTLP/HTTP exporter, then polls (every 10 ms)
until ``GET /v1/journeys/{id}`` answers with the journey's stage, and until the stage signals of
``GET /v1/stages`` count it. The figures are the time from the export's return (the server has
committed the spans) to each answer. The tests assert only that the answers come; how fast is here.

    python benchmarks/bench_freshness.py [--journeys 300] [--samples 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import start_server  # noqa: E402  (a sibling benchmark script, not a package)

from journeyscope import instrument  # noqa: E402
from journeyscope.demo import run_demo  # noqa: E402
from journeyscope.simulator import SimulationConfig  # noqa: E402


def _seen(checks: dict[str, object], limit_s: float = 60.0) -> dict[str, float]:
    """Seconds until each check first holds, all timed from now and polled together every 10 ms."""
    started = time.perf_counter()
    seen: dict[str, float] = {}
    while len(seen) < len(checks):
        for name, check in checks.items():
            if name not in seen and check():  # type: ignore[operator]
                seen[name] = time.perf_counter() - started
        if time.perf_counter() - started > limit_s:
            raise SystemExit(f"not seen within {limit_s:.0f} s: {sorted(set(checks) - set(seen))}")
        time.sleep(0.01)
    return seen


def _entered(http: httpx.Client) -> int:
    body = http.get("/v1/stages", params={"journey": "onboarding"}).json()
    return next(s["entered"] for s in body["journeys"][0]["stages"] if s["stage"] == "sign-up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=300, help="demo journeys in the warehouse first")
    parser.add_argument("--samples", type=int, default=30, help="new journeys sent, one at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "fresh.duckdb"
        run_demo(db, SimulationConfig(journeys=args.journeys, seed=5, mix={"onboarding": 1.0}))
        proc, base = start_server(db)
        figures: dict[str, list[float]] = {"journey state": [], "stage signals": []}
        try:
            tracing = instrument.setup(exporter=OTLPSpanExporter(endpoint=base + "/v1/traces"),
                                       provider=TracerProvider(), batch=False, instrument_threads=False,
                                       set_global=False)
            with httpx.Client(base_url=base, timeout=30) as http:
                for i in range(args.samples):
                    before = _entered(http)
                    with instrument.journey(f"fresh-{i}", f"c-fresh-{i}", name="onboarding", stage="sign-up",
                                            channel="web"):
                        instrument.record_turn("customer", "Hi, I want to sign up", tracer=tracing.tracer)
                    # batch=False: the span was exported (and acknowledged after commit) when the block ended
                    path = f"/v1/journeys/fresh-{i}"
                    seen = _seen({"journey state": lambda: http.get(path).status_code == 200,
                                  "stage signals": lambda: _entered(http) > before})
                    for name, seconds in seen.items():
                        figures[name].append(seconds)
            tracing.shutdown()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for label, values in figures.items():
        ms = sorted(v * 1000 for v in values)
        print(f"{label:14s} after commit: median {statistics.median(ms):7.1f} ms, "
              f"p90 {ms[int(0.9 * (len(ms) - 1))]:7.1f} ms, max {ms[-1]:7.1f} ms ({len(ms)} journeys)")


if __name__ == "__main__":
    main()

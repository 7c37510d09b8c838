"""Peak memory of ``journeyscope serve`` against a small queue: bounded by its settings, not by the volume?

The server runs as its own process with a small write queue (``--queue-spans 2000``) and a DuckDB
memory limit (``--db-memory``); this process posts the realistic journey traffic of
:mod:`bench_ingest` (20,000 live journeys whose spans arrive over many batches, 512-span requests
from eight senders) and waits until every stage visit is derived, the write-ahead log is folded and
an idle sweep has run. Memory is sampled throughout: the server's peak RSS (``VmHWM``), its RSS at the
end, and the peak RSS of its worker processes (decoding and online scoring). It is checked against
the ceiling the README documents, which follows from the settings alone::

    server peak RSS <= --db-memory + 0.6 GB (+ --state-journeys x 20 KB when the API is asked about journeys)

(DuckDB's buffers, at most ``--db-memory``; the rest: the interpreter, libraries, C heap, the queue
and upkeep parts, each capped by a setting. This benchmark asks the API about no journey, so it holds
no journey states; each costs 10-20 KB, measured apart.) Run it at two volumes to see the peak does
not follow the volume:

    python benchmarks/bench_memory.py --spans 400000 2000000 --db-memory 512MB
    python benchmarks/bench_memory.py --spans 400000 2000000 --db-memory 1GB
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import _funnel_visits, _get, cached_bodies, children, peak_rss_mb, post_all, start_server  # noqa: E402

#: What the server holds beside DuckDB's buffers (see the module docstring), in MB.
OVERHEAD_MB = 600


def parse_size_mb(text: str) -> float:
    """``512MB``, ``1GB``, ``1.5GiB`` -> MB (DuckDB's own units: KB/MB/GB are powers of 1000, KiB... of 1024)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B)\s*", text, re.IGNORECASE)
    if not match:
        raise SystemExit(f"--db-memory: not a size: {text!r}")
    number, unit = float(match.group(1)), match.group(2).upper()
    base = 1024 if "I" in unit else 1000
    power = "KMGT".index(unit[0]) + 1
    return number * base**power / 2**20


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """Samples the server's and its workers' RSS every ``every_s`` on a thread of its own."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid = pid
        self.every_s = every_s
        self.worker_peak_mb = 0.0
        self.timeline: list[tuple[float, float]] = []  # (seconds, server RSS MB)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.timeline.append((time.monotonic() - self._started, _rss_mb(self.pid)))
                for child in children(self.pid):
                    self.worker_peak_mb = max(self.worker_peak_mb, peak_rss_mb(child))
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(spans: int, args: argparse.Namespace) -> dict[str, object]:
    bodies, expected_visits = cached_bodies(spans, args.batch, args.journeys)
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--db-memory", args.db_memory]
        proc, port = start_server(Path(tmp) / "bench.duckdb", args.queue_spans, extra=extra)
        sampler = Sampler(proc.pid)
        try:
            started = time.perf_counter()
            _, failures = post_all(port, bodies, args.senders)
            if failures:
                raise SystemExit(failures[0])
            acked = time.perf_counter() - started
            at_ack = peak_rss_mb(proc.pid)
            deadline = time.monotonic() + 1800
            while _funnel_visits(port) != expected_visits:
                if time.monotonic() > deadline:
                    raise SystemExit("stage visits not derived in 30 minutes")
                time.sleep(0.5)
            derived = time.perf_counter() - started
            while not _get(port, "/v1/ingest/status").get("checkpoints") and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(args.settle)  # an idle sweep and a scoring round after the load
            status = _get(port, "/v1/ingest/status")
            peak = peak_rss_mb(proc.pid)
            end = _rss_mb(proc.pid)
        finally:
            sampler.stop()
            proc.terminate()
            proc.wait(120)
    if status["spans_in_warehouse"] != spans:
        raise SystemExit(f"only {status['spans_in_warehouse']} of {spans} spans stored")
    ceiling = parse_size_mb(args.db_memory) + OVERHEAD_MB
    return {
        "spans": spans,
        "db_memory": args.db_memory,
        "queue_spans": args.queue_spans,
        "seconds_to_last_ack": round(acked, 1),
        "seconds_to_visits_derived": round(derived, 1),
        "server_peak_rss_mb": round(peak),
        "  of_which_by_last_ack_mb": round(at_ack),
        "server_rss_at_end_mb": round(end),
        "worker_peak_rss_mb": round(sampler.worker_peak_mb),
        "ceiling_mb(db_memory+overhead)": round(ceiling),
        "within_ceiling": peak <= ceiling,
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, nargs="+", default=[400_000, 2_000_000])
    parser.add_argument("--db-memory", default="1GB", help="the server's --db-memory (DuckDB's memory limit)")
    parser.add_argument("--queue-spans", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=512, help="spans per OTLP request (the OTel SDK sends 512)")
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--settle", type=float, default=35.0, help="seconds to wait after the load (idle sweep)")
    args = parser.parse_args()
    results = [run(spans, args) for spans in args.spans]
    for result in results:
        print("--")
        for key, value in result.items():
            print(f"{key:>32}: {value}")
    if not all(r["within_ceiling"] for r in results):
        raise SystemExit("peak RSS above the documented ceiling")


if __name__ == "__main__":
    main()

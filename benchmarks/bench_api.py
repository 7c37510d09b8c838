"""Eval API latency under ingest: p50/p99 of ``/v1/stages`` and ``/v1/route`` at a fixed request rate.

Three processes, as in production: ``journeyscope serve`` on a demo warehouse;
a load process posting OTLP/HTTP protobuf batches (``benchmarks/bench_ingest.py``'s
bodies) at a steady rate; and this process, which sends API requests at a fixed
rate (default 200/s, alternating ``GET /v1/stages?journey=...`` and
``POST /v1/route`` for random journeys) over keep-alive connections and records
each latency. Requests are paced open-loop (a late request does not delay the
schedule), so queueing shows in the tail instead of being hidden.

    python benchmarks/bench_api.py [--journeys 2000] [--rate 200] [--seconds 20] [--ingest-rate 20000]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import build_bodies  # noqa: E402  (a sibling benchmark script, not a package)

from journeyscope.demo import run_demo  # noqa: E402
from journeyscope.simulator import SimulationConfig  # noqa: E402


EXTRA: list[str] = []


def start_server(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "journeyscope", "serve", "--db", str(db), "--port", "0", "--grpc-port", "-1", *EXTRA],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"http://([\d.]+):(\d+)/v1/traces", line)
        if match:
            return proc, f"http://{match.group(1)}:{match.group(2)}"
    proc.kill()
    raise SystemExit("server did not start: " + "".join(seen))


def ingest_load(base: str, rate: int, stop: threading.Event, sent: list[int]) -> None:
    """Post 500-span batches at ``rate`` spans/s until stopped (runs in a thread of its own process)."""
    bodies, _ = build_bodies(total=200_000, batch=500, journeys=5_000, seed=11)
    interval = 500 / rate
    with httpx.Client(base_url=base, timeout=30) as http:
        next_at = time.perf_counter()
        for body in bodies:
            if stop.is_set():
                return
            http.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
            sent[0] += 500
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200, help="API requests per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ingest-rate", type=int, default=20_000, help="spans/s of concurrent OTLP load (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="js-bench-api-"))
    db = tmp / "api.duckdb"
    run_demo(db, SimulationConfig(journeys=args.journeys, seed=3))
    proc, base = start_server(db)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            funnel = http.get("/v1/funnel").json()
        names = [j["journey"] for j in funnel["journeys"]]
        import duckdb  # the server holds the file: read the journey ids from a snapshot

        snap = httpx.post(base + "/v1/ingest/snapshot", timeout=60).json()["snapshot"]
        journeys = [r[0] for r in duckdb.connect(snap, read_only=True).execute(
            "SELECT DISTINCT journey_id FROM stage_visits").fetchall()]
        stop = threading.Event()
        sent = [0]
        loader = None
        if args.ingest_rate:
            loader = subprocess.Popen([sys.executable, "-c", (
                "import sys, threading; sys.path.insert(0, %r); import bench_api as b; "
                "b.ingest_load(%r, %d, threading.Event(), [0])" % (str(Path(__file__).parent), base, args.ingest_rate)
            )])
        time.sleep(1.0)
        latencies: dict[str, list[float]] = {"stages": [], "route": []}
        errors = [0]
        workers = 4
        per_worker = int(args.rate * args.seconds) // workers
        interval = workers / args.rate
        lock = threading.Lock()

        def worker(w: int) -> None:
            """Open loop: request k is due at start + k * interval whatever happened to request k - 1."""
            rnd = random.Random(w)
            with httpx.Client(base_url=base, timeout=10) as http:
                for k in range(per_worker):
                    due = start + k * interval + w * interval / workers
                    time.sleep(max(0.0, due - time.perf_counter()))
                    kind = "stages" if (k + w) % 2 == 0 else "route"
                    if kind == "stages":
                        response = http.get("/v1/stages", params={"journey": rnd.choice(names)})
                    else:
                        response = http.post("/v1/route", json={"journey_id": rnd.choice(journeys), "requested_by": "bench"})
                    # From when the request was due, not when it went out: a backlog counts against us
                    # (no coordinated omission).
                    took = time.perf_counter() - due
                    with lock:
                        errors[0] += response.status_code != 200
                        latencies[kind].append(took)

        total = per_worker * workers
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if loader is not None:
            loader.kill()
        stats = httpx.get(base + "/v1/ingest/status").json()
    finally:
        proc.terminate()
        proc.wait(60)
    print(f"{total} API requests in {elapsed:.1f}s ({total / elapsed:.0f}/s) with OTLP load "
          f"({stats['spans_stored']} spans stored during the run); errors: {errors[0]}")
    for kind, values in latencies.items():
        values.sort()
        p50 = statistics.median(values) * 1000
        p99 = values[int(len(values) * 0.99) - 1] * 1000
        print(f"{kind:7s} n={len(values)}  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {values[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

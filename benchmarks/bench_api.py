"""Eval API latency under ingest: p50/p99 of ``/v1/stages`` and ``/v1/route`` at a fixed request rate.

Three processes, as in production: ``journeyscope serve`` on a demo warehouse;
a load process posting OTLP/HTTP protobuf batches (``benchmarks/bench_ingest.py``'s
bodies) at a steady rate; and this process, which sends API requests at a fixed
rate (default 200/s, alternating ``GET /v1/stages?journey=...`` and
``POST /v1/route`` for random journeys) from four client processes over
keep-alive connections and records each latency. Requests are paced open-loop (a late request does not delay the
schedule), so queueing shows in the tail instead of being hidden.

    python benchmarks/bench_api.py [--journeys 2000] [--rate 200] [--seconds 20] [--ingest-rate 20000] [--no-evaluate]
        [--server-arg=--workers=0 ...]

The demo warehouse is built once per schema version and size, and copied for each run (so runs of two
variants can be interleaved quickly); ``--server-arg`` passes options to ``journeyscope serve`` as they are.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import build_bodies  # noqa: E402  (a sibling benchmark script, not a package)

from journeyscope.demo import run_demo  # noqa: E402
from journeyscope.simulator import SimulationConfig  # noqa: E402
from journeyscope.warehouse.schema import SCHEMA_VERSION  # noqa: E402


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


def demo_copy(journeys: int, into: Path) -> Path:
    """A copy of the demo warehouse of ``journeys`` journeys, built the first time it is asked for."""
    cached = Path(tempfile.gettempdir()) / f"js-bench-api-demo-v{SCHEMA_VERSION}-{journeys}.duckdb"
    if not cached.exists():
        building = cached.with_suffix(f".{os.getpid()}.building")
        run_demo(building, SimulationConfig(journeys=journeys, seed=3))
        building.rename(cached)
    db = into / "api.duckdb"
    shutil.copyfile(cached, db)
    return db


def ingest_load(base: str, rate: int, seconds: float) -> None:
    """Post 500-span batches at ``rate`` spans/s for ``seconds`` (run in a process of its own).

    Prints ``ready`` once the bodies are built, so the API load starts with the ingest load.
    """
    total = max(500, int(rate * (seconds + 10)) // 500 * 500)
    bodies, _ = build_bodies(total=total, batch=500, journeys=5_000, seed=11)
    print("ready", flush=True)
    interval = 500 / rate
    with httpx.Client(base_url=base, timeout=30) as http:
        next_at = time.perf_counter()
        for body in bodies:
            http.post("/v1/traces", content=body, headers={"content-type": "application/x-protobuf"})
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))


def paced_client(job: tuple[Any, ...]) -> tuple[dict[str, list[float]], int]:
    """One client process (no GIL shared with the others), open loop: request k is due at
    ``start + k * interval`` whatever happened to request k - 1, and its latency counts from then,
    so a backlog shows in the tail (no coordinated omission)."""
    w, workers, per_worker, rate, start, base, names, journeys = job
    interval = workers / rate
    rnd = random.Random(w)
    latencies: dict[str, list[float]] = {"stages": [], "route": []}
    errors = 0
    with httpx.Client(base_url=base, timeout=10) as http:
        for k in range(per_worker):
            due = start + k * interval + w * interval / workers
            time.sleep(max(0.0, due - time.monotonic()))
            kind = "stages" if (k + w) % 2 == 0 else "route"
            if kind == "stages":
                response = http.get("/v1/stages", params={"journey": rnd.choice(names)})
            else:
                response = http.post("/v1/route", json={"journey_id": rnd.choice(journeys), "requested_by": "bench"})
            latencies[kind].append(time.monotonic() - due)
            errors += response.status_code != 200
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200, help="API requests per second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ingest-rate", type=int, default=20_000, help="spans/s of concurrent OTLP load (0: none)")
    parser.add_argument("--no-evaluate", action="store_true", help="serve without online scoring")
    parser.add_argument("--server-arg", action="append", default=[], metavar="OPTION",
                        help="an option for journeyscope serve, as is (repeat for more): --server-arg=--workers=0")
    parser.add_argument("--py-spy", metavar="FILE", type=Path,
                        help="record which thread holds the server's GIL during the run (py-spy record --gil "
                             "--threads, collapsed stacks) into FILE; needs py-spy installed")
    args = parser.parse_args()
    if args.no_evaluate:
        EXTRA.append("--no-evaluate")
    EXTRA.extend(args.server_arg)
    tmp = Path(tempfile.mkdtemp(prefix="js-bench-api-"))
    db = demo_copy(args.journeys, tmp)
    proc, base = start_server(db)
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            funnel = http.get("/v1/funnel").json()
        names = [j["journey"] for j in funnel["journeys"]]
        import duckdb  # the server holds the file: read the journey ids from a snapshot

        snap = db.with_name(httpx.post(base + "/v1/ingest/snapshot", timeout=60).json()["snapshot"])
        journeys = [r[0] for r in duckdb.connect(snap, read_only=True).execute(
            "SELECT DISTINCT journey_id FROM stage_visits").fetchall()]
        loader = None
        if args.ingest_rate:
            loader = subprocess.Popen([sys.executable, "-c", (
                "import sys; sys.path.insert(0, %r); import bench_api as b; "
                "b.ingest_load(%r, %d, %f)" % (str(Path(__file__).parent), base, args.ingest_rate, args.seconds)
            )], stdout=subprocess.PIPE, text=True)
            assert loader.stdout is not None
            loader.stdout.readline()  # "ready": its bodies are built
        before = httpx.get(base + "/v1/ingest/status").json()
        time.sleep(1.0)
        workers = 4
        per_worker = int(args.rate * args.seconds) // workers
        # CLOCK_MONOTONIC is one clock for every process on the machine; the clients start importing now.
        start = time.monotonic() + 5.0
        jobs = [(w, workers, per_worker, args.rate, start, base, names, journeys) for w in range(workers)]
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(proc.pid), "--gil", "--threads", "--format", "raw",
                                    "--rate", "200", "--nonblocking", "--duration", str(int(args.seconds + 5)),
                                    "--output", str(args.py_spy)], stdout=subprocess.DEVNULL)
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(paced_client, jobs)
        latencies: dict[str, list[float]] = {"stages": [], "route": []}
        errors = sum(r[1] for r in results)
        for r in results:
            for kind, values in r[0].items():
                latencies[kind].extend(values)
        total = per_worker * workers
        elapsed = time.monotonic() - start
        if loader is not None:
            loader.kill()
        if spy is not None:
            spy.wait()
        stats = httpx.get(base + "/v1/ingest/status").json()
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{total} API requests in {elapsed:.1f}s ({total / elapsed:.0f}/s) with OTLP load "
          f"({stats['spans_stored'] - before['spans_stored']} spans stored during the run); errors: {errors}")
    if "scores_written" in stats:
        print(f"online scoring during the run: {stats['scores_written'] - before['scores_written']} scores written, "
              f"{stats['scoring_cpu_seconds'] - before['scoring_cpu_seconds']:.1f} s of the server's CPU")
    for kind, values in latencies.items():
        values.sort()
        p50 = statistics.median(values) * 1000
        p99 = values[int(len(values) * 0.99) - 1] * 1000
        print(f"{kind:7s} n={len(values)}  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {values[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()

"""End-to-end rate of ``journeyscope evaluate``: stage visits read from a warehouse, scored and written.

Run:  python benchmarks/bench_evaluate.py [--corpus star|demo|both] [--workers 0 2] [--rounds 3]

Builds two warehouses under a temporary directory: the STAR dev split imported with ``journeyscope
import`` (real dialogues, ``tests/data/star``) and a ``journeyscope demo`` of ``--demo-journeys``
simulated journeys (evaluation left out). Each round copies the warehouse and runs the
``journeyscope evaluate --db COPY --workers N`` command line in a subprocess, exactly as a user would,
and reads its summary line ("N stage visits scored ... in S s (R visits/s)": the time inside the
evaluation run, every evaluator, reads and writes included). It also reports the whole command's
wall time (interpreter start and imports included) and the CPU time the command and its scoring
processes used per visit, a figure that other work on the machine changes much less than the wall
clock. The load average is printed next to every figure: on a shared machine, wall-clock rates
taken under load say little.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAR = ROOT / "tests" / "data" / "star" / "dev.jsonl.gz"
_SUMMARY = re.compile(r"(\d+) stage visits scored with the \w+ engine in ([\d.]+)s \(([\d,]+) visits/s\)")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "journeyscope", *args], capture_output=True, text=True, env=env,
                          check=True)


def build(corpus: str, where: Path, demo_journeys: int) -> Path:
    """A warehouse of ``corpus`` with every stage visit derived and none scored."""
    db = where / f"{corpus}.duckdb"
    if corpus == "star":
        _cli("import", str(STAR), "--db", str(db))
    else:
        from journeyscope.demo import run_demo
        from journeyscope.simulator import SimulationConfig

        run_demo(db, SimulationConfig(journeys=demo_journeys), evaluate=False)
    return db


def run_once(db: Path, workers: int, where: Path) -> dict[str, float]:
    """``journeyscope evaluate`` on a fresh copy of ``db``: its own rate, wall time and CPU per visit."""
    copy = where / "copy.duckdb"
    shutil.copy(db, copy)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = _cli("evaluate", "--db", str(copy), "--workers", str(workers))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = _SUMMARY.search(" ".join(out.stdout.split()))
    if m is None:
        raise SystemExit(f"no summary line in the output of journeyscope evaluate:\n{out.stdout}\n{out.stderr}")
    visits, seconds = int(m.group(1)), float(m.group(2))
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    copy.unlink()
    Path(str(copy) + ".wal").unlink(missing_ok=True)
    return {"visits": visits, "seconds": seconds, "rate": visits / seconds, "wall": wall,
            "cpu_us": cpu / visits * 1e6, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    """Build the warehouses, run the command ``--rounds`` times per worker count, print the best round."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", choices=("star", "demo", "both"), default="both")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--demo-journeys", type=int, default=2000)
    args = ap.parse_args(argv)
    corpora = ["star", "demo"] if args.corpus == "both" else [args.corpus]
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    print("| corpus | workers | visits | evaluate rate (visits/s) | command wall (s) | CPU µs/visit | load |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        for corpus in corpora:
            db = build(corpus, where, args.demo_journeys)
            for workers in args.workers:
                runs = [run_once(db, workers, where) for _ in range(args.rounds)]
                best = max(runs, key=lambda r: r["rate"])
                cpu = min(r["cpu_us"] for r in runs)
                print(f"| {corpus} | {workers} | {best['visits']:,.0f} | {best['rate']:,.0f} | {best['wall']:.1f} | "
                      f"{cpu:,.0f} | {best['load']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

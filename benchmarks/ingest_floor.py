"""What each step of ingest costs in CPU per span, and the fastest rate the steps DuckDB must do allow.

``bench_ingest.py`` measures the receiver end to end. This script takes the same
request bodies and times each step alone, in this process, in CPU seconds (all
threads, DuckDB's included) per span:

- parsing the protobuf (upb, C), then walking it into columns (Python), then building the Arrow table;
- the same by the compiled decoder (``_otlp_decode``, body to Arrow table in one step), when it is built;
- redaction (the privacy policy in force);
- DuckDB appending the rows, first to a copy of the ``spans`` table without its primary key, then to the
  real one (the key is what keeps a retried batch from being stored twice);
- the whole ``Warehouse.ingest`` (redaction, insert, pending-visit marks, redaction log);
- stage-visit upkeep for everything ingested.

The last lines add up the steps no receiver design can skip on this storage (append with the key,
visit upkeep) and say what rate they alone allow on the machine's cores, before any byte is decoded
or any HTTP request is read; on the wall clock, what the keyed append followed by the checkpoint that
folds it into the file allows (DuckDB makes appends wait while a checkpoint runs, so that rate holds
whatever the number of cores); then what the receiver's own steps allow, with each decoder.

    python benchmarks/ingest_floor.py [--spans 100000] [--batch 2000] [--txn 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import cached_bodies  # noqa: E402  (a sibling benchmark script, not a package)

from journeyscope.warehouse import Warehouse  # noqa: E402
from journeyscope.warehouse.otlp import ACCELERATED, decode_protobuf, decode_protobuf_table  # noqa: E402
from journeyscope.warehouse.redaction import PrivacyHook  # noqa: E402
from journeyscope.warehouse.schema import _V1  # noqa: E402  (the spans table as created)


def cpu(work: Callable[[], object]) -> float:
    """CPU seconds of every thread of this process while ``work`` runs."""
    before = time.process_time()
    work()
    return time.process_time() - before


def _with_columns(table: pa.Table, first_seq: int) -> pa.Table:
    n = table.num_rows
    now = pa.array(np.full(n, time.time_ns() // 1000, dtype=np.int64)).cast(pa.timestamp("us"))
    return table.append_column("seq", pa.array(np.arange(first_seq, first_seq + n))).append_column("ingested_at", now)


def append(ddl: str, table: pa.Table, txn: int, folded: dict[str, float] | None = None) -> float:
    """CPU seconds to append ``table`` to a fresh file's ``spans`` table in ``txn``-row transactions.

    With ``folded``, also the wall seconds of the appends and of the checkpoint that then folds the
    write-ahead log into the file: DuckDB makes appends wait while a checkpoint runs, so under a
    sustained load the two add up on one clock, however many cores there are.
    """
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(os.path.join(tmp, "floor.duckdb"))
        con.execute(ddl)
        con.execute("SET checkpoint_threshold = '256MB'")  # as the server's writer sets it

        def work() -> None:
            for start in range(0, table.num_rows, txn):
                con.register("incoming", table.slice(start, txn))
                con.execute("BEGIN TRANSACTION")
                con.execute("INSERT INTO spans BY NAME SELECT * FROM incoming")
                con.execute("COMMIT")

        started = time.perf_counter()
        took = cpu(work)
        if folded is not None:
            folded["append"] = time.perf_counter() - started
            started = time.perf_counter()
            con.execute("CHECKPOINT")
            folded["checkpoint"] = time.perf_counter() - started
        con.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000, help="spans per request body")
    parser.add_argument("--txn", type=int, default=20_000, help="spans per DuckDB transaction (the writer groups)")
    parser.add_argument("--journeys", type=int, default=20_000)
    args = parser.parse_args()
    bodies, _ = cached_bodies(args.spans, args.batch, args.journeys)
    n = args.spans
    steps: dict[str, float] = {}

    steps["parse protobuf (upb, C)"] = cpu(lambda: [ExportTraceServiceRequest.FromString(b) for b in bodies])
    decoded: list = []
    steps["parse + walk into columns (Python)"] = cpu(lambda: decoded.extend(decode_protobuf(b) for b in bodies))
    tables: list[pa.Table] = []
    steps["columns to Arrow"] = cpu(lambda: tables.extend(d.rows.to_table() for d in decoded))
    compiled = "decode to Arrow (compiled, _otlp_decode)"
    if ACCELERATED:
        steps[compiled] = cpu(lambda: [decode_protobuf_table(b) for b in bodies])
    table = pa.concat_tables(tables)
    hook = PrivacyHook()
    redacted: list[pa.Table] = []
    steps["redaction"] = cpu(lambda: redacted.append(hook.redact(table)[0]))
    ready = _with_columns(redacted[0], 0)
    no_key = _V1.replace("PRIMARY KEY (trace_id, span_id)", "CHECK (true)")
    steps["DuckDB append, no key"] = append(no_key, ready, args.txn)
    folded: dict[str, float] = {}
    steps["DuckDB append with the span key"] = append(_V1, ready, args.txn, folded)
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(Path(tmp) / "floor.duckdb")
        warehouse.query("SET GLOBAL checkpoint_threshold = '256MB'")

        def ingest() -> None:
            for start in range(0, table.num_rows, args.txn):
                warehouse.ingest(table.slice(start, args.txn), update_visits=False)

        steps["Warehouse.ingest (redaction, insert, marks)"] = cpu(ingest)
        steps["stage-visit upkeep"] = cpu(warehouse.update_visits)
        warehouse.close()

    cores = os.cpu_count() or 1
    print(f"{n:,} spans in {len(bodies)} bodies of {args.batch}, transactions of {args.txn:,}; {cores} cores")
    for name, seconds in steps.items():
        print(f"  {name:46s} {seconds / n * 1e6:7.1f} µs CPU/span")
    if not ACCELERATED:
        print(f"  {compiled:46s} not built (or JOURNEYSCOPE_PURE_PYTHON is set)")
    floor = (steps["DuckDB append with the span key"] + steps["stage-visit upkeep"]) / n
    print(f"  {'append with key + upkeep (the floor)':46s} {floor * 1e6:7.1f} µs CPU/span"
          f" -> at most {cores / floor:,.0f} spans/s on {cores} cores, before decoding or HTTP")
    serial = (folded["append"] + folded["checkpoint"]) / n
    print(f"  {'append with key, then checkpoint (wall clock)':46s} {folded['append'] / n * 1e6:7.1f} + "
          f"{folded['checkpoint'] / n * 1e6:.1f} µs/span -> at most {1 / serial:,.0f} spans/s sustained on any number "
          "of cores (appends wait for the checkpoint)")
    storing = steps["Warehouse.ingest (redaction, insert, marks)"] + steps["stage-visit upkeep"]
    decoders = {"Python": steps["parse + walk into columns (Python)"] + steps["columns to Arrow"]}
    if ACCELERATED:
        decoders["compiled"] = steps[compiled]
    for decoder, decoding in decoders.items():
        total = (decoding + storing) / n
        print(f"  {'decode (' + decoder + ') + ingest + upkeep':46s} {total * 1e6:7.1f} µs CPU/span"
              f" -> at most {cores / total:,.0f} spans/s on {cores} cores")


if __name__ == "__main__":
    main()

"""The write-ahead log is folded into the file while the server runs: no transaction is left open.

Real SDK traffic spreads each journey over many batches, so every stage-visit upkeep deletes and derives
again visits of journeys it saw before. A transaction left open anywhere (it was a half-read result on the
warehouse's own connection) holds a snapshot that still sees those deleted rows, and DuckDB then refuses
every checkpoint: the log grows for as long as the process runs and the next start replays all of it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from journeyscope.warehouse.writer import Writer
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.rows import SPAN_SCHEMA

_T0 = 1_700_000_000_000_000_000


def narrow_batch(first: int, n: int, journeys: int, window: int | None = None) -> pa.Table:
    """``n`` spans numbered from ``first``, of ``journeys`` live journeys at a time that each get spans in
    every batch (their stage moves on every ``journeys`` spans, so upkeep derives their visits again),
    for ``window`` spans of traffic; then the next ``journeys`` take over (default: the same ones forever)."""
    idx = np.arange(first, first + n, dtype=np.int64)
    generation = idx // window if window else np.zeros(n, dtype=np.int64)
    cols = {f.name: pa.nulls(n, f.type) for f in SPAN_SCHEMA}
    cols["trace_id"] = pa.array(np.char.mod("%032x", idx // 4).astype(object), pa.string())
    cols["span_id"] = pa.array(np.char.mod("%016x", idx).astype(object), pa.string())
    cols["name"] = pa.array(np.full(n, "turn", dtype=object), pa.string())
    cols["start_time"] = pa.array(_T0 + idx * 1000, pa.timestamp("ns"))
    cols["journey_id"] = pa.array(np.char.mod("j%d", generation * journeys + idx % journeys).astype(object),
                                  pa.string())
    cols["stage"] = pa.array(np.char.mod("s%d", (idx // journeys) % 4).astype(object), pa.string())
    return pa.table(cols, schema=SPAN_SCHEMA)


def _wal(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_checkpoint_runs_after_journeys_span_batches(tmp_path: Path) -> None:
    """The one-thread reproduction: a checkpoint after each of a few batches that revisit journeys."""
    with Warehouse(tmp_path / "w.duckdb") as wh:
        for i in range(5):
            wh.ingest(narrow_batch(i * 1000, 1000, journeys=500))
            wh.checkpoint()  # raised from the second batch on while a transaction was left open
        assert wh.query("SELECT count(*) FROM spans")[0][0] == 5000
        assert wh.query("SELECT count(DISTINCT journey_id) FROM stage_visits")[0][0] == 500


@pytest.mark.slow
def test_writer_folds_the_log_under_real_traffic_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A million narrow spans, each journey spread over many batches, through the server's writer: once ingest
    pauses the writer checkpoints, the log is folded, and the file opens again without replaying one."""
    db = tmp_path / "w.duckdb"
    # 10,000 live journeys at a time, each over 10 batches of 10,000 spans, then the next 10,000.
    total, per_batch, journeys, window = 1_000_000, 10_000, 10_000, 100_000
    wh = Warehouse(db)
    # A low threshold, so DuckDB's own checkpoints are due many times over during the run as well.
    writer = Writer(wh, max_queue_spans=50_000, max_batch_spans=50_000, checkpoint_threshold="16MB",
                         checkpoint_idle_s=0.2)
    caplog.set_level(logging.WARNING, logger="journeyscope.warehouse.writer")
    try:
        pending = []
        for first in range(0, total, per_batch):
            pending.append(writer.ingest(narrow_batch(first, per_batch, journeys, window)))
            while len(pending) >= 4:  # a sender that waits for its acks, as the OTLP exporters do
                pending.pop(0).result(timeout=120)
        for future in pending:
            future.result(timeout=120)
        assert writer.force_flush(timeout_s=120)
        deadline = time.monotonic() + 60
        while writer.stats.checkpoints == 0 and writer.stats.checkpoint_failures == 0 \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer.stats.checkpoint_failures == 0, caplog.text
        assert writer.stats.checkpoints > 0
        assert _wal(db) < 1024 * 1024, f"write-ahead log not folded: {_wal(db)} bytes"
    finally:
        writer.shutdown()
        wh.close()
    assert not caplog.records
    with Warehouse(db) as reopened:
        assert reopened.query("SELECT count(*) FROM spans")[0][0] == total
        assert reopened.query("SELECT count(DISTINCT journey_id) FROM stage_visits")[0][0] == \
            journeys * (total // window)
    assert _wal(db) < 1024 * 1024

"""Group commit: batches that arrive apart commit together when the writer is told to wait for company.

On a lake every commit costs a round of catalog writes and a file per table it touches, so a receiver's writer
holds a short queue for a moment (``commit_wait_s``) and batches that arrive meanwhile share one transaction; a
queue of :data:`~journeyscope.warehouse.writer.COMMIT_WAIT_SPANS` spans or more commits at once. The storage here
is a file (the rule is the writer's, whatever it writes to), the timing generous so a slow machine only makes
the waits shorter, never the assertions wrong.
"""

from __future__ import annotations

import time
from pathlib import Path

from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.writer import COMMIT_WAIT_SPANS, Writer

T0 = 1_700_000_000_000_000_000


def _spans(first: int, n: int) -> SpanRows:
    rows = SpanRows()
    for i in range(first, first + n):
        rows.add(trace_id=f"{i // 4:032x}", span_id=f"{i + 1:016x}", parent_span_id=None, name="journey.turn",
                 start_ns=T0 + i, end_ns=None,
                 attributes={"journey.id": f"j{i % 7}", "customer.id": "c", "journey.name": "support",
                             "journey.stage": "triage", "journey.turn.role": "customer", "journey.turn.text": "hi"})
    return rows


def test_batches_that_arrive_apart_commit_together_within_the_wait(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "g.duckdb") as wh:
        writer = Writer(wh, commit_wait_s=3.0)
        try:
            futures = []
            for k in range(3):
                futures.append(writer.ingest(_spans(k * 10, 10)))
                time.sleep(0.05)
            assert [f.result(timeout=30).accepted for f in futures] == [10, 10, 10]
            assert writer.stats.transactions == 1
        finally:
            writer.shutdown()


def test_without_a_wait_batches_that_arrive_apart_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """The default writer (a file's) commits what it has: the same three batches 50 ms apart make more than one
    transaction (a machine slow enough to take 50 ms a commit may still join two of them)."""
    with Warehouse(tmp_path / "a.duckdb") as wh:
        writer = Writer(wh)
        try:
            futures = []
            for k in range(3):
                futures.append(writer.ingest(_spans(k * 10, 10)))
                time.sleep(0.05)
            assert [f.result(timeout=30).accepted for f in futures] == [10, 10, 10]
            assert writer.stats.transactions > 1
        finally:
            writer.shutdown()


def test_a_queue_of_enough_spans_commits_without_waiting(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "b.duckdb") as wh:
        writer = Writer(wh, commit_wait_s=60.0)
        try:
            began = time.monotonic()
            assert writer.ingest(_spans(0, COMMIT_WAIT_SPANS)).result(timeout=30).accepted == COMMIT_WAIT_SPANS
            assert time.monotonic() - began < 30  # far below the minute a small batch would wait
            small = writer.ingest(_spans(COMMIT_WAIT_SPANS, 5))
            writer.shutdown()  # shutting down ends the wait: what was accepted is committed
            assert small.result(timeout=30).accepted == 5
        finally:
            writer.shutdown()

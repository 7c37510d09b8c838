"""Group commit: batches that arrive apart commit together when the writer is told to wait for company.

On a lake every commit costs a round of catalog writes and a file per table it touches, so a receiver's writer
holds a short queue for a moment (``commit_wait_s``) and batches that arrive meanwhile share one transaction; a
queue of :data:`~journeyscope.warehouse.writer.COMMIT_WAIT_SPANS` spans or more commits at once. The storage here
is a file (the rule is the writer's, whatever it writes to), the timing generous so a slow machine only makes
the waits shorter, never the assertions wrong.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from journeyscope.server.settings import ServerSettings
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


def _three_apart(writer: Writer) -> list[int]:
    """Three batches of 10 spans sent 50 ms apart; the spans each one stored."""
    futures = []
    for k in range(3):
        futures.append(writer.ingest(_spans(k * 10, 10)))
        time.sleep(0.05)
    return [f.result(timeout=30).accepted for f in futures]


def test_batches_that_arrive_apart_commit_together_within_the_wait(tmp_path: Path) -> None:
    with Warehouse(tmp_path / "g.duckdb") as wh:
        writer = Writer(wh, commit_wait_s=3.0)
        try:
            assert _three_apart(writer) == [10, 10, 10]
            assert writer.stats.transactions == 1
        finally:
            writer.shutdown()


def test_without_a_wait_batches_that_arrive_apart_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """The default writer (a file's) commits what it has: the same three batches 50 ms apart make more than one
    transaction (a machine slow enough to take 50 ms a commit may still join two of them)."""
    with Warehouse(tmp_path / "a.duckdb") as wh:
        writer = Writer(wh)
        try:
            assert _three_apart(writer) == [10, 10, 10]
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


def test_a_batch_that_came_during_a_commit_waits_for_the_senders_that_commit_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait counts from the last commit's end too: a batch that arrived while a (slow) commit ran, its own wait
    long over, still waits for the batch sent right after that commit, and the two share the next commit."""
    with Warehouse(tmp_path / "c.duckdb") as wh:
        real = wh.ingest
        calls: list[int] = []

        def ingest(batch: object, **kwargs: object) -> object:
            calls.append(1)
            if len(calls) == 1:
                time.sleep(1.0)  # the first commit is slow
            return real(batch, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(wh, "ingest", ingest)
        writer = Writer(wh, commit_wait_s=0.5)
        try:
            first = writer.ingest(_spans(0, 10))
            time.sleep(0.6)  # the first commit has begun (after its 0.5 s wait) and runs for a second
            during = writer.ingest(_spans(10, 10))
            first.result(timeout=30)
            time.sleep(0.1)  # the answered sender sends again, within the wait counted from the commit's end
            after = writer.ingest(_spans(20, 10))
            assert [f.result(timeout=30).accepted for f in (during, after)] == [10, 10]
            assert writer.stats.transactions == 2  # the first alone, the other two together
        finally:
            writer.shutdown()


def test_serve_waits_for_company_as_long_as_commit_wait_says(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve --commit-wait`` reaches the receiver's writer: on the file, which waits for nothing by default,
    three OTLP requests posted 50 ms apart over real HTTP share one commit with a wait of 3 s."""
    from click.testing import CliRunner

    from journeyscope.cli import cli
    from journeyscope.server import run
    from receiver_support import journey_spans, make_request, no_proxy, running_server

    chosen: list[ServerSettings] = []
    monkeypatch.setattr(run, "serve", chosen.append)
    result = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "cli.duckdb"), "--port", "0",
                                       "--grpc-port", "-1", "--commit-wait", "3"])
    assert result.exit_code == 0, result.output
    assert [s.commit_wait_s for s in chosen] == [3.0]

    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"), evaluate_online=False,
                                       commit_wait_s=chosen[0].commit_wait_s)) as server:
        bodies = [make_request(journey_spans(f"j-{k}", 4, trace=k + 1)).SerializeToString() for k in range(3)]
        with ThreadPoolExecutor(3) as pool:
            answers = []
            for body in bodies:
                answers.append(pool.submit(httpx.post, server.traces_url, content=body,
                                           headers={"Content-Type": "application/x-protobuf"}, timeout=30))
                time.sleep(0.05)
            assert [a.result().status_code for a in answers] == [200, 200, 200]
        assert server.runtime.writer.stats.transactions == 1  # type: ignore[union-attr]
        assert server.query("SELECT count(*) FROM spans") == [(12,)]

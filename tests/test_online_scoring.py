"""Online scoring in the derive loop: every closed visit scored once, with exactly the rows a full
``evaluate_pending`` run writes, in chunks that rest between them; a restarted scorer resumes from its
stored position and scores what arrived while it was down, nothing twice."""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from journeyscope.server.scoring import OnlineScoring
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.derive import CpuShare, DeriveLoop, VisitUpkeep
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.writer import Writer

T0 = 1_700_000_000_000_000_000
LATER = T0 + 24 * 3600 * 10**9  # the warehouse clock: every visit long idle, so closed (abandoned) and scorable

_ROWS = "SELECT journey_id, stage, visit, evaluator, score, passed, label, reason, evidence, error, input_hash " \
        "FROM evaluations ORDER BY ALL"


def _journeys(names: list[str]) -> SpanRows:
    """Each journey: a customer and an agent turn in triage, then two in billing."""
    rows = SpanRows()
    for journey in names:
        j = int.from_bytes(journey.encode(), "big") % 10**9  # ids of its own, whatever batch it comes in
        for k, (stage, role, text) in enumerate([
            ("triage", "customer", "My invoice is wrong, I was charged twice."),
            ("triage", "agent", "Sorry about that, let me check your account."),
            ("billing", "agent", "I have refunded the second charge."),
            ("billing", "customer", "Thanks, that fixes it."),
        ]):
            rows.add(trace_id=f"{j + 1:032x}", span_id=f"{j * 100 + k + 1:016x}", parent_span_id=None,
                     name="journey.turn", start_ns=T0 + (j % 1000) * 10**9 + k * 10**8, end_ns=None,
                     attributes={"journey.id": journey, "customer.id": f"c-{journey}", "journey.name": "support",
                                 "journey.stage": stage, "journey.turn.role": role, "journey.turn.text": text})
    return rows


def _score_online(wh: Warehouse, names: list[str]) -> OnlineScoring:
    """Ingest ``names`` through the write door while the loop runs, the evaluators in a worker process; flush;
    return the scorer."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))  # as the server's workers
    scoring = OnlineScoring(wh, scorer=lambda: pool, chunk_journeys=4, share=0.5)
    loop = DeriveLoop(wh, [VisitUpkeep(wh, interval_s=0.0), scoring]).start()
    writer = Writer(wh)
    try:
        for i in range(0, len(names), 5):
            writer.ingest(_journeys(names[i:i + 5])).result(30)
        assert writer.force_flush(30) and loop.flush(60)
    finally:
        loop.stop()
        writer.shutdown()
        pool.shutdown()
    return scoring


def test_online_scoring_writes_what_a_full_run_writes_and_resumes_without_scoring_twice(tmp_path: Path) -> None:
    first = [f"j{i:02d}" for i in range(13)]
    later = [f"k{i:02d}" for i in range(6)]
    db = tmp_path / "online.duckdb"
    with Warehouse(db, clock=lambda: LATER) as wh:
        scoring = _score_online(wh, first)
        online = wh.query(_ROWS)
        assert {r[0] for r in online} == set(first)
        assert scoring.results == len(online) and scoring.seconds > 0
        assert wh.feed.position(scoring.name) == wh.feed.generation()  # recorded once caught up
        assert evaluate_pending(wh, "local").scored == 0  # nothing left for a full run to do
        scored_at = wh.query("SELECT journey_id, stage, visit, evaluator, evaluated_at FROM evaluations ORDER BY ALL")
    copy = tmp_path / "full.duckdb"
    shutil.copyfile(db, copy)
    with Warehouse(copy, clock=lambda: LATER) as full:  # a full run from scratch writes the same rows
        with full.transaction("test: forget the scores") as tx:
            tx.cur.execute("DELETE FROM evaluations")
        assert evaluate_pending(full, "local").scored > 0
        assert full.query(_ROWS) == online
    with Warehouse(db, clock=lambda: LATER) as wh:
        wh.ingest(_journeys(later))  # while no scorer runs
    with Warehouse(db, clock=lambda: LATER) as reopened:
        resumed = OnlineScoring(reopened, chunk_journeys=4)
        assert DeriveLoop(reopened, [VisitUpkeep(reopened, interval_s=0.0), resumed]).flush(60)
        rows = reopened.query(_ROWS)
        assert {r[0] for r in rows} == set(first) | set(later)
        assert resumed.results == sum(r[0] in later for r in rows)  # only what arrived while it was down
        kept = reopened.query("SELECT journey_id, stage, visit, evaluator, evaluated_at FROM evaluations "
                              "WHERE journey_id LIKE 'j%' ORDER BY ALL")
        assert kept == scored_at  # the first journeys' scores were not written again


def test_cpu_share_rests_in_proportion_to_the_cpu_time_taken_not_the_time_waited() -> None:
    pacing = CpuShare(0.2)
    began = time.monotonic()
    with pacing.measure():
        spin = time.thread_time() + 0.05
        while time.thread_time() < spin:
            pass
        time.sleep(0.2)  # waiting (for a lock, a worker, the disk) costs the API nothing: not counted
    assert 0.05 <= pacing.seconds < 0.2
    assert pacing.not_before >= began + pacing.seconds * 4  # rests (1 - 0.2) / 0.2 times what it took
    assert pacing.not_before <= time.monotonic() + pacing.seconds * 4
    with pytest.raises(ValueError):
        CpuShare(0)

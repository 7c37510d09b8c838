"""What keeps the server's memory bounded by its settings rather than by the volume it receives.

The figures are a benchmark (``benchmarks/bench_memory.py``, README "Measured"); these tests check the
mechanisms: journey states held for the API are capped by ``state_journeys`` and pruned once closed and
not asked about (a request for one then reads it again, with the same answer), and the caches are capped.
"""

from __future__ import annotations

import time
from pathlib import Path

from journeyscope.evaluators.cache import MemoryCache
from journeyscope.server.journey_states import JourneyStates
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import SpanRows, Warehouse

HOUR_NS = 3600 * 10**9


def _journeys(wh: Warehouse, starts: dict[str, int]) -> None:
    """Two turns in two stages for each journey, from its start time on."""
    rows = SpanRows()
    for n, (journey, start) in enumerate(starts.items()):
        for turn, stage in enumerate(["triage", "diagnosis"]):
            rows.add(trace_id=f"{n + 1:032x}", span_id=f"{n * 10 + turn + 1:016x}", parent_span_id=None,
                     name="journey.turn", start_ns=start + turn * 10**9, end_ns=start + turn * 10**9 + 10**6,
                     attributes={"journey.id": journey, "customer.id": f"c-{journey}", "journey.name": "support",
                                 "journey.stage": stage, "journey.turn.role": "customer",
                                 "journey.turn.text": f"turn {turn}"})
    wh.ingest(rows)


def test_closed_journeys_nobody_asks_about_are_let_go_and_read_again_with_the_same_answer(tmp_path: Path) -> None:
    now = time.time_ns()
    with Warehouse(tmp_path / "s.duckdb") as wh:
        _journeys(wh, {"j-live": now - 60 * 10**9, "j-idle": now - 48 * HOUR_NS})  # the default timeout is 30 min
        states = JourneyStates(wh, max_journeys=10, warm_journeys=0)  # no derive loop: the test drives it
        before = {j: states.state(j, now) for j in ("j-live", "j-idle")}
        assert len(states) == 2
        assert states.prune(now) == 0  # both were asked about since the last prune
        assert states.prune(now) == 1  # not since: the idle one goes, the live one stays
        assert states.held_state("j-idle", now) is None and states.held_state("j-live", now) is not None
        assert states.state("j-idle", now) == before["j-idle"]  # read from the warehouse again
        assert before["j-idle"]["current_outcome"] == "abandoned" and before["j-live"]["current_outcome"] == "open"
        # Once the live journey's own timeout has passed (and nobody asked), it goes too.
        states.prune(now + 2 * HOUR_NS)
        assert states.prune(now + 2 * HOUR_NS) == 2 and len(states) == 0


def test_journey_states_held_are_capped_by_the_setting(tmp_path: Path) -> None:
    now = time.time_ns()
    journeys = [f"j{i}" for i in range(5)]
    with Warehouse(tmp_path / "s.duckdb") as wh:
        _journeys(wh, {j: now - 60 * 10**9 for j in journeys})
        states = JourneyStates(wh, max_journeys=3, warm_journeys=0)
        answers = {j: states.state(j, now) for j in journeys}
        assert len(states) == 3
        assert [j for j in journeys if states.held_state(j, now) is None] == ["j0", "j1"]  # least recently asked
        assert states.state("j0", now) == answers["j0"]
    assert ServerSettings().state_journeys == 10_000  # the default the README's ceiling counts on


def test_verdict_cache_keeps_the_most_recently_used_entries_up_to_its_size() -> None:
    cache = MemoryCache(max_entries=3)
    for k in "abcd":
        cache.put(k, {"score": k})
        if k == "c":
            assert cache.get("a") == {"score": "a"}  # used: b is now the least recent
    assert len(cache) == 3
    assert cache.get("b") is None and cache.get("a") == {"score": "a"} and cache.get("d") == {"score": "d"}

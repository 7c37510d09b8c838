"""Stage visits as docs/contracts.md defines them: runs of a stage, re-entry, explicit outcomes, map order,
idle-timeout abandonment, spans without a stage; incremental upkeep; the journey map file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from journeyscope.errors import ConfigError
from journeyscope.warehouse import SpanRows, Warehouse, feed, visits
from journeyscope.warehouse.visit_feed import UPKEEP_POSITION, due_journeys
from journeyscope.warehouse.export import export_table
from journeyscope.warehouse.journey_map import JourneyMap, load_journey_map, parse_journey_map

T0 = 1_700_000_000_000_000_000
MIN = 60 * 10**9
MAP = parse_journey_map('[journeys.onb]\nstages = ["sign-up", "verify", "pay"]\nidle_timeout = "30m"\n')


class Journey:
    """Builds one journey's spans, a minute apart unless told otherwise."""

    def __init__(self, journey_id: str = "j1", name: str = "onb") -> None:
        self.journey_id, self.name = journey_id, name
        self.rows = SpanRows()
        self.n = 0

    def span(self, stage: str | None, minute: float, *, turn: bool = True, outcome: str | None = None,
             name: str = "journey.turn", **extra: Any) -> Journey:
        self.n += 1
        attrs: dict[str, Any] = {"journey.id": self.journey_id, "customer.id": "c1", "journey.name": self.name,
                                 "journey.channel": "chat", **extra}
        if stage is not None:
            attrs["journey.stage"] = stage
        if turn:
            attrs.update({"journey.turn.role": "customer", "journey.turn.text": f"t{self.n}"})
        events = [{"name": "journey.stage.outcome", "attributes": {"journey.stage.outcome": outcome}}] if outcome else []
        self.rows.add(trace_id=f"{abs(hash(self.journey_id)) % 10**12 + 1:032x}", span_id=f"{self.n:016x}",
                      parent_span_id=None, name=name, start_ns=T0 + int(minute * MIN), end_ns=None,
                      attributes=attrs, events=events)
        return self


def _visits(warehouse: Warehouse, journey_id: str = "j1") -> list[tuple[str, int, str, int]]:
    return [(v["stage"], v["visit"], v["outcome"], v["turns"]) for v in warehouse.stage_visits(journey_id)]


def _warehouse(minutes_after_start: float, journey_map: JourneyMap = MAP) -> Warehouse:
    return Warehouse(":memory:", journey_map=journey_map, clock=lambda: T0 + int(minutes_after_start * MIN))


def test_runs_reentry_and_map_order_completion() -> None:
    wh = _warehouse(10)
    j = Journey()
    j.span("sign-up", 0).span("sign-up", 1).span("verify", 2).span("sign-up", 3).span("pay", 4)
    wh.ingest(j.rows)
    assert _visits(wh) == [
        ("sign-up", 1, "completed", 2),   # verify is further along the map
        ("verify", 1, "completed", 1),    # pay is further along (going back to sign-up is not)
        ("sign-up", 2, "completed", 1),   # a re-entry, completed by pay
        ("pay", 1, "open", 1),            # last stage, journey still within its idle timeout
    ]


def test_spans_without_stage_neither_start_nor_break_a_visit() -> None:
    wh = _warehouse(10)
    j = Journey()
    j.span("sign-up", 0).span(None, 1, name="llm.call").span(None, 1.5, turn=False).span("sign-up", 2)
    wh.ingest(j.rows)
    assert _visits(wh) == [("sign-up", 1, "open", 2)]
    (visit,) = wh.stage_visits("j1")
    assert visit["spans"] == 2 and visit["position"] == 0


def test_explicit_outcome_wins_on_span_event_and_outcome_span() -> None:
    wh = _warehouse(10)
    j = Journey()
    j.span("sign-up", 0, outcome="failed").span("verify", 1).span("pay", 2)
    j.span("verify", 1.5, turn=False, name="journey.stage.outcome", outcome="escalated")  # outcome span, later batch
    wh.ingest(j.rows)
    assert _visits(wh) == [("sign-up", 1, "failed", 1), ("verify", 1, "escalated", 1), ("pay", 1, "open", 1)]
    (sign_up, *_), = [wh.stage_visits("j1")]
    assert sign_up["outcome_source"] == "explicit"


def test_idle_timeout_abandons_and_gap_abandons() -> None:
    j = Journey()
    # verify, quiet for 45 minutes, verify again: still one run (one visit), and it is recent
    j.span("sign-up", 0).span("verify", 1).span("verify", 46)
    wh = _warehouse(50)
    wh.ingest(j.rows)
    assert _visits(wh) == [("sign-up", 1, "completed", 1), ("verify", 1, "open", 2)]
    # the whole journey idle for longer than 30 minutes: abandoned
    later = _warehouse(46 + 31)
    later.ingest(j.rows)
    assert _visits(later)[-1][2] == "abandoned"
    gap = Journey("j2")
    gap.span("verify", 0).span("sign-up", 40)  # moved back after 40 minutes: the verify visit was abandoned
    wh.ingest(gap.rows)
    assert _visits(wh, "j2") == [("verify", 1, "abandoned", 1), ("sign-up", 1, "open", 1)]


def test_open_visit_turns_abandoned_as_the_clock_moves_without_spans() -> None:
    now = [T0 + 5 * MIN]
    wh = Warehouse(":memory:", journey_map=MAP, clock=lambda: now[0])
    wh.ingest(Journey().span("verify", 0).rows)
    assert _visits(wh) == [("verify", 1, "open", 1)]
    now[0] = T0 + 31 * MIN
    assert _visits(wh) == [("verify", 1, "abandoned", 1)]  # readers apply the clock at once
    assert len(wh.close_idle_visits()) == 1                  # and the writer's sweep stores it
    assert wh.query("SELECT outcome FROM stage_visits") == [("abandoned",)]


def test_without_a_map_order_is_inferred_from_first_entries() -> None:
    wh = _warehouse(10, JourneyMap())
    j = Journey(name="unmapped")
    j.span("b", 0).span("a", 1).span("b", 2).span("c", 3)
    wh.ingest(j.rows)
    # first entries: b, a, c. b -> a (a entered after b: further) completes; a -> b (back) then c completes.
    assert _visits(wh) == [("b", 1, "completed", 1), ("a", 1, "completed", 1), ("b", 2, "completed", 1),
                           ("c", 1, "open", 1)]


def test_upkeep_is_incremental_and_ties_keep_arrival_order() -> None:
    wh = _warehouse(10)
    j = Journey()
    j.span("sign-up", 0).span("verify", 0).span("sign-up", 0)  # same timestamp: arrival order decides
    other = Journey("j-other").span("pay", 0)
    wh.ingest(j.rows)
    wh.ingest(other.rows)
    assert [v[0] for v in _visits(wh)] == ["sign-up", "verify", "sign-up"]
    before = wh.query("SELECT first_seq FROM stage_visits WHERE journey_id = 'j-other'")
    more = Journey()
    more.n = 10
    more.span("pay", 5)
    wh.ingest(more.rows)
    assert _visits(wh) == [("sign-up", 1, "completed", 1), ("verify", 1, "completed", 1),
                           ("sign-up", 2, "completed", 1), ("pay", 1, "open", 1)]
    assert wh.query("SELECT first_seq FROM stage_visits WHERE journey_id = 'j-other'") == before
    assert wh.visits_due() == 0


def test_changed_map_rederives_visits(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    j = Journey()
    j.span("verify", 0).span("sign-up", 1)
    with Warehouse(db, journey_map=JourneyMap(), clock=lambda: T0 + 5 * MIN) as wh:
        wh.ingest(j.rows)
        assert _visits(wh)[0][2] == "completed"  # inferred: sign-up was entered after verify
    with Warehouse(db, journey_map=MAP, clock=lambda: T0 + 5 * MIN) as wh:
        assert _visits(wh)[0][2] == "open"       # the map puts sign-up before verify


def test_export_stage_visits_record(tmp_path: Path) -> None:
    wh = _warehouse(10)
    wh.ingest(Journey().span("sign-up", 0).span("verify", 1).rows)
    out = tmp_path / "visits.jsonl"
    assert export_table(wh, "stage-visits", "jsonl", out) == 2
    import json

    first = json.loads(out.read_text().splitlines()[0])
    assert list(first)[:9] == ["journey_id", "customer_id", "journey_name", "stage", "visit", "started_at",
                               "ended_at", "outcome", "turns"]
    assert first["started_at"].endswith("Z") and first["outcome"] == "completed"
    assert export_table(wh, "stage-visits", "csv", tmp_path / "v.csv") == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[journeys.onb]\nstages = ["a", "b"\n', "line"),
        ('[journeys.onb]\nstages = ["a", "b"]\nidle_timeout = "soon"\n', "line 3"),
        ('[journeys.onb]\nstages = "a"\n', "line 2"),
        ('[journeys.onb]\nstages = ["a", "a"]\n', "line 1"),
    ],
)
def test_malformed_map_names_the_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "journeys.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=where):
        load_journey_map(path)


def test_map_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOURNEYSCOPE_MAP", raising=False)
    assert load_journey_map().journeys == {}
    with pytest.raises(ConfigError, match="does not exist"):
        load_journey_map(tmp_path / "missing.toml")
    (tmp_path / "journeys.toml").write_text('idle_timeout = "2h"\n[journeys.x]\nstages = ["a"]\n')
    loaded = load_journey_map()
    assert loaded.journeys["x"].idle_timeout_s == 7200 and loaded.journeys["x"].stages == ("a",)


def test_batch_repeating_stored_and_own_spans_is_stored_once_and_derived() -> None:
    """A group commit can hold a retried request next to its original and next to new spans: the plain
    insert is refused by the key, the retry with ``OR IGNORE`` stores each span once, and visits follow."""
    wh = _warehouse(10)
    first = Journey()
    first.span("sign-up", 0).span("sign-up", 1)
    assert (wh.ingest(first.rows).accepted, wh.ingest(first.rows).duplicates) == (2, 2)
    later = Journey()
    later.span("sign-up", 0).span("sign-up", 1).span("verify", 2)  # same ids as before for the first two
    doubled = SpanRows()
    for rows in (later.rows, later.rows):
        for name, values in rows.columns.items():
            doubled.columns[name].extend(values)
    result = wh.ingest(doubled)
    assert (result.accepted, result.duplicates) == (1, 5)
    assert wh.query("SELECT count(*) FROM spans")[0][0] == 3
    assert _visits(wh) == [("sign-up", 1, "completed", 2), ("verify", 1, "open", 1)]


def test_upkeep_reads_from_the_earliest_pending_journeys_first_span_and_misses_nothing() -> None:
    """Upkeep reads spans only from the first staged span of the earliest journey it re-derives on. A
    journey that comes back after many others, and one whose only early span is a stand-alone outcome (it
    has no visit yet, only its first span recorded), come out exactly as deriving everything at once."""
    back, stated = Journey("j-back"), Journey("j-stated")
    back.span("sign-up", 0)
    stated.span("verify", 0.5, turn=False, name="journey.stage.outcome", outcome="failed")
    others = [Journey(f"j-other-{i}").span("sign-up", 1).span("verify", 2) for i in range(3)]
    batches = [back.rows, stated.rows] + [o.rows for o in others]
    wh = _warehouse(10)
    for rows in batches:
        wh.ingest(rows)
    assert wh.stage_visits("j-stated") == []
    first = dict(wh.query("SELECT journey_id, first_seq FROM journey_first_seq"))
    assert first["j-back"] < first["j-stated"] < first["j-other-0"]

    def due_from(due: dict[str, int | None] | None = None) -> int:
        """Where the next upkeep would start reading spans (from the journeys the feed lists since its position)."""
        if due is None:
            batch = wh.feed.read(wh.feed.position(UPKEEP_POSITION) or 0, frozenset({feed.SPANS}))
            due = due_journeys(batch.changes, None)
        cur = wh.cursor()
        try:
            cur.register("js_due", pa.table([list(due), list(due.values())], schema=visits.DUE_SCHEMA))
            return visits.due_from(cur)
        finally:
            cur.close()

    late = Journey("j-stated")
    late.n = 10
    late.span("verify", 0.2)  # starts before the outcome span stored earlier: that outcome is this visit's
    wh.ingest(late.rows, update_visits=False)
    assert due_from() == first["j-stated"]  # not from j-stated's new span, nor from the start
    again = Journey("j-back")
    again.n = 10
    again.span("verify", 3)
    fresh = Journey("j-new").span("pay", 3)
    wh.ingest(again.rows, update_visits=False)
    wh.ingest(fresh.rows, update_visits=False)
    assert due_from() == first["j-back"]
    wh.update_visits()
    assert _visits(wh, "j-stated") == [("verify", 1, "failed", 1)]

    once = _warehouse(10)
    everything = SpanRows()
    for rows in [*batches, late.rows, again.rows, fresh.rows]:
        everything.extend(rows)
    once.ingest(everything)
    assert wh.stage_visits() == once.stage_visits()

    assert wh.visits_due() == 0
    # A journey with no recorded first span, listed by a change that stored no staged span, is read from the start.
    wh.query("DELETE FROM journey_first_seq WHERE journey_id = 'j-new'")
    assert due_from({"j-new": None}) == 0
    assert due_from({"j-new": 7}) == 7


def test_channel_path_is_each_journeys_channel_sequence_and_an_older_file_is_upgraded(tmp_path: Path) -> None:
    """Every visit carries its journey's channel sequence (repeats in a row collapsed); schema 7 files gain it."""
    import duckdb

    path = tmp_path / "v7.duckdb"
    j = Journey()
    email = {"journey.channel": "email"}
    j.span("sign-up", 0).span("verify", 1, **email).span("verify", 2, **email).span("pay", 3)
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        wh.ingest(j.rows)
        assert wh.query("SELECT list(channel_path ORDER BY position) FROM stage_visits")[0][0] == [
            "chat→email→chat"
        ] * 3
    con = duckdb.connect(str(path))  # as journeyscope 7 left it: no channel paths (the index keeps the column)
    con.execute("UPDATE stage_visits SET channel_path = NULL")
    con.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    con.close()
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        assert wh.query("SELECT DISTINCT channel_path FROM stage_visits") == [("chat→email→chat",)]


def test_upkeep_in_parts_derives_what_one_upkeep_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog worked off a few journeys per transaction, and a few generations of the feed per read, comes out
    exactly as in one (and nothing is left due)."""
    from journeyscope.warehouse import visit_feed

    journeys = [Journey(f"j{i}").span("sign-up", i).span("verify", i + 1).span("sign-up", i + 2) for i in range(7)]
    parted = Warehouse(":memory:", journey_map=MAP, clock=lambda: T0 + 20 * MIN, upkeep_journeys=2)
    whole = _warehouse(20)
    for j in journeys:
        parted.ingest(j.rows, update_visits=False)
        whole.ingest(j.rows, update_visits=False)
    monkeypatch.setattr(visit_feed, "UPKEEP_GENERATIONS", 3)
    assert sorted(parted.update_visits()) == [f"j{i}" for i in range(7)]
    monkeypatch.undo()
    whole.update_visits()
    assert parted.visits_due() == 0 and whole.visits_due() == 0
    assert parted.stage_visits() == whole.stage_visits() and len(whole.stage_visits()) == 21



@pytest.mark.parametrize("order", [("failed", "escalated"), ("escalated", "failed")])
def test_outcomes_tied_in_time_go_by_arrival_in_any_upkeep(order: tuple[str, str]) -> None:
    """Two outcome events at the same instant: the later one to arrive decides, whether the upkeep derives the
    journey with another or the whole warehouse is derived again (the aggregate used to take whichever row it
    met first)."""
    wh = _warehouse(10)
    first, last = order
    j = Journey()
    j.span("sign-up", 0).span("sign-up", 1, outcome=first)
    wh.ingest(j.rows)
    j.rows = SpanRows()
    j.span("sign-up", 1, outcome=last, turn=False)
    j.rows.extend(Journey("j0").span("verify", 0).span("pay", 3).rows)
    wh.ingest(j.rows)
    assert [v["outcome"] for v in wh.stage_visits("j1")] == [last]
    cur = wh.cursor()
    cur.execute("BEGIN")
    visits.rebuild_visits(cur, wh.journey_map, T0 + 10 * MIN)
    cur.execute("COMMIT")
    assert [v["outcome"] for v in wh.stage_visits("j1")] == [last]


def test_a_file_with_a_visit_backlog_table_is_upgraded_and_its_journeys_derived(tmp_path: Path) -> None:
    """Schema 17 kept upkeep's backlog in a table (``visits_pending``); upkeep now follows the change feed. A file
    left with journeys in that backlog opens with every visit derived, the table gone and nothing due."""
    import duckdb

    path = tmp_path / "v17.duckdb"
    j, other = Journey(), Journey("j2")
    j.span("sign-up", 0).span("verify", 1)
    other.span("sign-up", 0)
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        wh.ingest(j.rows, update_visits=False)
        wh.ingest(other.rows, update_visits=False)
    con = duckdb.connect(str(path))  # as journeyscope 17 left it: a backlog table, changes without first_seq
    con.execute("CREATE TABLE visits_pending (journey_id VARCHAR NOT NULL, first_seq BIGINT)")
    con.execute("INSERT INTO visits_pending SELECT journey_id, min(seq) FROM spans GROUP BY 1")
    con.execute("ALTER TABLE changes DROP COLUMN first_seq")
    con.execute("DELETE FROM feed_positions")
    con.execute("UPDATE meta SET value = '17' WHERE key = 'schema_version'")
    con.close()
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        assert _visits(wh) == [("sign-up", 1, "completed", 1), ("verify", 1, "open", 1)]
        assert _visits(wh, "j2") == [("sign-up", 1, "open", 1)]
        assert wh.visits_due() == 0
        assert wh.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'visits_pending'") == [(0,)]
        more = Journey()
        more.n = 5
        more.span("pay", 2)
        wh.ingest(more.rows)  # upkeep goes on from the upgraded file's feed
        assert _visits(wh)[-1] == ("pay", 1, "open", 1)
        newest = "SELECT first_seq IS NOT NULL FROM changes WHERE kind = 'spans' ORDER BY generation DESC LIMIT 1"
        assert wh.query(newest) == [(True,)]


def test_upkeep_behind_what_the_feed_keeps_derives_every_journey(tmp_path: Path) -> None:
    """The change feed keeps its last generations only; an upkeep whose position is older than what it keeps (a
    worker stopped for long) cannot know which journeys changed, so it derives every one, and nothing is left due."""
    import duckdb

    path = tmp_path / "behind.duckdb"
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        wh.ingest(Journey("j1").span("sign-up", 0).rows)
        wh.ingest(Journey("j2").span("sign-up", 0).span("verify", 1).rows, update_visits=False)
        wh.ingest(Journey("j3").span("pay", 0).rows, update_visits=False)
        assert wh.visits_due() == 2
        head = wh.feed.generation()
    con = duckdb.connect(str(path))  # the feed pruned past upkeep's position (j2's change gone), as after many commits
    con.execute("DELETE FROM changes WHERE generation < ?", [head])
    con.execute("INSERT OR REPLACE INTO meta VALUES ('feed_pruned_through', ?)", [str(head - 1)])
    con.close()
    with Warehouse(path, journey_map=MAP, clock=lambda: T0 + 10 * MIN) as wh:
        assert {v["journey_id"] for v in wh.stage_visits()} == {"j1", "j2", "j3"}  # derived at open, j2 too
        assert _visits(wh, "j2") == [("sign-up", 1, "completed", 1), ("verify", 1, "open", 1)]
        assert wh.visits_due() == 0

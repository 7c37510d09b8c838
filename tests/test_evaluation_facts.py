"""The journey type and cohort every evaluation carries, so scores are filtered without joining their visits.

What must hold, whatever happens to the warehouse: each evaluation's ``journey_name`` and ``cohort`` are
those of the visit with its key (NULL without one), and the scores read through them (the funnel's
evaluator summaries, score distributions, failing visits) equal what joining every score to its visit
gives. Checked after scoring, after visits are derived again as spans arrive (a journey's type or cohort
changing), after erasure and retention, for a visit erased while it was being scored, for a row without a
visit, after an upgrade from schema 8, and after every visit is derived again in parts. Real files, the
real evaluators and write path. (Exactness against a plain-Python reference: tests/test_analytics.py.)
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from journeyscope.warehouse import SpanRows, Warehouse, store, visits
from journeyscope.warehouse.erasure import delete_journeys, forget_customer
from journeyscope.warehouse.evaluation_reads import failing_visits, score_distribution
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.journey_map import parse_journey_map
from journeyscope.warehouse.retention import apply_retention
from journeyscope.warehouse.schema import SCHEMA_VERSION

MIN = 60 * 10**9
DAY = 24 * 60 * MIN
T0 = 1_735_689_600 * 10**9  # 2025-01-01
NOW = T0 + 40 * DAY  # every journey idle long since: visits closed, so scored
MAP = parse_journey_map(
    '[journeys.onboarding]\nstages = ["sign-up", "payment", "install"]\n'
    '[journeys.support]\nstages = ["contact", "diagnose", "resolve"]\n'
)
#: A time filter that keeps every visit: the same rows as without it, read through the join of scores and visits.
EVER = datetime(2000, 1, 1, tzinfo=timezone.utc)

_MISMATCHED = """
SELECT count(*) FROM evaluations e LEFT JOIN stage_visits v USING (journey_id, stage, visit)
WHERE e.journey_name IS DISTINCT FROM v.journey_name OR e.cohort IS DISTINCT FROM v.cohort
"""


class Spans:
    """Journeys' spans: customer and agent turns, some replies slow, some customers repeating themselves."""

    def __init__(self, first_id: int = 0) -> None:
        self.rows = SpanRows()
        self.n = first_id  # span ids from here on: another batch's spans must not reuse them

    def turn(self, journey_id: str, stage: str, at_ns: int, role: str, text: str, **attrs: Any) -> None:
        self.n += 1
        attributes = {"journey.id": journey_id, "journey.stage": stage, "journey.turn.role": role,
                      "journey.turn.text": text, "journey.channel": "chat", **attrs}
        self.rows.add(trace_id=f"{self.n:032x}", span_id=f"{self.n:016x}", parent_span_id=None, name="journey.turn",
                      start_ns=at_ns, end_ns=at_ns, attributes=attributes, events=[])

    def journey(self, journey_id: str, customer: str, name: str, cohort: str | None, start_ns: int,
                stages: list[str], *, slow: bool = False, repeats: bool = False) -> Spans:
        at = start_ns
        extra = {"customer.id": customer, "journey.name": name, **({"journey.cohort": cohort} if cohort else {})}
        for stage in stages:
            ask = "My order 4411 never arrived" if repeats else f"Help me with {stage} please"
            for _ in range(2 if repeats else 1):
                self.turn(journey_id, stage, at, "customer", ask, **extra)
                at += (9 if slow else 1) * MIN
                self.turn(journey_id, stage, at, "agent", f"Sure, let us sort out {stage} now.", **extra)
                at += MIN
        return self


def _population(start_ns: int = T0, prefix: str = "j", first_id: int = 0) -> Spans:
    spans = Spans(first_id)
    for i in range(24):
        name = "onboarding" if i % 2 else "support"
        stages = MAP.journeys[name].stages[: 1 + i % 3]
        if i % 5 == 0:
            stages = [*stages, stages[0]]  # a re-entry
        spans.journey(f"{prefix}{i}", f"c{i % 6}", name, ["trial", "premium", None][i % 3], start_ns + i * MIN,
                      list(stages), slow=i % 4 == 0, repeats=i % 3 == 0)
    return spans


def _writer(path: Path | str = ":memory:") -> Warehouse:
    return Warehouse(path, journey_map=MAP, clock=lambda: NOW)


def _scores_of(wh: Warehouse, filters: Filters) -> dict[str, Any]:
    """Everything the pages read from scores under ``filters``: summaries, distributions, failing visits."""
    report = funnel(wh, filters)
    summaries = {(j.journey, s.stage, e.evaluator): (e.fail_rate.n, e.fail_rate.k, e.unscored,
                                                     None if e.mean_score is None else round(e.mean_score, 9))
                 for j in report.journeys for s in j.stages for e in s.evaluators}
    stages = sorted({s for _, s, _ in summaries})
    distributions = {}
    for stage in stages:
        for e in score_distribution(wh, filters, stage=stage)["evaluators"]:
            distributions[(stage, e["evaluator"])] = (e["counts"], e["unscored"], e["failed"])
    failing = [(r["journey_id"], r["stage"], r["visit"], r["evaluator"], r["score"])
               for stage in stages for r in failing_visits(wh, filters, stage=stage, limit=1000)]
    return {"summaries": summaries, "distributions": distributions, "failing": failing}


def check(wh: Warehouse, cohorts: tuple[str, ...] = ("trial", "premium")) -> dict[str, Any]:
    """The invariant, and every whole-journey filter read without the join equal to the same read with it."""
    assert wh.query(_MISMATCHED) == [(0,)]
    seen = {}
    for journey in (None, "onboarding", "support"):
        for cohort in (None, *cohorts):
            fast = Filters(journey=journey, cohort=cohort)
            assert fast.keeps_whole_journeys
            joined = Filters(journey=journey, cohort=cohort, since=EVER)
            seen[(journey, cohort)] = got = _scores_of(wh, fast)
            assert got == _scores_of(wh, joined), (journey, cohort)
    return seen


def _evaluated(path: Path | str = ":memory:") -> Warehouse:
    wh = _writer(path)
    wh.ingest(_population().rows)
    assert evaluate_pending(wh).results > 0
    return wh


def test_scores_read_without_the_join_equal_the_joined_read() -> None:
    wh = _evaluated()
    seen = check(wh)
    everything = seen[(None, None)]
    assert any(failed for _, failed, _, _ in everything["summaries"].values())  # something to rank and count
    assert len(everything["failing"]) > 10
    # Filters narrow: the trial cohort's scored visits are a strict part of all of them.
    scored = sum(n for n, _, _, _ in everything["summaries"].values())
    assert 0 < sum(n for n, _, _, _ in seen[(None, "trial")]["summaries"].values()) < scored


def test_scores_follow_a_journey_whose_type_or_cohort_changes_as_spans_arrive() -> None:
    wh = _evaluated()
    check(wh)
    j2_rows = wh.query("SELECT count(*) FROM evaluations WHERE journey_id = 'j2' AND score IS NOT NULL "
                       "AND error IS NULL")[0][0]
    assert wh.query("SELECT DISTINCT journey_name, cohort FROM evaluations WHERE journey_id = 'j2'") == [
        ("support", None)]
    late = Spans(first_id=10**6)
    # An earlier span gives j2 (no cohort so far) a cohort; one gives j4 another journey type; j7 moves on
    # to a new stage (its keys grow, its type and cohort stay).
    late.turn("j2", "contact", T0 - MIN, "customer", "hello", **{"journey.cohort": "late"})
    late.turn("j4", "contact", T0 - MIN, "customer", "hello", **{"journey.name": "onboarding"})
    late.turn("j7", "install", T0 + 2 * DAY, "customer", "installed it")
    wh.ingest(late.rows)
    assert wh.query("SELECT DISTINCT journey_name, cohort FROM evaluations WHERE journey_id = 'j2'") == [
        ("support", "late")]
    assert wh.query("SELECT DISTINCT journey_name FROM evaluations WHERE journey_id = 'j4'") == [("onboarding",)]
    seen = check(wh, ("trial", "premium", "late"))
    assert sum(n for n, _, _, _ in seen[(None, "late")]["summaries"].values()) == j2_rows
    evaluate_pending(wh)  # the changed journeys are scored again, through the write path
    check(wh, ("trial", "premium", "late"))


def test_erased_and_expired_journeys_take_their_scores_along(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with _evaluated(path) as wh:
        wh.ingest(_population(T0 + 30 * DAY, prefix="new", first_id=10**6).rows)  # recent journeys, kept by retention
        evaluate_pending(wh)
        check(wh)
    forget_customer(path, "c1")
    with _writer(path) as wh:
        assert wh.query("SELECT count(*) FROM evaluations WHERE journey_id IN ('j1', 'j7', 'new1')") == [(0,)]
        check(wh)
        result = apply_retention(wh, 20 * 86_400, now_ns=NOW)
        assert result.journeys == 24 - 4  # the old journeys but c1's four, which are gone already
        assert wh.query("SELECT count(*) FROM evaluations WHERE NOT starts_with(journey_id, 'new')") == [(0,)]
        assert wh.query("SELECT count(*) FROM evaluations")[0][0] > 0
        check(wh)


class _ErasingScorer(Executor):
    """Scores in place, but first erases ``journey`` as a concurrent ``forget`` would, mid-run."""

    def __init__(self, wh: Warehouse, journey: str) -> None:
        self.wh, self.journey = wh, journey

    def map(self, fn: Any, *iterables: Any, timeout: Any = None, chunksize: int = 1) -> Any:
        with self.wh.writing() as cur:
            delete_journeys(cur, [self.journey])
        return map(fn, *iterables)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.wh.writing() as cur:
            delete_journeys(cur, [self.journey])
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_a_journey_erased_while_it_is_scored_gets_no_scores() -> None:
    wh = _writer()
    wh.ingest(_population().rows)
    evaluate_pending(wh, scorer=_ErasingScorer(wh, "j3"))
    assert wh.query("SELECT count(*) FROM evaluations WHERE journey_id = 'j3'") == [(0,)]
    assert wh.query("SELECT count(DISTINCT journey_id) FROM evaluations")[0][0] == 23
    check(wh)


def test_a_score_without_its_visit_counts_nowhere() -> None:
    wh = _evaluated()
    before = _scores_of(wh, Filters())
    with wh.writing() as cur:  # as another tool might write it: no visit j0/payment 7, no journey facts
        cur.execute("INSERT INTO evaluations (journey_id, stage, visit, evaluator, version, engine, score, passed, "
                    "input_hash, evaluated_at) VALUES ('j0', 'payment', 7, 'friction_latency', '1', 'local', 0.0, "
                    "false, 'x', now()::TIMESTAMP)")
    assert _scores_of(wh, Filters()) == before
    check(wh)


def test_a_schema_8_file_is_upgraded_with_its_scores_filled_and_says_so_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    scored = tmp_path / "scored.duckdb"
    _evaluated(scored).close()
    old = tmp_path / "v8.duckdb"
    old.write_bytes(scored.read_bytes())
    with duckdb.connect(str(old)) as con:  # as journeyscope left it at schema 8: no journey facts on scores
        ddl = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'evaluations'").fetchone()[0]
        assert ", journey_name VARCHAR, cohort VARCHAR," in ddl
        con.execute("CREATE TABLE v8_rows AS SELECT * EXCLUDE (journey_name, cohort, threshold_version) FROM evaluations")
        con.execute("DROP INDEX evaluations_journey")
        con.execute("DROP TABLE evaluations")
        con.execute(ddl.replace(", journey_name VARCHAR, cohort VARCHAR,", ",").replace(" threshold_version BIGINT,", ""))
        con.execute("INSERT INTO evaluations SELECT * FROM v8_rows")
        con.execute("DROP TABLE v8_rows")
        con.execute("CREATE INDEX evaluations_journey ON evaluations (journey_id)")
        con.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    capfd.readouterr()
    monkeypatch.setattr(store, "LARGE_VISITS", 1)  # report even this small file's upgrade
    with _writer(old) as wh:
        assert wh.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        check(wh)
        upgraded = wh.query("SELECT * FROM evaluations ORDER BY ALL")
    with Warehouse(scored, read_only=True, journey_map=MAP) as wh:
        assert upgraded == wh.query("SELECT * FROM evaluations ORDER BY ALL")
    out, err = capfd.readouterr()
    assert out == ""
    assert "upgrading" in err and f"from schema 8 to {SCHEMA_VERSION}" in err and "done in" in err


def test_every_visit_derived_again_in_parts_is_the_same_and_reports_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "w.duckdb"
    with _evaluated(path) as wh:
        derived = wh.query("SELECT * FROM stage_visits ORDER BY journey_id, position")
        # As an older journeyscope could have left them: facts that no longer match their visits.
        with wh.writing() as cur:
            cur.execute("UPDATE evaluations SET cohort = 'stale' WHERE journey_id = 'j5'")
    monkeypatch.setattr(visits, "REBUILD_PART_JOURNEYS", 5)  # 24 journeys: five parts
    monkeypatch.setattr(store, "LARGE_VISITS", 1)
    parts: list[tuple[int, int]] = []
    rebuild = visits.rebuild_visits

    def recorded(cur: Any, journey_map: Any, now_ns: int, progress: Any = None) -> None:
        def report(done: int, total: int) -> None:
            parts.append((done, total))
            progress(done, total)

        rebuild(cur, journey_map, now_ns, report)

    monkeypatch.setattr(visits, "rebuild_visits", recorded)
    capfd.readouterr()
    with Warehouse(path, journey_map=parse_journey_map(MAP_TEXT_REORDERED), clock=lambda: NOW) as wh:
        assert parts == [(i, 5) for i in range(6)]  # opening with another map derived every visit again
        check(wh)
    with Warehouse(path, journey_map=MAP, clock=lambda: NOW) as wh:  # and back: what one pass derived
        assert wh.query("SELECT * FROM stage_visits ORDER BY journey_id, position") == derived
        check(wh)
    out, err = capfd.readouterr()
    assert out == ""
    assert err.count("deriving the stage visits") == 4  # a start and an end line, twice


#: The same journeys with the support stages in another order (a new map: visits are derived again).
MAP_TEXT_REORDERED = (
    '[journeys.onboarding]\nstages = ["sign-up", "payment", "install"]\n'
    '[journeys.support]\nstages = ["contact", "resolve", "diagnose"]\n'
)

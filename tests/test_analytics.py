"""Funnels, re-entry, flows and comparisons: SQL results against a plain-Python reference, exactly."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from datetime import datetime, timedelta, timezone

import pytest

import analytics_reference as ref
from journeyscope.errors import ConfigError
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.compare import compare
from journeyscope.warehouse.evaluation_reads import failing_visits, score_distribution
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.flows import (
    RETENTION,
    journey_outcomes,
    reentry_ranking,
    retention_between_stages,
    transitions,
)
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.importer import import_jsonl
from journeyscope.warehouse.journey_map import parse_journey_map
from journeyscope.warehouse.stats import difference, rate, wilson

MAP_TOML = """
[journeys.alpha]
stages = ["a", "b", "c", "d"]
idle_timeout = "30m"
"""
MAPS = {"alpha": ["a", "b", "c", "d"]}
CHANNELS = ["chat", "email", "voice"]


def generate(n: int, seed: int) -> list[dict]:
    """Journeys with known drop-offs, backtracks (re-entries), stray stages and explicit outcomes."""
    rnd = random.Random(seed)
    journeys = []
    start = datetime(2025, 3, 1, tzinfo=timezone.utc)
    for i in range(n):
        jtype = "alpha" if i % 3 else "beta"
        stages = MAPS["alpha"] if jtype == "alpha" else ["x", "y", "z"]
        t = start + timedelta(hours=rnd.randrange(24 * 60))
        turns = []
        k = 0
        path = []
        while k < len(stages):
            path.append(stages[k])
            if rnd.random() < 0.15:
                break  # drop-off
            if k > 0 and rnd.random() < 0.1:
                path.append(stages[k - 1])  # backtrack: a re-entry of the previous stage
                path.append(stages[k])  # and back: a re-entry of this one
            if jtype == "alpha" and rnd.random() < 0.05:
                path.append("stray")  # a stage the map does not know
            k += 1
        for stage in path:
            channel = rnd.choice(CHANNELS)
            for role in ("customer", "agent")[: rnd.randint(1, 2)]:
                t += timedelta(seconds=rnd.randint(1, 400))
                turns.append({"role": role, "text": f"{role} in {stage}", "ts": t.isoformat(), "stage": stage, "channel": channel})
            if rnd.random() < 0.1:
                outcome = rnd.choice(["completed", "failed", "escalated"])
                turns.append({"event": "outcome", "outcome": outcome, "stage": stage, "ts": t.isoformat()})
        journeys.append(
            {"journey_id": f"g-{seed}-{i}", "customer_id": f"c-{i % 50}", "journey": jtype,
             "cohort": rnd.choice(["A", "B"]), "turns": turns}
        )
    return journeys


def _imported(tmp, name):
    """600 generated journeys imported into a new warehouse ``name`` under ``tmp``."""
    journeys = generate(600, seed=21)
    path = tmp / "gen.jsonl"
    path.write_text("\n".join(json.dumps(j) for j in journeys))
    wh = Warehouse(tmp / name, journey_map=parse_journey_map(MAP_TOML))
    summary = import_jsonl(wh, path)
    assert summary.journeys == 600 and not summary.skipped
    return wh, journeys


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    wh, journeys = _imported(tmp_path_factory.mktemp("analytics"), "gen.duckdb")
    yield wh, journeys
    wh.close()


def assert_matches(report, expected):
    assert {j.journey for j in report.journeys} == set(expected)
    for jf in report.journeys:
        exp = expected[jf.journey]
        assert jf.total == exp["total"]
        assert jf.order == exp["order"]
        assert [s.stage for s in jf.stages] == list(exp["stages"]), jf.journey
        for s in jf.stages:
            e = exp["stages"][s.stage]
            got = s.as_dict()
            for key in ("entered", "completed", "dropped", "reentered", "visits"):
                assert got[key] == e[key], (jf.journey, s.stage, key)
            for key in ("completion_rate", "reentry_rate", "conversion_from_previous"):
                assert got[key] == pytest.approx(e[key]), (jf.journey, s.stage, key)
            assert s.median_seconds == pytest.approx(e["median"]), (jf.journey, s.stage)
            assert s.p90_seconds == pytest.approx(e["p90"]), (jf.journey, s.stage)


def test_funnel_matches_the_reference_exactly(generated):
    wh, journeys = generated
    report = funnel(wh)
    assert_matches(report, ref.funnel(journeys, MAPS))
    alpha = report.journey("alpha")
    assert alpha.unmapped_stages == ("stray",)
    assert not alpha.stage("stray").in_map
    assert any("stray" in w for w in report.warnings)
    assert report.journey("beta").order == "inferred"


@pytest.mark.parametrize("cohort, channel", [("A", None), (None, "email"), ("B", "voice")])
def test_filtered_funnels_match_the_reference(generated, cohort, channel):
    wh, journeys = generated
    report = funnel(wh, Filters(cohort=cohort, channel=channel))
    assert_matches(report, ref.funnel(journeys, MAPS, cohort=cohort, channel=channel))


def test_time_window_keeps_only_visits_started_inside(generated):
    wh, journeys = generated
    since = datetime(2025, 4, 1, tzinfo=timezone.utc)
    report = funnel(wh, Filters(journey="alpha", since=since))
    inside = sum(
        1 for j in journeys if j["journey"] == "alpha"
        and any(v["start"] >= since.timestamp() for v in ref.visits_of(j, MAPS["alpha"]))
    )
    assert report.journey("alpha").total == inside


@pytest.mark.parametrize("channel", [None, "chat"])
def test_time_window_funnels_match_the_reference(generated, channel):
    """A window keeps some of a journey's visits: the per-journey path, re-entries inside the window included."""
    wh, journeys = generated
    since = datetime(2025, 4, 1, tzinfo=timezone.utc)
    report = funnel(wh, Filters(channel=channel, since=since))
    assert_matches(report, ref.funnel(journeys, MAPS, channel=channel, since=since.timestamp()))


def test_unknown_journey_or_cohort_is_an_empty_result_that_says_so(generated):
    wh, _ = generated
    for filters in (Filters(journey="nope"), Filters(cohort="Z")):
        report = funnel(wh, filters)
        assert report.journeys == ()
        assert report.note and "no stage visits match" in report.note
        assert report.as_dict()["journeys"] == []


def test_reentry_ranking_orders_by_rate(generated):
    wh, journeys = generated
    ranking = reentry_ranking(funnel(wh), min_entered=20)
    rates = [r["reentry_rate"] for r in ranking]
    assert rates == sorted(rates, reverse=True)
    expected = ref.funnel(journeys, MAPS)
    top = ranking[0]
    assert top["reentered"] == expected[top["journey"]]["stages"][top["stage"]]["reentered"]


@pytest.mark.parametrize("channel", [None, "email"])
def test_transitions_count_every_step_and_mark_backtracks(generated, channel):
    """Links count every step; the ends are the funnel's own figures (one definition per number)."""
    wh, journeys = generated
    edges = {(t.journey, t.source, t.target): t for t in transitions(wh, Filters(channel=channel))}
    counts: dict = {}
    for j in journeys:
        vs = ref.visits_of(j, MAPS.get(j["journey"]))
        if channel is not None and not any(channel in v["channels"] for v in vs):
            continue  # a channel filter keeps the journeys that used it, with all their steps
        for a, b in zip(vs, vs[1:]):
            key = (j["journey"], a["stage"], b["stage"])
            counts[key] = counts.get(key, 0) + 1
    for jtype, f in ref.funnel(journeys, MAPS, channel=channel).items():
        in_map = [s for s in f["stages"] if jtype not in MAPS or s in MAPS[jtype]]
        for stage, s in f["stages"].items():
            if s["dropped"]:
                counts[(jtype, stage, "(exit)")] = s["dropped"]
            if stage == in_map[-1] and s["completed"]:
                counts[(jtype, stage, "(completed)")] = s["completed"]
    assert {k: t.journeys for k, t in edges.items()} == counts
    assert edges[("alpha", "b", "a")].backtrack and not edges[("alpha", "a", "b")].backtrack


def test_journey_completion_by_cohort_and_channel_mix(generated):
    wh, journeys = generated
    outcomes = journey_outcomes(wh)
    done: dict = {}
    for j in journeys:
        order = MAPS.get(j["journey"]) or ["x", "y", "z"]
        vs = ref.visits_of(j, MAPS.get(j["journey"]))
        completed = any(v["stage"] == order[-1] and v["outcome"] == "completed" for v in vs)
        for key in (j["journey"], (j["journey"], j["cohort"])):
            k, n = done.get(key, (0, 0))
            done[key] = (k + completed, n + 1)
    for jtype in ("alpha", "beta"):
        assert (outcomes.overall[jtype].k, outcomes.overall[jtype].n) == done[jtype]
        for cohort in ("A", "B"):
            r = outcomes.by_cohort[(jtype, cohort)]
            assert (r.k, r.n) == done[(jtype, cohort)]
    fast = journey_outcomes(wh, channel_mix=False)  # no grouping by journey: must count the same
    assert (fast.overall, fast.by_cohort, fast.channel_mix) == (outcomes.overall, outcomes.by_cohort, [])
    per_type = {}
    for lift in outcomes.channel_mix:
        per_type[lift.journey] = per_type.get(lift.journey, 0) + lift.completion.n
        assert lift.lift == pytest.approx(lift.completion.value / lift.overall.value)
    assert per_type == {"alpha": done["alpha"][1], "beta": done["beta"][1]}


@pytest.mark.parametrize(
    "filters",
    [Filters(), Filters(cohort="A"), Filters(channel="email"), Filters(since=datetime(2025, 4, 1, tzinfo=timezone.utc))],
    ids=["all", "cohort", "channel", "since"],
)
def test_journey_completion_and_channel_mix_match_the_reference(generated, filters):
    """Whole journeys, by cohort and by channel sequence (stored per visit): exact counts, every filter path."""
    wh, journeys = generated
    since = filters.since.timestamp() if filters.since else None
    expected = ref.journey_completion(journeys, MAPS, cohort=filters.cohort, channel=filters.channel, since=since)
    outcomes = journey_outcomes(wh, filters)
    got: dict = {j: (r.k, r.n) for j, r in outcomes.overall.items()}
    got.update({key: (r.k, r.n) for key, r in outcomes.by_cohort.items()})
    got.update({(m.journey, m.channels): (m.completion.k, m.completion.n) for m in outcomes.channel_mix})
    assert got == expected
    without_mix = journey_outcomes(wh, filters, channel_mix=False)
    assert (without_mix.overall, without_mix.by_cohort) == (outcomes.overall, outcomes.by_cohort)


@pytest.mark.parametrize("filters", [Filters(), Filters(cohort="B"), Filters(channel="voice")], ids=["all", "cohort", "channel"])
def test_retention_between_stages_matches_the_reference(generated, filters):
    """Context-retention scores by the hand-off into each visit (previous stage → stage), every filter path."""
    wh, journeys = generated
    rows, expected = [], {}
    for i, j in enumerate(journeys):
        vs = ref.visits_of(j, MAPS.get(j["journey"]))
        keep = (filters.cohort is None or j["cohort"] == filters.cohort) and (
            filters.channel is None or any(filters.channel in v["channels"] for v in vs)
        )
        for before, v in itertools.pairwise(vs):
            score = ((i * 7 + v["position"] * 3) % 10) / 10
            rows.append((j["journey_id"], v["stage"], v["visit"], RETENTION, score, score >= 0.3))
            if keep:
                scores = expected.setdefault((j["journey"], before["stage"], v["stage"]), [])
                scores.append(score)
    with wh.writing() as cur:
        cur.executemany(
            "INSERT INTO evaluations (journey_id, stage, visit, evaluator, version, engine, score, passed, "
            "input_hash, evaluated_at) VALUES (?, ?, ?, ?, '1', 'local', ?, ?, 'x', now()::TIMESTAMP)",
            rows,
        )
    try:
        handoffs = retention_between_stages(wh, filters)
    finally:
        with wh.writing() as cur:
            cur.execute("DELETE FROM evaluations")
    got = {(h.journey, h.source, h.target): h for h in handoffs}
    assert set(got) == set(expected)
    # Worst first within a journey type, ties by stage pair: the same order on every call.
    order = [(h.journey, h.mean_score, h.source, h.target) for h in handoffs]
    assert order == sorted(order)
    for key, scores in expected.items():
        assert got[key].mean_score == pytest.approx(sum(scores) / len(scores)), key
        assert (got[key].fail_rate.k, got[key].fail_rate.n) == (sum(s < 0.3 for s in scores), len(scores)), key


# -- evaluator results: the funnel's summaries, distributions and failing visits ----------------------------
# Scored by the real local evaluators through the real write path; the reference finds each score's visit
# by its own numbering. Journey type and cohort filters read the facts each evaluation carries (no join);
# channel and time filters join the visits: both must give the reference's numbers.
EVAL_FILTERS = [
    Filters(),
    Filters(cohort="A"),
    Filters(journey="alpha", cohort="B"),
    Filters(channel="email"),
    Filters(journey="beta", since=datetime(2025, 4, 1, tzinfo=timezone.utc)),
]
EVAL_IDS = ["all", "cohort", "journey-cohort", "channel", "journey-since"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    wh, journeys = _imported(tmp_path_factory.mktemp("evaluated"), "evaluated.duckdb")
    assert evaluate_pending(wh).results > 0
    scores = {(j, s, v, e): (score, passed, error) for j, s, v, e, score, passed, error in wh.query(
        "SELECT journey_id, stage, visit, evaluator, score, passed, error FROM evaluations")}
    # Worth checking: failures, visits an evaluator could not score, and the journeys of the filters.
    assert sum(p is False for _, p, _ in scores.values()) > 100
    assert sum(s is None for s, _, _ in scores.values()) > 100
    yield wh, journeys, scores
    wh.close()


def _reference_rows(journeys, scores, filters: Filters):
    since = filters.since.timestamp() if filters.since else None
    return ref.scored_visits(journeys, MAPS, scores, journey=filters.journey, cohort=filters.cohort,
                             channel=filters.channel, since=since)


@pytest.mark.parametrize("filters", EVAL_FILTERS, ids=EVAL_IDS)
def test_funnel_evaluator_summaries_match_the_reference(evaluated, filters):
    wh, journeys, scores = evaluated
    expected = ref.evaluator_summaries(_reference_rows(journeys, scores, filters))
    got = {(j.journey, s.stage, e.evaluator): e for j in funnel(wh, filters).journeys
           for s in j.stages for e in s.evaluators}
    assert set(got) == set(expected)
    for key, (mean, scored, failed) in expected.items():
        assert (got[key].fail_rate.n, got[key].fail_rate.k) == (scored, failed), key
        assert got[key].mean_score == pytest.approx(mean), key


@pytest.mark.parametrize("filters", EVAL_FILTERS, ids=EVAL_IDS)
def test_score_distributions_and_failing_visits_match_the_reference(evaluated, filters):
    wh, journeys, scores = evaluated
    rows = _reference_rows(journeys, scores, filters)
    for stage in ("b", "y"):
        expected = ref.score_distribution(rows, stage, 10)
        got = {e["evaluator"]: e for e in score_distribution(wh, filters, stage=stage)["evaluators"]}
        assert set(got) == set(expected), stage
        for name, exp in expected.items():
            assert {k: got[name][k] for k in exp} == exp, (stage, name)
        listed = failing_visits(wh, filters, stage=stage, limit=40)
        assert [(r["journey_id"], r["stage"], r["visit"], r["evaluator"]) for r in listed] == ref.failing(
            rows, stage, 40), stage
        assert all(r["journey"] == (filters.journey or r["journey"]) for r in listed)


def test_compare_two_cohorts_reports_difference_with_interval(generated):
    wh, journeys = generated
    result = compare(wh, Filters(cohort="A"), Filters(cohort="B"))
    exp_a = ref.funnel(journeys, MAPS, cohort="A")["alpha"]["stages"]["b"]
    exp_b = ref.funnel(journeys, MAPS, cohort="B")["alpha"]["stages"]["b"]
    d = result.stage("alpha", "b").completion
    assert d.value == pytest.approx(exp_b["completion_rate"] - exp_a["completion_rate"])
    assert d.low < d.value < d.high


def test_wilson_and_newcombe_known_values():
    assert wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)  # Newcombe 1998, table I example
    d = difference(rate(56, 70), rate(48, 80))  # Newcombe 1998 (method 10): 0.2 → [0.0524, 0.3339] for a − b
    assert d.value == pytest.approx(-0.2)
    assert (d.low, d.high) == pytest.approx((-0.3339, -0.0524), abs=1e-3)
    assert rate(0, 0).value is None


def test_malformed_map_names_the_line():
    with pytest.raises(ConfigError, match="line 3"):
        parse_journey_map('[journeys.alpha]\nstages = ["a"]\nidle_timeout = "soon"\n')


def test_star_dev_funnel_matches_the_reference(tmp_path):
    source = ref_path = __import__("conftest").STAR / "dev.jsonl.gz"
    journeys = [json.loads(line) for line in gzip.open(ref_path, "rt")]
    wh = Warehouse(tmp_path / "star.duckdb", journey_map=parse_journey_map(""))
    import_jsonl(wh, source)
    try:
        assert_matches(funnel(wh), ref.funnel(journeys, {}))
    finally:
        wh.close()

"""Funnel and re-entry over a million journeys (about ten million spans).

Builds (once, cached under ``benchmarks/.data/``) a warehouse of synthetic
journeys written with DuckDB SQL straight into ``spans`` (three journey types of
five stages, drop-offs at every stage, one journey in ten backtracking), derives
the stage visits with the warehouse's own derivation, then times
:func:`journeyscope.warehouse.funnel.funnel` plus the re-entry ranking, cold
(first call on a fresh connection) and warm (best of several), and reports the
process's peak memory.

    python benchmarks/bench_funnel.py [--journeys 1000000] [--rounds 5] [--rebuild]
    python benchmarks/bench_funnel.py --evaluated     # also a copy scored by synthetic evaluators (dashboard bench)
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import duckdb

from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.flows import reentry_ranking
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.journey_map import parse_journey_map
from journeyscope.warehouse.schema import SCHEMA_VERSION, current_version

MAP = """
[journeys.onboarding]
stages = ["sign-up", "payment", "content-prefs", "app-install", "first-watch"]
[journeys.support]
stages = ["contact", "identify", "diagnose", "resolve", "follow-up"]
[journeys.returns]
stages = ["request", "label", "ship", "inspect", "refund"]
"""

# Per journey: how many stages it reaches (drop-off), and a backtrack for one in ten;
# three turns per stage visit (about ten spans a journey).
_SPANS = """
INSERT INTO spans BY NAME
WITH j AS (
    SELECT i, (hash(i) % 1000003)::BIGINT AS h, ['onboarding', 'support', 'returns'][(i % 3) + 1] AS journey_name
    FROM range({journeys}) t(i)
),
steps AS (
    SELECT j.*, s.step,
           CASE WHEN s.step < reach THEN s.step ELSE reach - 2 + (s.step - reach) END AS stage_index
    FROM (SELECT *, 1 + (h % 5)::INT AS reach, (h // 7) % 10 = 0 AS backtracks FROM j) j,
         range(7) s(step)
    WHERE s.step < reach OR (backtracks AND reach >= 2 AND s.step < reach + 2)
),
named AS (
    SELECT steps.*, m.stages[stage_index + 1] AS stage
    FROM steps JOIN (SELECT * FROM (VALUES
        ('onboarding', ['sign-up', 'payment', 'content-prefs', 'app-install', 'first-watch']),
        ('support', ['contact', 'identify', 'diagnose', 'resolve', 'follow-up']),
        ('returns', ['request', 'label', 'ship', 'inspect', 'refund']))) m(journey_name, stages) USING (journey_name)
)
SELECT lpad(printf('%x', i), 32, '0') AS trace_id,
       lpad(printf('%x', i * 32 + step * 3 + turn), 16, '0') AS span_id,
       'journey.turn' AS name,
       make_timestamp_ns(1735689600000000000 + i * 1000000000 + (step * 3 + turn) * 60000000000) AS start_time,
       make_timestamp_ns(1735689600000000000 + i * 1000000000 + (step * 3 + turn) * 60000000000) AS end_time,
       'c-' || (i % 200000) AS customer_id, 'j-' || i AS journey_id, journey_name, stage,
       ['chat', 'email', 'voice'][((h // 3) % 3) + 1] AS channel,
       ['trial', 'premium'][((h // 11) % 2) + 1] AS cohort,
       [{{'role': CASE turn WHEN 1 THEN 'agent' ELSE 'customer' END, 'text': 'synthetic', 'name': NULL}}] AS turns,
       '{{}}'::JSON AS attributes,
       i * 32 + step * 3 + turn AS seq,
       now()::TIMESTAMP AS ingested_at
FROM named, range(3) t(turn)
"""


# Synthetic scores for every visit, as the local engine would write them (three evaluators and two friction
# signals, about a fifth failing, each row with its visit's journey type and cohort), so the dashboard's
# evaluator views are measured at full size too.
_EVALUATIONS = """
INSERT INTO evaluations BY NAME
WITH scored AS (
    SELECT v.journey_id, v.stage, v.visit, v.journey_name, v.cohort, e.evaluator,
           ((hash(v.journey_id, v.stage, v.visit, e.evaluator) % 1000) / 999.0)::DOUBLE AS score
    FROM stage_visits v,
         (VALUES ('conversation_resolution'), ('customer_agent_conversation_quality'),
                 ('customer_agent_context_retention'), ('friction_latency'), ('friction_repetition')) e(evaluator)
)
SELECT journey_id, stage, visit, journey_name, cohort, evaluator, '1' AS version, 'local' AS engine, score, score >= 0.2 AS passed,
       CASE WHEN score >= 0.2 THEN 'ok' ELSE 'poor' END AS label,
       'synthetic score ' || round(score, 2) || ' citing turn 1' AS reason,
       '{"turn": 1}'::JSON AS evidence, NULL AS error, 'synthetic' AS input_hash, now()::TIMESTAMP AS evaluated_at
FROM scored
"""


def add_evaluations(source: Path, final: Path) -> None:
    """A copy of ``source`` whose every visit carries synthetic evaluator scores."""
    import shutil

    path = final.with_name(final.stem + ".partial.duckdb")
    for stale in (path, Path(str(path) + ".wal"), final):
        stale.unlink(missing_ok=True)
    shutil.copy(source, path)
    started = time.perf_counter()
    with Warehouse(path, journey_map=parse_journey_map(MAP)) as wh, wh.writing() as cur:
        cur.execute(_EVALUATIONS)
        n = cur.execute("SELECT count(*) FROM evaluations").fetchone()[0]
    print(f"wrote {n:,} synthetic evaluations in {time.perf_counter() - started:.1f}s")
    path.rename(final)


def upgrade(path: Path) -> None:
    """Migrate a cached warehouse written by an older journeyscope (readers refuse another schema version)."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = current_version(con)
    if found < SCHEMA_VERSION:
        started = time.perf_counter()
        Warehouse(path, journey_map=parse_journey_map(MAP)).close()
        print(f"migrated {path.name} from schema {found} in {time.perf_counter() - started:.0f}s")


def build(final: Path, journeys: int) -> None:
    """Write the warehouse under a temporary name, renamed only once complete."""
    final.parent.mkdir(parents=True, exist_ok=True)
    path = final.with_name(final.stem + ".partial.duckdb")
    for stale in (path, Path(str(path) + ".wal"), final):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    with Warehouse(path, journey_map=parse_journey_map("")) as wh:
        cur = wh.cursor()
        cur.execute(_SPANS.format(journeys=journeys))
        spans = cur.execute("SELECT count(*) FROM spans").fetchone()[0]
        cur.close()
    print(f"wrote {spans:,} spans for {journeys:,} journeys in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    Warehouse(path, journey_map=parse_journey_map(MAP)).close()  # a new map derives every visit
    print(f"derived stage visits in {time.perf_counter() - started:.1f}s")
    path.rename(final)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--evaluated", action="store_true", help="also build (once) and time the evaluated copy")
    args = parser.parse_args()
    path = Path(__file__).parent / ".data" / f"funnel-{args.journeys}.duckdb"
    if args.rebuild or not path.exists():
        build(path, args.journeys)
    if args.evaluated:
        evaluated = path.with_name(f"funnel-{args.journeys}-evaluated.duckdb")
        if args.rebuild or not evaluated.exists():
            add_evaluations(path, evaluated)
        path = evaluated
    upgrade(path)
    journey_map = parse_journey_map(MAP)
    with Warehouse(path, read_only=True, journey_map=journey_map) as wh:
        visits = wh.query("SELECT count(*), count(DISTINCT journey_id) FROM stage_visits")[0]
        spans = wh.query("SELECT count(*) FROM spans")[0][0]
        print(f"warehouse: {spans:,} spans, {visits[0]:,} stage visits, {visits[1]:,} journeys")
        timings = []
        for round_ in range(args.rounds):
            started = time.perf_counter()
            report = funnel(wh)
            ranking = reentry_ranking(report)
            timings.append(time.perf_counter() - started)
            if round_ == 0:
                cold = timings[0]
        filtered = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            funnel(wh, Filters(journey="onboarding", cohort="trial", channel="chat"))
            filtered.append(time.perf_counter() - started)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"funnel + re-entry ranking, all journeys: cold {cold:.3f}s, warm best {min(timings):.3f}s")
    print(f"funnel filtered (journey, cohort, channel): warm best {min(filtered):.3f}s")
    print(f"top re-entry: {ranking[0]['journey']}/{ranking[0]['stage']} {ranking[0]['reentry_rate']:.3f}")
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()

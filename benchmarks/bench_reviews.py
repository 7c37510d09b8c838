"""The review page's questions at scale: agreement, the review queue, the per-evaluator summary, adopting a threshold.

Reuses the synthetic warehouse of ``bench_funnel.py --evaluated`` (journeys with five synthetic evaluator
scores per stage visit, cached under ``benchmarks/.data/``), adds ``--reviews`` random reviews to a copy,
and times each question (best of ``--rounds``) and one adoption (which re-decides every stored result of
that evaluator).

    python benchmarks/bench_reviews.py [--journeys 100000] [--reviews 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench_funnel import MAP, add_evaluations, build, upgrade
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.agreement import agreement
from journeyscope.warehouse.journey_map import parse_journey_map
from journeyscope.warehouse.reviews import review_queue, review_summary
from journeyscope.warehouse.thresholds import adopt

EVALUATOR = "customer_agent_conversation_quality"


def best(rounds: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=100_000)
    parser.add_argument("--reviews", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = Path(__file__).parent / ".data"
    source = data / f"funnel-{args.journeys}.duckdb"
    if not source.exists():
        build(source, args.journeys)
    evaluated = source.with_name(f"funnel-{args.journeys}-evaluated.duckdb")
    if not evaluated.exists():
        add_evaluations(source, evaluated)
    upgrade(evaluated)
    path = data / f"reviews-{args.journeys}.duckdb"
    shutil.copy(evaluated, path)
    journey_map = parse_journey_map(MAP)
    with Warehouse(path, journey_map=journey_map) as wh, wh.writing() as cur:
        # A reviewer who agrees with the synthetic score 80% of the time, on random scored visits.
        cur.execute(f"""
            INSERT INTO reviews
            SELECT row_number() OVER (), journey_id, stage, visit, evaluator,
                   CASE WHEN hash(journey_id, 'r') % 5 = 0 THEN NOT passed ELSE passed END, 'bench', NULL, 'import',
                   now()::TIMESTAMP, NULL
            FROM evaluations USING SAMPLE reservoir({args.reviews} ROWS) REPEATABLE (7)
        """)
        scores = cur.execute("SELECT count(*) FROM evaluations").fetchone()[0]
    print(f"warehouse: {scores:,} evaluations, {args.reviews:,} reviews")
    with Warehouse(path, read_only=True, journey_map=journey_map) as wh:
        rows = agreement(wh)
        print(f"agreement ({len(rows)} rows):      {best(args.rounds, lambda: agreement(wh)) * 1000:8.0f} ms")
        print(f"review queue (20 visits):   {best(args.rounds, lambda: review_queue(wh, EVALUATOR)) * 1000:8.0f} ms")
        print(f"review summary:             {best(args.rounds, lambda: review_summary(wh)) * 1000:8.0f} ms")
    with Warehouse(path, journey_map=journey_map) as wh:
        started = time.perf_counter()
        _, decided = adopt(wh, EVALUATOR, 0.35, reason="benchmark", actor="bench")
        print(f"adopt (re-decides {decided:,}): {(time.perf_counter() - started) * 1000:8.0f} ms")
    path.unlink()


if __name__ == "__main__":
    main()

"""Throughput of the local engine: stage visits scored per second, one core, every registered evaluator.

Run:  python benchmarks/bench_evaluators.py [--data tests/data/star/dev.jsonl.gz] [--repeat 3]

Each repeat scores fresh copies of the visits, so the per-text caches start cold every time and the
figure is not flattered by them. Besides the wall-clock rate it prints the CPU time per visit
(``time.process_time``), overall and per evaluator, which a machine shared with other work changes
much less than the wall clock. The end-to-end rate of ``journeyscope evaluate`` (warehouse reads,
scoring, writes) is ``benchmarks/bench_evaluate.py``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from journeyscope.evaluators import evaluate_visit, registered
from journeyscope.evaluators import facts as _facts
from journeyscope.evaluators import lexicon as _lexicon
from journeyscope.evaluators import text as _text
from star_accuracy import DATA, load_visit_contexts


def _clear_caches() -> None:
    for mod in (_text, _facts, _lexicon):
        for obj in vars(mod).values():
            if hasattr(obj, "cache_clear"):
                obj.cache_clear()


def main(argv: list[str] | None = None) -> int:
    """Score every visit with every registered evaluator and print visits/s."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "dev.jsonl.gz")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    contexts = load_visit_contexts(args.data)
    names = sorted(registered())
    best, best_cpu = 0.0, float("inf")
    for i in range(args.repeat):
        batch = copy.deepcopy(contexts)
        _clear_caches()
        t0, c0 = time.perf_counter(), time.process_time()
        n_results = sum(len(evaluate_visit(c, evaluators=names)) for c in batch)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate = len(batch) / dt
        best, best_cpu = max(best, rate), min(best_cpu, cpu)
        print(f"run {i + 1}: {len(batch)} visits, {n_results} results in {dt:.2f} s = {rate:,.0f} visits/s; "
              f"CPU {cpu / len(batch) * 1e6:,.0f} µs/visit ({len(names)} evaluators, cold caches)")
    print(f"best: {best:,.0f} stage visits/s on one core; CPU {best_cpu / len(contexts) * 1e6:,.0f} µs/visit")
    # Per evaluator, in the engine's order (later ones reuse the verdicts of earlier ones on the same visit).
    batch = copy.deepcopy(contexts)
    _clear_caches()
    spent = dict.fromkeys(names, 0.0)
    for c in batch:
        for n in names:
            c0 = time.process_time()
            evaluate_visit(c, evaluators=[n])
            spent[n] += time.process_time() - c0
    for n in names:
        print(f"  {n}: {spent[n] / len(batch) * 1e6:,.0f} µs/visit CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the local engine: stage visits scored per second, one core, every registered evaluator.

Run:  python benchmarks/bench_evaluators.py [--data tests/data/star/dev.jsonl.gz] [--repeat 3]

The target (DESIGN.md) is >= 1,000 stage visits/s per core. Each repeat scores fresh copies of the
visits, so the per-text caches start cold every time and the figure is not flattered by them.
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
    best = 0.0
    for i in range(args.repeat):
        batch = copy.deepcopy(contexts)
        _clear_caches()
        t0 = time.perf_counter()
        n_results = sum(len(evaluate_visit(c, evaluators=names)) for c in batch)
        dt = time.perf_counter() - t0
        rate = len(batch) / dt
        best = max(best, rate)
        print(f"run {i + 1}: {len(batch)} visits, {n_results} results in {dt:.2f} s = {rate:,.0f} visits/s "
              f"({len(names)} evaluators, cold caches)")
    print(f"best: {best:,.0f} stage visits/s on one core (target >= 1,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

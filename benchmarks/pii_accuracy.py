"""Precision and recall of the PII detectors per type, on ``tests/data/pii/corpus.jsonl``.

The corpus is contact-centre text: realistic positives (formats customers really
type) and the negatives that trip detectors up (order ids, tracking numbers,
dates, timestamps, prices, versions, card-like numbers failing Luhn, IBANs with a
wrong check). A detection counts as correct when its type and its exact text match
a labelled value; anything else detected is a false positive, anything labelled
and missed a false negative.

    python benchmarks/pii_accuracy.py [--corpus FILE]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from journeyscope.privacy import BUILTIN_TYPES, find_pii

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii" / "corpus.jsonl"


def score(corpus: Path = CORPUS, split: str | None = None) -> dict[str, dict[str, float]]:
    """Per type: tp, fp, fn, precision, recall, f1 (and ``all``, micro-averaged); ``errors`` lists the misses.

    ``split``: ``"tuning"`` (the texts the rules were refined on), ``"holdout"`` (written after the
    last change to the rules, never used to tune them) or ``None`` for both.
    """
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    errors: list[str] = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if split is not None and record.get("split", "tuning") != split:
            continue
        text = record["text"]
        expected = Counter((p["type"], p["value"]) for p in record["pii"])
        found = Counter((f.pii_type, text[f.start:f.end]) for f in find_pii(text))
        for key in expected | found:
            hit = min(expected[key], found[key])
            tp[key[0]] += hit
            fp[key[0]] += found[key] - hit
            fn[key[0]] += expected[key] - hit
            if found[key] > hit:
                errors.append(f"FP {key[0]:<11} {key[1]!r} in {text!r}")
            if expected[key] > hit:
                errors.append(f"FN {key[0]:<11} {key[1]!r} in {text!r}")
    out: dict[str, dict[str, float]] = {}
    for name in (*BUILTIN_TYPES, "all"):
        t, p, n = (sum(c.values()) for c in (tp, fp, fn)) if name == "all" else (tp[name], fp[name], fn[name])
        precision = t / (t + p) if t + p else 1.0
        recall = t / (t + n) if t + n else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"tp": t, "fp": p, "fn": n, "precision": precision, "recall": recall, "f1": f1}
    out["errors"] = errors  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--errors", action="store_true", help="list every false positive and negative")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    held = sum(1 for r in records if r.get("split") == "holdout")
    print(f"PII detection on {args.corpus.name}: {len(records)} texts ({held} held out)\n")
    for split, title in ((None, "all texts"), ("holdout", "held-out texts only")):
        result = score(args.corpus, split)
        print(f"**{title}**\n")
        print("| type | TP | FP | FN | precision | recall | F1 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name in (*BUILTIN_TYPES, "all"):
            r = result[name]
            print(f"| {name} | {r['tp']} | {r['fp']} | {r['fn']} | {r['precision']:.3f} | {r['recall']:.3f} "
                  f"| {r['f1']:.3f} |")
        print()
    result = score(args.corpus)
    if args.errors:
        print()
        for e in result["errors"]:  # type: ignore[union-attr]
            print("-", e)


if __name__ == "__main__":
    main()

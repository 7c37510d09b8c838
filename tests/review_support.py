"""Shared by the review tests: a warehouse of real dialogues (the first STAR dev journeys, scored by the
local engine), and reviews of it (the STAR annotators' labels, or a reviewer who disagrees at random)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.importer import import_jsonl

DATA = Path(__file__).parent / "data" / "star"
JOURNEYS = 150
RESOLUTION = "conversation_resolution"
QUALITY = "customer_agent_conversation_quality"


def build_star(folder: Path, journeys: int = JOURNEYS) -> Path:
    """The first ``journeys`` STAR dev journeys, imported and scored by the local engine, in ``folder``."""
    source = folder / "star.jsonl"
    with gzip.open(DATA / "dev.jsonl.gz", "rt") as handle:
        source.write_text("".join(line for _, line in zip(range(journeys), handle)))
    db = folder / "star.duckdb"
    with Warehouse(db) as warehouse:
        import_jsonl(warehouse, source)
        evaluate_pending(warehouse)
    return db


def star_reviews(db: Path) -> list[dict]:
    """The STAR annotators' visit-level resolution labels, as reviews of the resolution evaluator."""
    with Warehouse(db, read_only=True) as warehouse:
        journeys = {r[0] for r in warehouse.query("SELECT DISTINCT journey_id FROM stage_visits")}
    out = []
    with gzip.open(DATA / "dev-labels.jsonl.gz", "rt") as handle:
        for line in handle:
            label = json.loads(line)
            if label["journey_id"] in journeys and label.get("stage") and label.get("resolved") is not None:
                out.append({"journey_id": label["journey_id"], "stage": label["stage"], "visit": label["visit"],
                            "evaluator": RESOLUTION, "passed": bool(label["resolved"]), "reviewer": "star"})
    return out


def noisy_reviews(db: Path, evaluator: str, seed: int, flip: float, reviewer: str) -> list[dict]:
    """A reviewer who disagrees with the evaluator's ``passed`` on a random ``flip`` share of its visits."""
    rng = random.Random(seed)
    with Warehouse(db, read_only=True) as warehouse:
        rows = warehouse.query("SELECT journey_id, stage, visit, passed FROM evaluations WHERE evaluator = ? "
                               "AND score IS NOT NULL ORDER BY ALL", [evaluator])
    return [{"journey_id": j, "stage": s, "visit": v, "evaluator": evaluator, "passed": bool(p) != (rng.random() < flip),
             "reviewer": reviewer} for j, s, v, p in rows]

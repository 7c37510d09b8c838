"""Scores of reviewed visits by the engine their evaluations were not made with: local and llm on the same reviews.

``evaluations`` holds one result per visit and evaluator, from the engine the last ``journeyscope evaluate``
used. To compare the engines on what a person said, the reviewed visits (only those: reviews are few, and
a judge call costs money) are scored with the other engine too, into ``review_scores``;
:mod:`journeyscope.warehouse.agreement` then reports each engine on its own row. A result already stored
for that engine and version (in either table) is not asked for again, and the judge's verdicts are kept in
the warehouse's verdict cache, so a second run makes no call. A journey whose customer did not consent to AI
evaluation is never sent to the judge. ``passed`` is decided by the adopted threshold of that engine, as
for every evaluation (:func:`journeyscope.warehouse.thresholds.apply`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from journeyscope import settings
from journeyscope.errors import InvalidInputError, WarehouseError
from journeyscope.evaluators import EvalResult, registered
from journeyscope.evaluators.engine import run_local
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse import feed
from journeyscope.warehouse import thresholds
from journeyscope.warehouse.dialect import insert_replacing
from journeyscope.warehouse.evaluations import WarehouseVerdictCache, _make_judge
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.transcripts import VisitKey, build_contexts, read_batch, visit_keys_sql

if TYPE_CHECKING:
    from journeyscope.evaluators.llm import LLMEngine

__all__ = ["ReviewScoring", "llm_configured", "score_reviewed"]

_REVIEWED = """
WITH k AS ({keys})
SELECT DISTINCT r.journey_id, r.stage, r.visit, r.evaluator, k.position, k.ai_consent
FROM reviews r JOIN k USING (journey_id, stage, visit)
WHERE r.superseded_at IS NULL
"""

_HAVE = """
SELECT journey_id, stage, visit, evaluator, version FROM evaluations WHERE engine = $engine AND error IS NULL
UNION ALL
SELECT journey_id, stage, visit, evaluator, version FROM review_scores WHERE engine = $engine AND error IS NULL
"""


def llm_configured() -> bool:
    """Whether the llm engine is configured (``JOURNEYSCOPE_LLM_BASE_URL`` and ``JOURNEYSCOPE_LLM_MODEL``)."""
    return settings.load().llm_configured


@dataclass
class ReviewScoring:
    """What :func:`score_reviewed` did for one engine."""

    engine: str
    scored: int = 0  #: results written
    up_to_date: int = 0  #: reviewed results this engine already had
    no_consent: int = 0  #: reviewed visits kept from the judge for lack of consent
    errors: int = 0
    llm_calls: int = 0
    seconds: float = 0.0


def score_reviewed(warehouse: Warehouse, engine: str | LLMEngine = "local") -> ReviewScoring:
    """Score every reviewed (visit, evaluator) that has no current result from ``engine`` yet.

    ``engine`` is ``"local"``, ``"llm"`` (configured from ``JOURNEYSCOPE_LLM_*``, verdicts cached in the
    warehouse) or an ``LLMEngine``. With the llm engine only the judged evaluators are scored (friction
    signals are measurements: local only).
    """
    started = time.perf_counter()
    if warehouse.read_only:
        raise WarehouseError(f"{warehouse.path} is open read-only; scoring reviewed visits needs it writable")
    judge: LLMEngine | None
    owns = False
    if isinstance(engine, str):
        if engine not in thresholds.ENGINES:
            raise InvalidInputError(f"unknown engine {engine!r}: use 'local' or 'llm'")
        judge = _make_judge(warehouse) if engine == "llm" else None
        owns = judge is not None
    else:
        judge = engine
    name = "llm" if judge is not None else "local"
    summary = ReviewScoring(name)
    try:
        _score(warehouse, judge, summary)
        if judge is not None:
            summary.llm_calls = judge.calls
    finally:
        if owns and judge is not None:
            judge.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _versions(judge: LLMEngine | None) -> dict[str, str]:
    """The version each evaluator's result has from this engine (the evaluators it scores)."""
    specs = registered()
    if judge is None:
        return {n: s.version for n, s in specs.items()}
    from journeyscope.evaluators.rubrics import RUBRICS

    return {n: judge.version for n in RUBRICS if n in specs}


def _score(warehouse: Warehouse, judge: LLMEngine | None, summary: ReviewScoring) -> None:
    versions = _versions(judge)
    cur = warehouse.cursor()
    try:
        cur.register("js_reviewed_journeys", pa.table({"journey_id": pa.array(
            [r[0] for r in cur.execute(
                "SELECT DISTINCT journey_id FROM reviews WHERE superseded_at IS NULL").fetchall()], pa.string())}))
        reviewed = cur.execute(_REVIEWED.format(keys=visit_keys_sql("$now", "js_reviewed_journeys")),
                               {"now": warehouse.clock()}).fetchall()
        have = {tuple(r) for r in cur.execute(_HAVE, {"engine": summary.engine}).fetchall()}
        todo = []
        for jid, stage, visit, evaluator, position, consent in reviewed:
            version = versions.get(evaluator)
            if version is None:
                continue  # not an evaluator this engine scores
            if (jid, stage, visit, evaluator, version) in have:
                summary.up_to_date += 1
            elif judge is not None and not consent:
                summary.no_consent += 1
            else:
                todo.append((VisitKey(jid, position), stage, visit, evaluator, version))
        if not todo:
            return
        journeys = sorted({t[0].journey_id for t in todo})
        contexts = build_contexts(*read_batch(cur, journeys, warehouse.clock()), [t[0] for t in todo])
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read reviewed visits from {warehouse.path}") from None
    finally:
        cur.close()
    results: list[tuple[VisitKey, str, int, str, EvalResult]] = []
    for key, stage, visit, evaluator, version in todo:
        ctx = contexts.get(key)
        if ctx is None:
            continue  # the journey moved on meanwhile: next run
        result = judge.judge(ctx, evaluator) if judge is not None else run_local(ctx, [evaluator])[0]
        results.append((key, stage, visit, version, result))
    _write(warehouse, results, summary, judge)


def _write(warehouse: Warehouse, results: list[tuple[VisitKey, str, int, str, Any]], summary: ReviewScoring,
           judge: LLMEngine | None) -> None:
    now = time.time_ns() // 1000
    table = pa.table({
        "journey_id": pa.array([k.journey_id for k, *_ in results], pa.string()),
        "stage": pa.array([s for _, s, *_ in results], pa.string()),
        "visit": pa.array([v for _, _, v, *_ in results], pa.int32()),
        "evaluator": pa.array([r.evaluator for *_, r in results], pa.string()),
        "engine": pa.array([summary.engine] * len(results), pa.string()),
        "version": pa.array([version for _, _, _, version, _ in results], pa.string()),
        "score": pa.array([r.score for *_, r in results], pa.float64()),
        "passed": pa.array([r.passed for *_, r in results], pa.bool_()),
        "error": pa.array([r.error for *_, r in results], pa.string()),
        "scored_at": pa.array([now] * len(results), pa.timestamp("us")),
    })
    cache = judge.cache if judge is not None and isinstance(judge.cache, WarehouseVerdictCache) else None
    with warehouse.transaction("write review scores") as tx:
        cur = tx.cur
        tx.publish(feed.FEEDBACK, sorted({k.journey_id for k, *_ in results}))
        cur.register("js_review_scores", table)
        insert_replacing(cur, "review_scores", "SELECT * FROM js_review_scores",
                         ("journey_id", "stage", "visit", "evaluator", "engine"), by_name=True)
        cur.unregister("js_review_scores")
        thresholds.apply(cur, sorted({k.journey_id for k, *_ in results}))
        if cache is not None:
            cache.write_pending(cur, {r.evidence["cache_key"]: k.journey_id for k, *_, r in results
                                      if "cache_key" in r.evidence})
    summary.scored = len(results)
    summary.errors = sum(1 for *_, r in results if r.error is not None)

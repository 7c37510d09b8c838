"""Evaluator thresholds: the score at or above which a visit ``passed``, adopted explicitly and kept as versions.

An evaluator decides ``passed`` at its built-in threshold (its module's ``PASS_AT``). A user who has
reviewed visits may adopt another one (:func:`adopt`: ``journeyscope evaluators adopt``, or the button on
the dashboard's review page), for one evaluator and engine, everywhere or for one journey type and/or
stage. Each adoption is a new row of ``evaluator_thresholds`` with a new ``version``, who, when, why, the
value it replaced and how many reviews stood behind it; rows are never changed or deleted, and the
adoption is also written to the audit log, in the same transaction.

**Which threshold decides.** For an evaluation, the most specific adopted scope that covers it (journey
type and stage, then journey type, then stage, then everywhere), its latest version; with none, the
built-in threshold.

**Past results stay reproducible.** ``passed`` is decided when a result is written and stored with the
``threshold_version`` that decided it (NULL: the built-in threshold of the stored evaluator ``version``).
Adopting a threshold re-decides the stored results it covers, in its transaction, so every page agrees at
once; the score is never changed, and any earlier verdict is ``score >= threshold`` of the version it had,
which the table keeps for ever. New results are decided by the adopted threshold as they are written
(:func:`apply`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb

from journeyscope.errors import InvalidInputError
from journeyscope.evaluators import registered
from journeyscope.warehouse import feed
from journeyscope.warehouse import audit
from journeyscope.warehouse.store import Warehouse

__all__ = ["ENGINES", "Threshold", "adopt", "apply", "builtin_threshold", "history", "in_force", "resolve"]

ENGINES = ("local", "llm")
#: Tables whose rows carry a ``passed`` decided by a threshold.
_DECIDED = ("evaluations", "review_scores")

_ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class Threshold:
    """One adopted threshold (a row of ``evaluator_thresholds``)."""

    version: int
    evaluator: str
    engine: str
    journey: str | None
    stage: str | None
    threshold: float
    previous: float | None
    previous_version: int | None
    reason: str
    actor: str
    adopted_at: datetime
    reviews: int | None

    def covers(self, evaluator: str, engine: str, journey: str | None, stage: str | None) -> bool:
        return (self.evaluator == evaluator and self.engine == engine
                and self.journey in (None, journey) and self.stage in (None, stage))

    @property
    def specificity(self) -> int:
        return (2 if self.journey is not None else 0) + (1 if self.stage is not None else 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "evaluator": self.evaluator, "engine": self.engine, "journey": self.journey,
            "stage": self.stage, "threshold": self.threshold, "previous": self.previous,
            "previous_version": self.previous_version, "reason": self.reason, "actor": self.actor,
            "adopted_at": self.adopted_at.strftime(_ISO), "reviews": self.reviews,
        }


def builtin_threshold(evaluator: str) -> float | None:
    """The threshold an evaluator decides ``passed`` at by itself (its module's ``PASS_AT``), if it says."""
    spec = registered().get(evaluator)
    if spec is None:
        return None
    value = getattr(sys.modules.get(spec.fn.__module__), "PASS_AT", None)
    return float(value) if isinstance(value, (int, float)) else None


def history(cur: duckdb.DuckDBPyConnection, evaluator: str | None = None) -> list[Threshold]:
    """Every adoption, oldest first (of one evaluator, or all)."""
    where = "WHERE evaluator = ?" if evaluator else ""
    rows = cur.execute(
        "SELECT version, evaluator, engine, journey_name, stage, threshold, previous, previous_version, reason, "
        f"actor, adopted_at, reviews FROM evaluator_thresholds {where} ORDER BY version",
        [evaluator] if evaluator else [],
    ).fetchall()
    return [Threshold(*r) for r in rows]


def resolve(adopted: list[Threshold], evaluator: str, engine: str, journey: str | None,
            stage: str | None) -> tuple[float | None, int | None]:
    """``(threshold, version)`` in force for results of this scope: the most specific adoption covering it
    (the latest of that scope), else the built-in threshold with version ``None``."""
    covering = [t for t in adopted if t.covers(evaluator, engine, journey, stage)]
    if not covering:
        return builtin_threshold(evaluator), None
    best = max(covering, key=lambda t: (t.specificity, t.version))
    return best.threshold, best.version


def in_force(cur: duckdb.DuckDBPyConnection) -> list[Threshold]:
    """The latest adoption of each scope (what :func:`resolve` chooses among)."""
    latest: dict[tuple[str, str, str | None, str | None], Threshold] = {}
    for t in history(cur):
        latest[(t.evaluator, t.engine, t.journey, t.stage)] = t
    return sorted(latest.values(), key=lambda t: t.version)


#: For each result of ``{table}`` (restricted by ``{where}``) covered by an adoption: the threshold and version
#: of the most specific scope covering it (latest version within a scope).
_DECIDE = """
UPDATE {table} SET passed = {table}.score >= d.threshold, threshold_version = d.version
FROM (
    SELECT x.journey_id, x.stage, x.visit, x.evaluator, x.engine,
           arg_max(t.threshold, {{'s': t.spec, 'v': t.version}}) AS threshold,
           arg_max(t.version, {{'s': t.spec, 'v': t.version}}) AS version
    FROM {source} x
    JOIN (SELECT *, (CASE WHEN journey_name IS NULL THEN 0 ELSE 2 END) + (CASE WHEN stage IS NULL THEN 0 ELSE 1 END)
                    AS spec FROM evaluator_thresholds) t
      ON t.evaluator = x.evaluator AND t.engine = x.engine
     AND (t.journey_name IS NULL OR t.journey_name IS NOT DISTINCT FROM x.journey_name)
     AND (t.stage IS NULL OR t.stage = x.stage)
    WHERE x.score IS NOT NULL AND x.error IS NULL {where}
    GROUP BY ALL
) d
WHERE {table}.journey_id = d.journey_id AND {table}.stage = d.stage AND {table}.visit = d.visit
  AND {table}.evaluator = d.evaluator AND {table}.engine = d.engine
"""

#: ``review_scores`` carries no journey type: it is its visit's.
_REVIEW_SCORES = ("(SELECT s.*, v.journey_name FROM review_scores s "
                  "LEFT JOIN stage_visits v USING (journey_id, stage, visit))")


def apply(cur: duckdb.DuckDBPyConnection, journeys: list[str] | None = None, evaluator: str | None = None) -> int:
    """Decide ``passed`` of stored results by the adopted thresholds (inside the caller's transaction).

    ``journeys`` limits it to those journeys' results (the evaluation writer passes the journeys it just
    wrote), ``evaluator`` to one evaluator's (an adoption). Costs one count when nothing was ever adopted.
    Returns the results decided.
    """
    row = cur.execute("SELECT count(*) FROM evaluator_thresholds").fetchone()
    if not row or not row[0] or journeys == []:
        return 0
    conditions, params = [], []
    if journeys is not None:
        conditions.append(f"x.journey_id IN ({', '.join('?' * len(journeys))})")
        params.extend(journeys)
    if evaluator is not None:
        conditions.append("x.evaluator = ?")
        params.append(evaluator)
    where = "".join(f" AND {c}" for c in conditions)
    decided = 0
    for table in _DECIDED:
        source = _REVIEW_SCORES if table == "review_scores" else table
        out = cur.execute(_DECIDE.format(table=table, source=source, where=where), params).fetchone()
        decided += int(out[0]) if out else 0
    return decided


def _reviews_in_scope(cur: duckdb.DuckDBPyConnection, evaluator: str, journey: str | None,
                      stage: str | None) -> int:
    row = cur.execute(
        "SELECT count(*) FROM reviews r JOIN stage_visits v USING (journey_id, stage, visit) "
        "WHERE r.superseded_at IS NULL AND r.evaluator = ? AND (CAST(? AS VARCHAR) IS NULL OR v.journey_name = ?) "
        "AND (CAST(? AS VARCHAR) IS NULL OR r.stage = ?)",
        [evaluator, journey, journey, stage, stage],
    ).fetchone()
    return int(row[0]) if row else 0


def adopt(
    warehouse: Warehouse,
    evaluator: str,
    threshold: float,
    *,
    reason: str,
    engine: str = "local",
    journey: str | None = None,
    stage: str | None = None,
    actor: str | None = None,
) -> tuple[Threshold, int]:
    """Adopt ``threshold`` for ``evaluator`` (and ``engine``, in a scope); return it and the results re-decided.

    One transaction: the new version, the stored results it covers decided again, the audit entry.
    """
    known = set(registered()) | {r[0] for r in warehouse.query("SELECT DISTINCT evaluator FROM evaluations")}
    if evaluator not in known:
        raise InvalidInputError(f"unknown evaluator {evaluator!r}; known: {', '.join(sorted(known))}")
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}: use 'local' or 'llm'")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"a threshold is a score from 0 to 1, got {threshold!r}")
    if not reason or not reason.strip():
        raise InvalidInputError("say why this threshold is adopted (--reason): it is kept with the version")
    actor = actor or audit.default_actor()
    with warehouse.transaction("adopt a threshold") as tx:
        cur = tx.cur
        tx.publish(feed.SCORES, None)  # ``passed`` decided again for every stored evaluation in scope
        previous, previous_version = resolve(in_force(cur), evaluator, engine, journey, stage)
        row = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM evaluator_thresholds").fetchone()
        version = int(row[0]) if row else 1
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        n_reviews = _reviews_in_scope(cur, evaluator, journey, stage)
        adopted = Threshold(version, evaluator, engine, journey, stage, float(threshold), previous,
                            previous_version, reason.strip(), actor, now, n_reviews)
        cur.execute("INSERT INTO evaluator_thresholds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [version, evaluator, engine, journey, stage, adopted.threshold, previous, previous_version,
                     adopted.reason, actor, now, n_reviews])
        decided = apply(cur, evaluator=evaluator)
        detail = {k: v for k, v in adopted.as_dict().items() if k not in ("actor", "adopted_at")}
        audit.record(cur, audit.THRESHOLD_ADOPTED, rows=decided, detail=detail, actor=actor)
    return adopted, decided

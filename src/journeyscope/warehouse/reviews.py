"""Reviews: a person's pass/fail verdict on one evaluator's result for one stage visit.

A review is ``{"journey_id", "stage", "visit", "evaluator", "passed": true|false, "reviewer"?, "note"?}``
(one a line in ``journeyscope reviews import``, one or a list in ``POST /v1/reviews``, one per key press in
the dashboard's review queue). All three end in :func:`add_reviews`, which checks every review, stores the
good ones in one transaction and says, for each bad one, which and why; it never drops a good review
because a neighbour was bad.

**History.** Reviews are never updated in place: a later review of the same ``(journey_id, stage, visit,
evaluator, reviewer)`` is stored as a new row and the earlier one gets ``superseded_at``, so a reviewer
who changes their mind is visible, and agreement reads only the current review of each reviewer
(:data:`CURRENT`). Two reviewers of the same visit are two reviews.

**Privacy.** A note is free text a person typed about a customer's conversation, so it is redacted by the
warehouse's privacy policy like every turn (the redactor of :meth:`Warehouse.prepare`); reviews are erased
with the customer's journeys (:mod:`journeyscope.warehouse.erasure` deletes every table keyed by
``journey_id``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from journeyscope.errors import InvalidInputError
from journeyscope.evaluators import registered
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse import feed
from journeyscope.warehouse.store import Warehouse

__all__ = [
    "CURRENT",
    "REVIEWS_EXPORT",
    "SOURCES",
    "Rejected",
    "ReviewResult",
    "add_reviews",
    "import_reviews",
    "known_evaluators",
    "review_queue",
    "review_summary",
]

#: Where a review came from (stored with it).
SOURCES = ("import", "api", "dashboard")
#: Longest note kept, in characters (a note is a remark, not a document).
MAX_NOTE = 2000
#: Longest reviewer name and identifier accepted.
MAX_NAME = 256

_REQUIRED = ("journey_id", "stage", "visit", "evaluator", "passed")
_OPTIONAL = ("reviewer", "note")
#: Fields of an exported review, accepted (and ignored) on import, so an export can be imported again.
_EXPORTED = ("id", "source", "reviewed_at", "superseded_at", "score", "evaluator_passed", "engine")

_ISO = "'%Y-%m-%dT%H:%M:%S.%fZ'"

#: The current reviews: each reviewer's latest verdict per visit and evaluator.
CURRENT = "SELECT * FROM reviews WHERE superseded_at IS NULL"

#: ``journeyscope export reviews``: every review ever made (history included), with the evaluator's score and
#: verdict on that visit as stored now, for offline analysis.
REVIEWS_EXPORT = f"""
    SELECT r.journey_id, r.stage, r.visit, r.evaluator, r.passed, r.reviewer, r.note,
           r.id, r.source, strftime(r.reviewed_at, {_ISO}) AS reviewed_at,
           strftime(r.superseded_at, {_ISO}) AS superseded_at,
           e.score, e.passed AS evaluator_passed, e.engine
    FROM reviews r
    LEFT JOIN evaluations e USING (journey_id, stage, visit, evaluator)
    ORDER BY r.journey_id, r.stage, r.visit, r.evaluator, r.id
"""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One review not stored: its place (file line, or index in a list, from 1) and why."""

    where: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.where, "reason": self.reason}


@dataclass
class ReviewResult:
    """What :func:`add_reviews` did: reviews stored, earlier reviews they superseded, and the rejected ones."""

    accepted: int = 0
    superseded: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "superseded": self.superseded,
                "rejected": [r.as_dict() for r in self.rejected]}


@dataclass(frozen=True, slots=True)
class _Review:
    where: int
    journey_id: str
    stage: str
    visit: int
    evaluator: str
    passed: bool
    reviewer: str
    note: str | None

    @property
    def key(self) -> tuple[str, str, int, str, str]:
        return (self.journey_id, self.stage, self.visit, self.evaluator, self.reviewer)


def known_evaluators(warehouse: Warehouse) -> set[str]:
    """Evaluators a review may name: every registered one, and any with results stored (a plugin not loaded)."""
    stored = {r[0] for r in warehouse.query("SELECT DISTINCT evaluator FROM evaluations")}
    return set(registered()) | stored


def _text(record: dict[str, Any], name: str, limit: int = MAX_NAME) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name!r} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{name!r} is longer than {limit} characters")
    return value


def _parse(where: int, record: Any, default_reviewer: str) -> _Review:
    """One review checked for shape (not yet against the warehouse); ``ValueError`` says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"a review is a JSON object, got {type(record).__name__}")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(record) - set(_REQUIRED) - set(_OPTIONAL) - set(_EXPORTED))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    visit = record["visit"]
    if isinstance(visit, bool) or not isinstance(visit, int) or visit < 1:
        raise ValueError(f"'visit' must be a whole number from 1, got {visit!r}")
    passed = record["passed"]
    if not isinstance(passed, bool):
        raise ValueError(f"'passed' must be true or false, got {passed!r}")
    reviewer = record.get("reviewer")
    reviewer = default_reviewer if reviewer is None else _text(record, "reviewer")
    note = record.get("note")
    if note is not None:
        if not isinstance(note, str):
            raise ValueError("'note' must be a string")
        if len(note) > MAX_NOTE:
            raise ValueError(f"'note' is longer than {MAX_NOTE} characters")
        note = note.strip() or None
    return _Review(where, _text(record, "journey_id"), _text(record, "stage"), visit,
                   _text(record, "evaluator"), passed, reviewer, note)


def add_reviews(
    warehouse: Warehouse,
    records: Iterable[tuple[int, Any]],
    *,
    reviewer: str,
    source: str,
) -> ReviewResult:
    """Check and store reviews (``(where, record)`` pairs: a line number or a list index, and the parsed JSON).

    A review of a visit the warehouse does not hold, or of an evaluator nobody registered or stored, is
    rejected with the reason; the others are stored in one transaction. ``reviewer`` names whoever gave
    the reviews that name nobody (the OS user for a file, the API key for a request).
    """
    if source not in SOURCES:
        raise InvalidInputError(f"unknown review source {source!r}")
    result = ReviewResult()
    parsed: list[_Review] = []
    for where, record in records:
        try:
            parsed.append(_parse(where, record, reviewer))
        except ValueError as exc:
            result.rejected.append(Rejected(where, str(exc)))
    if parsed:
        parsed = _check_against(warehouse, parsed, result)
    if parsed:
        result.accepted, result.superseded = _store(warehouse, parsed, source)
    result.rejected.sort(key=lambda r: r.where)
    return result


def _check_against(warehouse: Warehouse, reviews: list[_Review], result: ReviewResult) -> list[_Review]:
    """The reviews whose evaluator is known and whose visit is stored; the rest rejected with the reason."""
    known = known_evaluators(warehouse)
    keys = pa.table({
        "journey_id": pa.array([r.journey_id for r in reviews], pa.string()),
        "stage": pa.array([r.stage for r in reviews], pa.string()),
        "visit": pa.array([r.visit for r in reviews], pa.int32()),
    })
    cur = warehouse.cursor()
    try:
        cur.register("js_review_keys", keys)
        found = {tuple(r) for r in cur.execute(
            "SELECT DISTINCT k.journey_id, k.stage, k.visit FROM js_review_keys k "
            "JOIN stage_visits v USING (journey_id, stage, visit)").fetchall()}
        journeys = {r[0] for r in cur.execute(
            "SELECT DISTINCT journey_id FROM stage_visits WHERE journey_id IN (SELECT journey_id FROM js_review_keys)"
        ).fetchall()}
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read stage visits from {warehouse.path}") from None
    finally:
        cur.close()
    good = []
    for r in reviews:
        if r.evaluator not in known:
            result.rejected.append(Rejected(r.where, f"unknown evaluator {r.evaluator!r}; known: "
                                                     f"{', '.join(sorted(known))}"))
        elif r.journey_id not in journeys:
            result.rejected.append(Rejected(r.where, f"unknown journey {r.journey_id!r}"))
        elif (r.journey_id, r.stage, r.visit) not in found:
            result.rejected.append(Rejected(r.where, f"journey {r.journey_id!r} has no visit {r.visit} to stage "
                                                     f"{r.stage!r}"))
        else:
            good.append(r)
    return good


def _store(warehouse: Warehouse, reviews: list[_Review], source: str) -> tuple[int, int]:
    """Insert the reviews, superseding earlier current ones with the same key; (stored, superseded)."""
    assert warehouse.privacy is not None  # writable
    redact = warehouse.privacy.redactor.text
    notes = [redact(r.note)[0] if r.note else None for r in reviews]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    # Within one batch, a later review of the same key supersedes an earlier one (file order).
    last = {r.key: i for i, r in enumerate(reviews)}
    with warehouse.transaction("write reviews") as tx:
        cur = tx.cur
        tx.publish(feed.FEEDBACK, sorted({r.journey_id for r in reviews}))
        row = cur.execute("SELECT coalesce(max(id), 0) FROM reviews").fetchone()
        first_id = (int(row[0]) if row else 0) + 1
        table = pa.table({
            "id": pa.array(range(first_id, first_id + len(reviews)), pa.int64()),
            "journey_id": pa.array([r.journey_id for r in reviews], pa.string()),
            "stage": pa.array([r.stage for r in reviews], pa.string()),
            "visit": pa.array([r.visit for r in reviews], pa.int32()),
            "evaluator": pa.array([r.evaluator for r in reviews], pa.string()),
            "passed": pa.array([r.passed for r in reviews], pa.bool_()),
            "reviewer": pa.array([r.reviewer for r in reviews], pa.string()),
            "note": pa.array(notes, pa.string()),
            "latest": pa.array([last[r.key] == i for i, r in enumerate(reviews)], pa.bool_()),
        })
        cur.register("js_reviews", table)
        superseded = cur.execute(
            "UPDATE reviews SET superseded_at = $now FROM (SELECT DISTINCT journey_id, stage, visit, evaluator, "
            "reviewer FROM js_reviews) n WHERE reviews.superseded_at IS NULL AND reviews.journey_id = n.journey_id "
            "AND reviews.stage = n.stage AND reviews.visit = n.visit AND reviews.evaluator = n.evaluator "
            "AND reviews.reviewer = n.reviewer", {"now": now}).fetchone()
        cur.execute(
            "INSERT INTO reviews BY NAME SELECT * EXCLUDE (latest), $source AS source, $now AS reviewed_at, "
            "CASE WHEN latest THEN NULL ELSE $now END AS superseded_at FROM js_reviews",
            {"source": source, "now": now})
        cur.unregister("js_reviews")
    in_batch = len(reviews) - len(last)
    return len(reviews), (int(superseded[0]) if superseded else 0) + in_batch


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON or the error)`` of each non-blank line."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, _Broken(f"not JSON ({exc.msg} at column {exc.colno})")


@dataclass(frozen=True, slots=True)
class _Broken:
    """A line that did not parse; :func:`_parse` rejects it with this reason."""

    reason: str


def import_reviews(warehouse: Warehouse, path: str | Path, *, reviewer: str) -> ReviewResult:
    """Reviews from a JSONL file, one a line; bad lines are rejected with their line number, the rest kept."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"no review file at {file}")
    records: list[tuple[int, Any]] = []
    broken: list[Rejected] = []
    for number, record in _lines(file):
        if isinstance(record, _Broken):
            broken.append(Rejected(number, record.reason))
        else:
            records.append((number, record))
    result = add_reviews(warehouse, records, reviewer=reviewer, source="import")
    result.rejected = sorted([*broken, *result.rejected], key=lambda r: r.where)
    return result


#: Score bands of the queue's strata: tenths of the score range.
QUEUE_BANDS = 10
#: A stratum's turn comes every ``1 + _NEAR_WEIGHT * distance`` rounds (distance of its band's centre from the
#: threshold): the band at the threshold two to three times as often as one at the end of the score range.
_NEAR_WEIGHT = 4.0

_QUEUE = f"""
WITH c AS (
    SELECT e.journey_id, e.stage, e.visit, e.score, coalesce(t.threshold, $builtin) AS threshold
    FROM evaluations e
    LEFT JOIN evaluator_thresholds t ON t.version = e.threshold_version
    WHERE e.evaluator = $evaluator AND e.score IS NOT NULL AND e.error IS NULL
      AND ($stage IS NULL OR e.stage = $stage) AND ($journey IS NULL OR e.journey_name = $journey)
      AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.superseded_at IS NULL AND r.journey_id = e.journey_id
                      AND r.stage = e.stage AND r.visit = e.visit AND r.evaluator = e.evaluator)
),
b AS (
    SELECT *, least(floor(score * {QUEUE_BANDS}), {QUEUE_BANDS - 1}) AS band, abs(score - threshold) AS distance,
           hash(journey_id, visit) AS tie
    FROM c
),
s AS (
    SELECT *, row_number() OVER (PARTITION BY stage, band ORDER BY distance, tie) AS nth,
           abs((band + 0.5) / {QUEUE_BANDS} - threshold) AS band_distance
    FROM b
),
top AS (
    SELECT journey_id, stage, visit, threshold, nth * (1 + {_NEAR_WEIGHT} * band_distance) AS priority, distance, tie
    FROM s ORDER BY priority, distance, tie, stage LIMIT $limit  -- stage: a journey's visit 1 of two stages tie
)
SELECT e.journey_id, e.stage, e.visit, e.evaluator, e.engine, e.journey_name, e.score, e.passed, top.threshold,
       e.label, e.reason
FROM top JOIN evaluations e USING (journey_id, stage, visit)
WHERE e.evaluator = $evaluator
ORDER BY top.priority, top.distance, top.tie, e.stage, e.engine
"""


def review_queue(
    warehouse: Warehouse,
    evaluator: str,
    *,
    stage: str | None = None,
    journey: str | None = None,
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Visits scored by ``evaluator`` that nobody has reviewed yet, those a review teaches most first.

    Strata are (stage, tenth of the score range), taken in turn so every stage and every score band
    appears early; a stratum's next visit is the one nearest the threshold that decided it; and the
    bands near the threshold come round two to three times as often as those at the ends (near the
    threshold a label moves the suggested threshold; far from it, it finds confident errors).
    """
    from journeyscope.warehouse.thresholds import builtin_threshold

    builtin = builtin_threshold(evaluator)
    cur = warehouse.cursor()
    try:
        cur.execute(_QUEUE, {"evaluator": evaluator, "stage": stage, "journey": journey, "limit": int(limit),
                             "builtin": 0.5 if builtin is None else builtin})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read evaluations from {warehouse.path}") from None
    finally:
        cur.close()


def review_summary(warehouse: Warehouse) -> dict[str, Any]:
    """What the review page offers: per evaluator with scores, its stages, results scored and reviews current."""
    rows = warehouse.query(
        f"""
        SELECT e.evaluator, list(DISTINCT e.stage ORDER BY e.stage) AS stages, count(*) AS scored,
               count(r.reviewed) AS reviewed
        FROM evaluations e
        LEFT JOIN (SELECT DISTINCT journey_id, stage, visit, evaluator, true AS reviewed FROM ({CURRENT})) r
               USING (journey_id, stage, visit, evaluator)
        WHERE e.score IS NOT NULL AND e.error IS NULL
        GROUP BY e.evaluator ORDER BY e.evaluator
        """
    )
    return {"evaluators": [{"evaluator": ev, "stages": list(stages), "scored": int(scored), "reviewed": int(reviewed)}
                           for ev, stages, scored, reviewed in rows]}

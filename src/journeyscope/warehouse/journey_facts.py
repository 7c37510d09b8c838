"""The journey facts every evaluation row carries, so scores are filtered without joining their visits.

Joining 15 million ``evaluations`` rows to their ``stage_visits`` on ``(journey_id, stage, visit)`` only
to learn the journey type and cohort took most of the overview's and stage page's 15 s at a million
journeys. So each evaluation row also holds ``journey_name`` and ``cohort``: the values of the visit with
its key, or NULL when no visit has that key. The readers of :mod:`~journeyscope.warehouse.funnel` and
:mod:`~journeyscope.warehouse.evaluation_reads` count them directly when the filter keeps or drops whole
journeys (:attr:`Filters.keeps_whole_journeys`), and a NULL ``journey_name`` leaves a row out exactly as
the join did (no visit, or a visit without a journey type).

The invariant is kept where it can break:

- writing evaluations (:func:`write`): the values are read from ``stage_visits`` in the writing
  transaction, and a result whose visit is gone by then (its journey was erased meanwhile) is not
  written at all, so no row is ever stored for a key without a visit;
- deriving visits again (:func:`refresh_changed`): a key, once derived, stays (spans are only added,
  and a span added never merges two visits), so the only change to follow is a journey whose type or
  cohort changed (an earlier span arriving late, a cohort set after the first spans); those journeys'
  rows are updated, and an upkeep that changed none (nearly every one) does not touch ``evaluations``
  (a journey new to the visits has no scores: scores are written only for visits that exist);
- migrating a file, or deriving every visit again (:data:`REFRESH_ALL`): every row that differs.

Erasure and retention delete whole journeys, their evaluations with them: nothing to keep.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from journeyscope.warehouse.dialect import insert_replacing

__all__ = ["REFRESH_ALL", "refresh_changed", "write"]

#: Every row set to its visit's values (NULL without one); rows already right are not rewritten.
REFRESH_ALL = """
UPDATE evaluations SET journey_name = f.journey_name, cohort = f.cohort
FROM (
    SELECT e.journey_id, e.stage, e.visit, e.evaluator, v.journey_name, v.cohort
    FROM evaluations e
    LEFT JOIN stage_visits v USING (journey_id, stage, visit)
    WHERE e.journey_name IS DISTINCT FROM v.journey_name OR e.cohort IS DISTINCT FROM v.cohort
) f
WHERE evaluations.journey_id = f.journey_id AND evaluations.stage = f.stage AND evaluations.visit = f.visit
  AND evaluations.evaluator = f.evaluator
"""

_CHANGED = """
SELECT DISTINCT a.journey_id
FROM js_facts_after a JOIN {before} b USING (journey_id)
WHERE a.journey_name IS DISTINCT FROM b.journey_name OR a.cohort IS DISTINCT FROM b.cohort
"""

_REFRESH_JOURNEYS = """
UPDATE evaluations SET journey_name = v.journey_name, cohort = v.cohort
FROM (SELECT journey_id, stage, visit, journey_name, cohort FROM stage_visits
      WHERE journey_id IN (SELECT journey_id FROM js_facts_changed)) v
WHERE evaluations.journey_id = v.journey_id AND evaluations.stage = v.stage AND evaluations.visit = v.visit
"""


def write(cur: duckdb.DuckDBPyConnection, table: str, journeys: list[str]) -> None:
    """``INSERT OR REPLACE`` the results in ``table`` (of ``journeys``) with their visits' journey facts.

    The visits are looked up first, by ``journey_id IN (?, ...)`` into a temporary table: on its own that
    lookup is answered by the index on ``stage_visits.journey_id``, where inside the INSERT's join it scans
    every visit (100 ms per batch at a million journeys). Runs in the caller's transaction, so the facts are
    the visits' as they are when the results are written; a result whose visit is gone by then is not written.
    """
    if not journeys:
        return
    placeholders = ", ".join("?" * len(journeys))
    # A temporary table made in the caller's transaction: a failed write rolls it back with the rest.
    cur.execute("CREATE OR REPLACE TEMP TABLE js_visit_facts AS SELECT journey_id, stage, visit, journey_name, cohort "
                f"FROM stage_visits WHERE journey_id IN ({placeholders})", journeys)
    insert_replacing(cur, "evaluations", f"SELECT e.*, v.journey_name, v.cohort "
                     f"FROM {table} e JOIN js_visit_facts v USING (journey_id, stage, visit)",
                     ("journey_id", "stage", "visit", "evaluator"), by_name=True)
    cur.execute("DROP TABLE js_visit_facts")


def refresh_changed(cur: duckdb.DuckDBPyConnection, before: str, after: pa.Table) -> int:
    """Give the evaluations of journeys whose type or cohort changed the new values; return the journeys.

    ``before`` names a table of ``(journey_id, journey_name, cohort)`` of the visits an upkeep deleted, and
    ``after`` holds the same of the visits it derived again (what its INSERT returned), so finding what
    changed costs no scan of ``evaluations``, which nearly every upkeep leaves alone. Runs in the caller's
    transaction.
    """
    if after.num_rows == 0:
        return 0
    cur.register("js_facts_after", after)
    try:
        cur.execute(f"CREATE OR REPLACE TEMP TABLE js_facts_changed AS {_CHANGED.format(before=before)}")
    finally:
        cur.unregister("js_facts_after")
    try:
        row = cur.execute("SELECT count(*) FROM js_facts_changed").fetchone()
        changed = int(row[0]) if row else 0
        if changed:
            cur.execute(_REFRESH_JOURNEYS)
        return changed
    finally:
        cur.execute("DROP TABLE js_facts_changed")

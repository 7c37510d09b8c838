"""Stage visits, derived from spans exactly as docs/contracts.md defines them, and kept up to date.

Per journey, the spans that carry a ``journey.stage`` are ordered by start time
(then ``seq``, the arrival order, so turns that share a timestamp keep their
order). A **visit** is a maximal run of consecutive spans with the same stage;
spans without a stage are not looked at, so they neither start nor break a
visit. ``visit`` numbers the visits of one stage within the journey (1, 2, ...;
``visit >= 2`` is a re-entry); ``position`` numbers all visits of the journey
from 0. Wherever a rule below takes the latest or the earliest of something (an
outcome, the channel, the journey facts), a tie in time goes by ``seq`` too (a
feedback answer's by its span and event), so a derivation gives the same visits
whichever journeys it derives with them.

**Outcome** of a visit, first rule that applies:

1. ``explicit``: a ``journey.stage.outcome`` event on a span of the visit, or a
   stand-alone ``journey.stage.outcome`` span of the same stage (such a span
   belongs to the latest visit of its stage that started at or before it and
   never starts or breaks a visit itself);
2. ``completed``: the journey later reaches a stage further along the journey
   map; for stages the map does not place (or journey types without a map),
   "further" means a stage this journey first entered later than this one
   (the order inferred from observed first entries);
3. ``abandoned``: the next visit began more than the idle timeout after this one
   ended (the customer left and came back later), or the whole journey has been
   idle for longer than the idle timeout;
4. ``open``: otherwise; the journey may still move on.

**Now** is the wall clock (UTC) at upkeep, not the latest span time seen: a live
journey must turn ``abandoned`` while no new spans arrive (the latest span time
stops moving when traffic stops), and imported historical journeys are judged
against today, so they come out ``abandoned``/``completed``, never ``open``.
Because the clock moves without spans, each row stores ``open_until`` (the
journey's last activity plus its idle timeout), and readers apply
:data:`OUTCOME_NOW` so an ``open`` visit past that time reads as ``abandoned``
even before the derive loop's next :func:`close_idle_visits` (every ``idle_sweep_s``).

**Feedback** (``journey.feedback`` events, on any span of the journey, copied
at ingest into the ``feedback`` table: :mod:`journeyscope.warehouse.feedback_events`): an
answer belongs to the stage its event names (``journey.stage``, else its span's),
in the latest visit of that stage that began at or before it (else the stage's
first visit); per visit the latest answer to each question (CSAT, CES, NPS,
comment) is kept with how many answers came. A stand-alone ``journey.feedback``
span, like an outcome span, never starts or breaks a visit.

Turns: turns of ``journey.turn`` spans count as recorded; turns read from other
conventions' spans and GenAI log records (:mod:`~journeyscope.warehouse.foreign_turns`,
which also places log records in their span's visit) count once per trace (an AGENT
span and its child LLM spans repeat the same customer message and reply). A log
record stored after its span marks the span's journey for upkeep like a span does.

Upkeep is incremental: each commit that stores spans lists the journeys it touched on the change feed, with the
first ``seq`` of the spans it stored (:mod:`~journeyscope.warehouse.feed`), and :func:`update_due` re-derives
only the journeys listed since the last upkeep, in one DELETE and one INSERT ... SELECT, reading spans only from
the earliest of those journeys' first staged span on (``journey_first_seq``): spans are stored in arrival order, so
DuckDB skips the row groups before it and an upkeep costs what live journeys hold, not what the warehouse holds.
The warehouse does that right after each ingest by default; the server's derive loop defers it to at most a few
times a second, so one upkeep serves many commits under load.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from journeyscope import conventions as cv
from journeyscope.warehouse import journey_facts
from journeyscope.warehouse.dialect import insert_ignoring, insert_replacing, insert_returning, update_returning
from journeyscope.warehouse.feedback_events import HAS_FEEDBACK
from journeyscope.warehouse.foreign_turns import foreign_turns_sql
from journeyscope.warehouse.journey_map import JourneyMap

__all__ = [
    "OUTCOME_AT",
    "OUTCOME_NOW",
    "RECORD_FIRST_SEQ",
    "STAGED",
    "STAGE_VISITS_EXPORT",
    "UPKEEP_JOURNEYS",
    "DUE_SCHEMA",
    "close_idle_visits",
    "due_from",
    "first_staged_seq",
    "outcome_at",
    "rebuild_visits",
    "update_due",
    "update_visits",
    "visited_journeys",
]

_MAP_STAGES = pa.schema([("journey_name", pa.string()), ("stage", pa.string()), ("pos", pa.int32())])
_MAP_TIMEOUTS = pa.schema([("journey_name", pa.string()), ("idle_s", pa.float64())])

def _idle_past(now: str) -> str:
    """The rule, once: an ``open`` visit whose journey is idle past its timeout (``open_until``) is abandoned."""
    return f"outcome = 'open' AND open_until <= {now}"


def outcome_at(outcome: str, open_until_ns: int | None, now_ns: int) -> str:
    """:func:`_idle_past` in Python, for a state rendered from rows held in memory (no query)."""
    if outcome == "open" and open_until_ns is not None and open_until_ns <= now_ns:
        return "abandoned"
    return outcome


#: The outcome as of the reader's clock (an ``open`` visit past its deadline is ``abandoned``).
OUTCOME_NOW = f"CASE WHEN {_idle_past('make_timestamp_ns(epoch_ns(now()))')} THEN 'abandoned' ELSE outcome END"
#: The same with "now" as a bound parameter (a warehouse with its own clock).
OUTCOME_AT = f"CASE WHEN {_idle_past('make_timestamp_ns(?)')} THEN 'abandoned' ELSE outcome END"

#: ``journeyscope export stage-visits``: the documented record, then the extra columns.
STAGE_VISITS_EXPORT = f"""
    SELECT journey_id, customer_id, journey_name, stage, visit,
           strftime(started_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS started_at,
           strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS ended_at,
           {OUTCOME_NOW} AS outcome, turns,
           channel, channels, cohort, spans, position, outcome_source,
           csat, ces, nps, feedback_comment, strftime(feedback_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS feedback_at,
           coalesce(feedback_responses, 0) AS feedback_responses
    FROM stage_visits ORDER BY journey_id, position
"""

#: Spans whose journeys' visits must be derived again when they arrive: staged spans, and feedback events
#: (which name their stage on the event, so may come on a span without one).
STAGED = f"(stage IS NOT NULL OR {HAS_FEEDBACK})"


#: Each visit of the ``touched`` journeys with what it is made of (spans, turns, stated outcome, feedback, journey
#: facts), before the windows over a journey's visits (:data:`_FROM_PLACED`). Two statements, the rows kept in a
#: temporary table between them: in one statement on a lake, whose scans the planner cannot size, the windows
#: cost several times what they cost over these rows stored. The spans' windows (where each visit starts) sort
#: only their keys, joined back to the spans after: sorting whole spans, turns and all, cost more than the join.
#: The spans carry how many turns they hold, not the turns (the foreign turns read theirs from ``spans``).
_PLACED = f"""
WITH s AS (
    SELECT sp.journey_id, sp.customer_id, sp.journey_name, sp.cohort, sp.stage, sp.channel,
           sp.start_time, coalesce(sp.end_time, sp.start_time) AS end_time, sp.seq, sp.outcome,
           sp.trace_id, sp.name, coalesce(len(sp.turns), 0) AS n_turns,
           (sp.name = '{cv.OUTCOME_SPAN}' AND n_turns = 0) AS outcome_only,
           (sp.name = '{cv.FEEDBACK_SPAN}' AND n_turns = 0) AS feedback_only
    FROM spans sp
    WHERE sp.seq >= $from_seq AND sp.stage IS NOT NULL AND sp.journey_id IN (SELECT journey_id FROM touched)
),
marked AS (
    SELECT journey_id, seq, start_time,
           CASE WHEN stage IS DISTINCT FROM lag(stage) OVER (PARTITION BY journey_id ORDER BY start_time, seq)
                THEN 1 ELSE 0 END AS brk
    FROM s WHERE NOT outcome_only AND NOT feedback_only
),
numbered AS (
    SELECT journey_id, seq,
           sum(brk) OVER (PARTITION BY journey_id ORDER BY start_time, seq ROWS UNBOUNDED PRECEDING) - 1 AS position
    FROM marked
),
runs AS (SELECT s.*, numbered.position FROM s JOIN numbered USING (journey_id, seq)),
derived_turns AS (
    SELECT journey_id, position, count(DISTINCT (trace_id, turn.role, turn.text)) AS n
    FROM (FOREIGN_TURNS)
    GROUP BY ALL
),
v AS (
    SELECT journey_id, position, any_value(stage) AS stage,
           min(start_time) AS started_at, max(end_time) AS ended_at,
           arg_max(outcome, (start_time, seq)) FILTER (WHERE outcome IS NOT NULL) AS event_outcome,
           coalesce(sum(n_turns) FILTER (WHERE name = 'journey.turn'), 0) AS own_turns,
           count(*) AS spans, min(seq) AS first_seq, max(seq) AS last_seq,
           arg_min(channel, (start_time, seq)) FILTER (WHERE channel IS NOT NULL) AS channel,
           list_sort(list(DISTINCT channel) FILTER (WHERE channel IS NOT NULL)) AS channels
    FROM runs GROUP BY journey_id, position
),
journey AS (
    SELECT journey_id,
           arg_min(customer_id, (start_time, seq)) FILTER (WHERE customer_id IS NOT NULL) AS customer_id,
           arg_min(journey_name, (start_time, seq)) FILTER (WHERE journey_name IS NOT NULL) AS journey_name,
           arg_min(cohort, (start_time, seq)) FILTER (WHERE cohort IS NOT NULL) AS cohort
    FROM s GROUP BY journey_id
),
stated AS (
    SELECT o.journey_id, v.position, arg_max(o.outcome, (o.start_time, o.seq)) AS outcome
    FROM (SELECT * FROM s WHERE outcome_only AND outcome IS NOT NULL) o
    ASOF JOIN v ON o.journey_id = v.journey_id AND o.stage = v.stage AND o.start_time >= v.started_at
    GROUP BY ALL
),
-- Feedback belongs to the stage it names (else its span's), in the latest visit of that stage that began at or
-- before it (else the stage's first visit: a clock running behind); the latest answer to each question wins.
feedback_items AS (
    SELECT journey_id, stage, epoch_ns("at") AS at_ns, (epoch_ns("at"), trace_id, span_id, event) AS latest,
           csat, ces, nps, comment
    FROM feedback WHERE journey_id IN (SELECT journey_id FROM touched)
),
feedback_owned AS (
    SELECT f.*, v.position AS at_position FROM feedback_items f
    ASOF LEFT JOIN v ON f.journey_id = v.journey_id AND f.stage = v.stage AND make_timestamp_ns(f.at_ns) >= v.started_at
),
feedback AS (
    SELECT f.journey_id, coalesce(f.at_position, fv.first_position) AS position,
           CAST(count(*) AS INTEGER) AS feedback_responses,
           arg_max(f.csat, f.latest) FILTER (WHERE f.csat IS NOT NULL) AS csat,
           arg_max(f.ces, f.latest) FILTER (WHERE f.ces IS NOT NULL) AS ces,
           arg_max(f.nps, f.latest) FILTER (WHERE f.nps IS NOT NULL) AS nps,
           arg_max(f.comment, f.latest) FILTER (WHERE f.comment IS NOT NULL) AS feedback_comment,
           make_timestamp_ns(max(f.at_ns)) AS feedback_at
    FROM feedback_owned f
    JOIN (SELECT journey_id, stage, min(position) AS first_position FROM v GROUP BY ALL) fv USING (journey_id, stage)
    GROUP BY ALL
),
first_entry AS (
    SELECT journey_id, stage, dense_rank() OVER (PARTITION BY journey_id ORDER BY min(position)) AS first_rank
    FROM v GROUP BY journey_id, stage
),
placed AS (
    SELECT v.*, j.customer_id, j.journey_name, j.cohort, m.pos AS map_pos, f.first_rank,
           coalesce(st.outcome, v.event_outcome) AS explicit_outcome,
           coalesce(d.n, 0) + v.own_turns AS turns,
           CAST(coalesce(t.idle_s, $default_idle_s) * 1e9 AS BIGINT) AS idle_ns,
           fb.feedback_responses, fb.csat, fb.ces, fb.nps, fb.feedback_comment, fb.feedback_at
    FROM v
    JOIN journey j USING (journey_id)
    JOIN first_entry f USING (journey_id, stage)
    LEFT JOIN map_stages m ON m.journey_name = j.journey_name AND m.stage = v.stage
    LEFT JOIN map_timeouts t ON t.journey_name = j.journey_name
    LEFT JOIN stated st USING (journey_id, position)
    LEFT JOIN derived_turns d USING (journey_id, position)
    LEFT JOIN feedback fb USING (journey_id, position)
)
SELECT * FROM placed
"""
_TOUCHED_SPANS = "AND sp.seq >= $from_seq AND sp.journey_id IN (SELECT journey_id FROM touched)"
#: :data:`_PLACED` when the warehouse holds GenAI log records, and when it holds none (the statement skips them).
_PLACED_BY_LOGS = {logs: _PLACED.replace("FOREIGN_TURNS", foreign_turns_sql("runs", _TOUCHED_SPANS, log_records=logs))
                   for logs in (True, False)}

#: The visits from :data:`_PLACED`'s rows (kept in ``js_placed``): numbering, outcomes and the journey-wide and
#: per-stage columns, each a window over a journey's visits (those in visit order computed together, in one pass)
#: where the order matters, and a GROUP BY joined back where it does not (the per-stage totals, the channel path
#: from a sorted list): a window, or an aggregate with its own ORDER BY, sorts every row it carries.
_FROM_PLACED = """
WITH w AS (
    SELECT *,
           row_number() OVER (PARTITION BY journey_id, stage ORDER BY position) AS visit,
           max(map_pos) OVER later AS later_map_pos,
           max(first_rank) OVER later AS later_rank,
           lead(started_at) OVER by_position AS next_started_at,
           lead(stage) OVER by_position AS next_stage,
           channel IS DISTINCT FROM lag(channel) OVER by_position AS channel_changed,
           epoch_ns(max(ended_at) OVER (PARTITION BY journey_id)) + idle_ns AS open_until_ns
    FROM js_placed
    WINDOW by_position AS (PARTITION BY journey_id ORDER BY position),
           later AS (PARTITION BY journey_id ORDER BY position ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
),
final AS (
SELECT journey_id, customer_id, journey_name, stage, CAST(visit AS INTEGER) AS visit,
       CAST(position AS INTEGER) AS position, started_at, ended_at,
       CASE
           WHEN explicit_outcome IS NOT NULL THEN explicit_outcome
           WHEN (map_pos IS NOT NULL AND later_map_pos > map_pos)
             OR (map_pos IS NULL AND later_rank > first_rank) THEN 'completed'
           WHEN next_started_at IS NOT NULL AND epoch_ns(next_started_at) - epoch_ns(ended_at) > idle_ns
               THEN 'abandoned'
           WHEN open_until_ns <= $now_ns THEN 'abandoned'
           ELSE 'open'
       END AS outcome,
       CASE WHEN explicit_outcome IS NOT NULL THEN 'explicit' ELSE 'derived' END AS outcome_source,
       CAST(turns AS INTEGER) AS turns, CAST(spans AS INTEGER) AS spans,
       channel, channels, cohort, make_timestamp_ns(open_until_ns) AS open_until, first_seq, last_seq,
       feedback_responses, csat, ces, nps, feedback_comment, feedback_at, next_stage, channel_changed
FROM w
),
paths AS (
    SELECT journey_id,
           array_to_string(list_transform(list_sort(list((position, coalesce(channel, '?')))
                                                    FILTER (WHERE channel_changed)), x -> x[2]), '→') AS channel_path
    FROM final GROUP BY journey_id
),
per_stage AS (
    SELECT journey_id, stage, max(visit) AS last_visit, bool_or(outcome = 'completed') AS stage_completed,
           sum(epoch(ended_at - started_at)) AS stage_seconds
    FROM final GROUP BY journey_id, stage
)
SELECT final.* EXCLUDE (channel_changed),
       visit = per_stage.last_visit AS last_of_stage,
       per_stage.stage_completed, per_stage.stage_seconds,
       paths.channel_path
FROM final JOIN paths USING (journey_id) JOIN per_stage USING (journey_id, stage)
"""


def _register_map(cur: duckdb.DuckDBPyConnection, journey_map: JourneyMap) -> None:
    stages = journey_map.stage_rows()
    timeouts = journey_map.timeout_rows()
    cur.register(
        "map_stages",
        pa.table([pa.array([r[i] for r in stages], f.type) for i, f in enumerate(_MAP_STAGES)], schema=_MAP_STAGES),
    )
    cur.register(
        "map_timeouts",
        pa.table(
            [pa.array([r[i] for r in timeouts], f.type) for i, f in enumerate(_MAP_TIMEOUTS)], schema=_MAP_TIMEOUTS
        ),
    )


# The visits about to be derived again, with their journey facts: read in the scan that finds them, then
# deleted by row id (a DELETE ... RETURNING costs several times the scan).
_BEFORE = """
CREATE OR REPLACE TEMP TABLE js_facts_before AS
SELECT rowid AS row_id, journey_id, journey_name, cohort FROM stage_visits
WHERE journey_id IN (SELECT journey_id FROM touched)
"""


def update_visits(cur: duckdb.DuckDBPyConnection, journey_map: JourneyMap, now_ns: int, touched_sql: str,
                  from_seq: int = 0) -> None:
    """Re-derive the visits of the journeys selected by ``touched_sql`` (a ``SELECT journey_id ...``).

    Runs on the caller's cursor, so inside its transaction: the visits of a
    batch are committed together with its spans, or not at all. The journey
    type and cohort its evaluations carry follow the new visits
    (:func:`journey_facts.refresh_changed`, from the rows deleted and what the INSERT returns).
    Only spans from ``seq`` ``from_seq`` on are read: the caller vouches that every staged span
    of these journeys is at or after it.
    """
    _register_map(cur, journey_map)
    cur.execute(f"CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT journey_id FROM ({touched_sql}) "
                "WHERE journey_id IS NOT NULL")
    cur.execute(_BEFORE)
    cur.execute("DELETE FROM stage_visits WHERE rowid IN (SELECT row_id FROM js_facts_before)")
    logs = cur.execute("SELECT EXISTS (SELECT 1 FROM log_records)").fetchall()[0][0]
    cur.execute(f"CREATE OR REPLACE TEMP TABLE js_placed AS {_PLACED_BY_LOGS[bool(logs)]}",
                {"default_idle_s": journey_map.default_idle_timeout_s, "from_seq": from_seq})
    after = insert_returning(cur, "stage_visits", _FROM_PLACED, "journey_id, journey_name, cohort",
                             params={"now_ns": now_ns})
    cur.execute("DROP TABLE js_placed")
    journey_facts.refresh_changed(cur, "js_facts_before", after)
    cur.execute("DROP TABLE js_facts_before")
    cur.execute("DROP TABLE touched")


def first_staged_seq(cur: duckdb.DuckDBPyConnection, staged_sql: str) -> int | None:
    """The lowest ``seq`` of ``staged_sql`` (``SELECT journey_id, seq`` of the staged spans whose visits new GenAI
    log records change), which the commit publishes (inside ingest; ``None``: none)."""
    row = cur.execute(f"SELECT min(seq) FROM ({staged_sql}) WHERE journey_id IS NOT NULL").fetchone()
    return None if row is None or row[0] is None else int(row[0])


#: Where the due journeys' staged spans begin: a journey derived before starts at its recorded first span; one that
#: was not has all its staged spans at or after the ``first_seq`` of the changes that listed it (unknown: read from
#: the start); the lesser of the two, as a lake's receivers commit out of ``seq`` order.
_DUE_FROM = """
SELECT coalesce(min(coalesce(least(f.first_seq, d.first_seq), 0)), 0)
FROM js_due d LEFT JOIN journey_first_seq f USING (journey_id)
"""

#: Journeys one upkeep transaction derives again at most, unless the caller says otherwise: what an upkeep
#: holds in memory (the spans it reads, the visits it deletes and inserts) grows with it, not with the backlog.
UPKEEP_JOURNEYS = 20_000

#: ``update_due``'s journeys: each journey and the lowest ``first_seq`` of the changes that listed it.
DUE_SCHEMA = pa.schema([("journey_id", pa.string()), ("first_seq", pa.int64())])


def due_from(cur: duckdb.DuckDBPyConnection) -> int:
    """The ``seq`` at or after which every staged span of the journeys in ``js_due`` (:data:`DUE_SCHEMA`) lies."""
    return int(cur.execute(_DUE_FROM).fetchall()[0][0])


def update_due(cur: duckdb.DuckDBPyConnection, journey_map: JourneyMap, now_ns: int, due: pa.Table) -> None:
    """Re-derive the visits of the journeys in ``due`` (:data:`DUE_SCHEMA`, from the change feed) in the caller's
    transaction, reading spans from :func:`due_from` on, and record where each one's staged spans begin for the
    next time (written only where that moves, so a round over live journeys already recorded rewrites none)."""
    cur.register("js_due", due)
    try:
        update_visits(cur, journey_map, now_ns, "SELECT journey_id FROM js_due", due_from(cur))
        insert_replacing(
            cur, "journey_first_seq",
            "SELECT d.journey_id, least(d.first_seq, f.first_seq) AS first_seq "
            "FROM js_due d LEFT JOIN journey_first_seq f USING (journey_id) "
            "WHERE d.first_seq IS NOT NULL AND (f.first_seq IS NULL OR d.first_seq < f.first_seq)", ("journey_id",))
    finally:
        cur.unregister("js_due")


#: Every journey's first staged span, for those not recorded yet (schema 10 fills the table with it; a full
#: re-derivation records it for journeys it derived for the first time).
RECORD_FIRST_SEQ = """
SELECT journey_id, min(seq) FROM spans WHERE stage IS NOT NULL AND journey_id IS NOT NULL GROUP BY journey_id
"""


#: Journeys per part of a full re-derivation: each part's DELETE/INSERT (and what they return) stays
#: bounded, and progress can be shown between parts.
REBUILD_PART_JOURNEYS = 100_000


def rebuild_visits(
    cur: duckdb.DuckDBPyConnection,
    journey_map: JourneyMap,
    now_ns: int,
    progress: Callable[[int, int], None] | None = None,
    owned: str = "true",
) -> None:
    """Derive every journey's visits again (a new journey map, or a migrated file), in the caller's transaction.

    Done in parts of about :data:`REBUILD_PART_JOURNEYS` journeys (by hash of the journey id), so memory
    stays bounded and ``progress(parts_done, parts)`` can tell a user waiting minutes at a million
    journeys how far it got. Ends by checking every evaluation's journey facts against the new visits.
    """
    row = cur.execute("SELECT count(DISTINCT journey_id) FROM spans WHERE stage IS NOT NULL").fetchone()
    parts = max(1, -(-int(row[0] if row else 0) // REBUILD_PART_JOURNEYS))
    if progress is not None:
        progress(0, parts)
    for part in range(parts):
        update_visits(cur, journey_map, now_ns, "SELECT DISTINCT journey_id FROM spans WHERE stage IS NOT NULL"
                      f" AND {owned} AND hash(journey_id) % {parts} = {part}")
        if progress is not None:
            progress(part + 1, parts)
    cur.execute(journey_facts.REFRESH_ALL)
    insert_ignoring(cur, "journey_first_seq", f"SELECT * FROM ({RECORD_FIRST_SEQ}) WHERE {owned}", ("journey_id",))


def close_idle_visits(cur: duckdb.DuckDBPyConnection, now_ns: int, owned: str = "true") -> list[str]:
    """Mark ``open`` visits whose journey has been idle past its timeout ``abandoned``; return their journeys
    (of those ``owned`` selects, a condition on ``journey_id``)."""
    rows = update_returning(cur, "stage_visits", "outcome = 'abandoned'",
                            f"{_idle_past('make_timestamp_ns(?)')} AND {owned}", "journey_id", params=[now_ns])
    return [r[0] for r in rows]


def visited_journeys(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Every journey with stage visits, in id order (online scoring's first pass)."""
    return [r[0] for r in cur.execute("SELECT DISTINCT journey_id FROM stage_visits ORDER BY 1").fetchall()]

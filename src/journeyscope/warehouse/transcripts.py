"""Stage-visit transcripts rebuilt from the warehouse, as the evaluators read them (``VisitContext``).

Turns come from ``spans.turns`` and ``log_records.turns`` (ingest has already normalised journeyscope
``journey.turn`` spans, OpenInference, traceAI and OTel GenAI spans and GenAI log records into
``{role, text, name}``; :mod:`~journeyscope.warehouse.foreign_turns` places the log records and applies
the rules that look across spans). A span's turns belong to the visit
its position falls in, found exactly as :mod:`journeyscope.warehouse.visits` derives visits (spans
with a stage ordered by ``(start_time, seq)``; a new run at each change of stage; stand-alone
outcome spans never start or break a run), so a transcript always lines up with its
``stage_visits`` row. Within a visit turns are ordered by ``(time, seq, index in span)`` (a turn's time: below).

Turns read from other conventions are kept once per trace (an AGENT span and its child LLM
spans repeat the same customer message and reply), and not at all when a ``journey.turn`` span of
the same trace already recorded them. Such a turn's time is the span's start for the customer's
message and its end for the agent's reply and tool calls (they exist only once the call returns).
Of a reply's (or tool call's, or tool result's) copies the transcript keeps one from a span that encloses
no other (the call that made it, not an ``invoke_agent`` or AGENT span repeating it), else the earliest:
clocks cannot decide between a parent and its calls (the OpenTelemetry JS SDK starts each span on the
wall clock's whole millisecond, so a parent can end a fraction of a millisecond before its last call)
while the nesting can. Of a customer message's copies it keeps the earliest.

Everything is done in DuckDB and fetched as Arrow, a batch of journeys per query.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa
from journeyscope.evaluators.transcript import StageVisit, Turn, VisitContext
from journeyscope import conventions as cv
from journeyscope.warehouse import visits as _visits
from journeyscope.warehouse.foreign_turns import foreign_turns_sql

__all__ = [
    "BATCH_TABLE", "VisitKey", "build_contexts", "load_contexts", "read_batch", "turns_sql", "visit_keys_sql",
]

#: Name of the one-column (``journey_id``) relation a caller registers to select journeys.
BATCH_TABLE = "js_batch_journeys"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def turns_sql(journeys: str | None = None) -> str:
    """A SELECT of every turn as ``(journey_id, position, role, text, name, stage, channel, ts, start_time, seq, idx)``.

    ``journeys`` names a relation with a ``journey_id`` column to select journeys (``None``: every
    journey). ``position`` is
    the visit's ``stage_visits.position``; ``(start_time, seq, idx)`` orders turns within a journey (``start_time`` is the turn's time, ``ts``).
    Runs are found on a narrow projection (no text carried through the window sort) and the turns
    joined back by ``seq``.
    """
    where = f"AND journey_id IN (SELECT journey_id FROM {journeys})" if journeys else ""
    where_sp = f"AND sp.journey_id IN (SELECT journey_id FROM {journeys})" if journeys else ""
    where_child = f"AND c.journey_id IN (SELECT journey_id FROM {journeys})" if journeys else ""
    return f"""
WITH s AS (
    SELECT journey_id, stage, start_time, seq,
           CASE WHEN stage IS DISTINCT FROM lag(stage) OVER (PARTITION BY journey_id ORDER BY start_time, seq)
                THEN 1 ELSE 0 END AS brk
    FROM spans
    WHERE stage IS NOT NULL AND journey_id IS NOT NULL {where}
      AND NOT (name = 'journey.stage.outcome' AND coalesce(len(turns), 0) = 0)
),
runs AS (
    SELECT journey_id, seq,
           sum(brk) OVER (PARTITION BY journey_id ORDER BY start_time, seq ROWS UNBOUNDED PRECEDING) - 1 AS position
    FROM s
),
own AS (
    SELECT r.journey_id, r.position, sp.stage, sp.channel, sp.trace_id, sp.start_time AS ts,
           sp.seq, unnest(sp.turns) AS turn, generate_subscripts(sp.turns, 1) AS idx
    FROM spans sp JOIN runs r ON r.seq = sp.seq AND r.journey_id = sp.journey_id
    WHERE sp.name = '{cv.TURN_SPAN}' AND len(sp.turns) > 0 {where_sp}
),
derived AS (
    SELECT * EXCLUDE (nth, named, repeat)
             REPLACE (struct_pack(role := turn.role, text := turn.text, name := named) AS turn)
    FROM (
        SELECT o.*,
               row_number() OVER same_turn AS nth,
               -- the copies of one turn: the first that names it (a tool result's message part may not, its
               -- execute_tool span does), whichever copy arrived first
               first_value(o.turn.name IGNORE NULLS) OVER (same_turn ROWS BETWEEN UNBOUNDED PRECEDING
                                                           AND UNBOUNDED FOLLOWING) AS named
        FROM ({foreign_turns_sql("runs", where_sp, children=where_child)}) o
        WHERE NOT EXISTS (SELECT 1 FROM own j
                          WHERE j.journey_id = o.journey_id AND j.position = o.position AND j.trace_id = o.trace_id
                            AND j.turn.role = o.turn.role AND j.turn.text = o.turn.text)
        WINDOW same_turn AS (PARTITION BY o.journey_id, o.position, o.trace_id, o.turn.role, o.turn.text
                             ORDER BY o.repeat, o.ts, o.seq, o.idx)
    ) WHERE nth = 1
)
SELECT journey_id, CAST(position AS INTEGER) AS position,
       turn.role AS role, coalesce(turn.text, '') AS text, turn.name AS name, stage, channel,
       ts, ts AS start_time, seq, idx
FROM (SELECT * FROM own UNION ALL SELECT * FROM derived)
"""


def visit_keys_sql(now_param: str = "$now", journeys: str | None = None) -> str:
    """A SELECT of every visit (of the journeys in relation ``journeys``, when given) with what decides
    whether it must be (re-)scored.

    Columns: ``journey_id, stage, visit, position, outcome`` (as of ``now_param``, nanoseconds),
    ``ai_consent`` (false when any span of the journey carries ``customer.consent`` without
    ``ai_evaluation``) and ``input_hash``: an MD5 of everything an evaluator is given about the
    visit and the journey's earlier visits (turns with role, text, name, stage, channel and time;
    each visit's stage, number, channel, outcome and times).
    """
    outcome = _visits.OUTCOME_AT.replace("?", now_param)
    only = f"AND journey_id IN (SELECT journey_id FROM {journeys})" if journeys else ""
    only_sv = only.replace("AND journey_id", "AND sv.journey_id")
    return f"""
WITH tt AS ({turns_sql(journeys)}),
per_visit AS (
    SELECT journey_id, position,
           md5(string_agg(concat_ws(chr(31), role, text, coalesce(name, ''), stage, coalesce(channel, ''),
                                    coalesce(CAST(epoch_us(ts) AS VARCHAR), '')), chr(30) ORDER BY start_time, seq, idx)) AS turns_md5
    FROM tt GROUP BY ALL
),
v AS (
    SELECT sv.journey_id, sv.stage, sv.visit, sv.position, {outcome} AS outcome,
           md5(concat_ws(chr(31), sv.stage, CAST(sv.visit AS VARCHAR), coalesce(sv.customer_id, ''),
                         coalesce(sv.journey_name, ''), coalesce(sv.channel, ''), {outcome},
                         CAST(epoch_us(sv.started_at) AS VARCHAR), CAST(epoch_us(sv.ended_at) AS VARCHAR),
                         coalesce(pv.turns_md5, ''))) AS visit_md5
    FROM stage_visits sv LEFT JOIN per_visit pv USING (journey_id, position)
    WHERE true {only_sv}
),
consent AS (
    SELECT journey_id,
           NOT bool_or(consent IS NOT NULL AND NOT list_contains(string_split(consent, ','), 'ai_evaluation'))
               AS ai_consent
    FROM spans WHERE journey_id IS NOT NULL {only} GROUP BY journey_id
)
SELECT v.journey_id, v.stage, v.visit, v.position, v.outcome, coalesce(c.ai_consent, true) AS ai_consent,
       md5(string_agg(h.visit_md5, ',' ORDER BY h.position)) AS input_hash
FROM v
JOIN v AS h ON h.journey_id = v.journey_id AND h.position <= v.position
LEFT JOIN consent c ON c.journey_id = v.journey_id
GROUP BY v.journey_id, v.stage, v.visit, v.position, v.outcome, c.ai_consent
"""


@dataclass(frozen=True, slots=True, order=True)
class VisitKey:
    """Which visit: the journey and the visit's ``stage_visits.position``."""

    journey_id: str
    position: int


def _visits_sql(now_param: str) -> str:
    return f"""
SELECT journey_id, stage, visit, position, customer_id, journey_name, channel,
       epoch_us(started_at) AS started_at, epoch_us(ended_at) AS ended_at,
       {_visits.OUTCOME_AT.replace('?', now_param)} AS outcome
FROM stage_visits WHERE journey_id IN (SELECT journey_id FROM {BATCH_TABLE})
ORDER BY journey_id, position
"""


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def _times(table: pa.Table, name: str) -> list[datetime | None]:
    """Microseconds since the epoch (UTC) as aware datetimes (much faster than Arrow's own conversion)."""
    return [None if us is None else _EPOCH + timedelta(microseconds=us) for us in table.column(name).to_pylist()]


def load_contexts(cur: duckdb.DuckDBPyConnection, journey_ids: Sequence[str], now_ns: int,
                  wanted: Iterable[VisitKey] | None = None) -> dict[VisitKey, VisitContext]:
    """The ``VisitContext`` of visits of ``journey_ids`` (all, or those in ``wanted``), by key.

    Each context's ``history`` is the journey's earlier visits, oldest first.
    """
    if not journey_ids:
        return {}
    return build_contexts(*read_batch(cur, journey_ids, now_ns), wanted)


def read_batch(
    cur: duckdb.DuckDBPyConnection, journey_ids: Sequence[str], now_ns: int
) -> tuple[pa.Table, pa.Table]:
    """The visits and turns of ``journey_ids`` as Arrow tables, for :func:`build_contexts`.

    Two queries for the whole batch, read in one transaction so they agree. Kept apart from
    building the contexts so that the Python objects can be built in another process (the
    server's workers) from the tables, which cross a process boundary cheaply.
    """
    cur.execute("BEGIN TRANSACTION")
    try:
        # The journeys as a temporary table, not a registered Arrow table: DuckDB plans the turns query, which
        # names them four times, in half the time over a table of its own.
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {BATCH_TABLE} AS SELECT unnest($ids::VARCHAR[]) AS journey_id",
                    {"ids": list(journey_ids)})
        visits = cur.execute(_visits_sql("$now"), {"now": now_ns}).to_arrow_table()
        turns = cur.execute(
            f"SELECT journey_id, position, role, text, epoch_us(ts) AS ts, stage, channel, name "
            f"FROM ({turns_sql(BATCH_TABLE)}) "
            "ORDER BY journey_id, start_time, seq, idx"
        ).to_arrow_table()
        cur.execute(f"DROP TABLE {BATCH_TABLE}")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # the temporary table goes with the transaction
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")
    return visits, turns


def build_contexts(visits: pa.Table, turns: pa.Table,
                   wanted: Iterable[VisitKey] | None = None) -> dict[VisitKey, VisitContext]:
    """The contexts of the visits in :func:`read_batch`'s tables (all, or those in ``wanted``), by key."""
    by_visit: dict[tuple[str, int], list[Turn]] = {}
    cols = [_times(turns, n) if n == "ts" else _column(turns, n)
            for n in ("journey_id", "position", "role", "text", "ts", "stage", "channel", "name")]
    for jid, pos, role, text, ts, stage, channel, name in zip(*cols):
        by_visit.setdefault((jid, pos), []).append(Turn(role, text, ts, stage, channel, name))
    wanted_set = set(wanted) if wanted is not None else None
    out: dict[VisitKey, VisitContext] = {}
    journey: list[StageVisit] = []
    current: str | None = None
    vcols = [_times(visits, n) if n.endswith("_at") else _column(visits, n)
             for n in ("journey_id", "stage", "visit", "position", "customer_id", "journey_name", "channel",
                       "started_at", "ended_at", "outcome")]
    for jid, stage, visit, pos, customer, jname, channel, started, ended, outcome in zip(*vcols):
        if jid != current:
            journey, current = [], jid
        sv = StageVisit(jid, stage, visit, tuple(by_visit.get((jid, pos), ())), customer, jname, channel,
                        started, ended, outcome)
        key = VisitKey(jid, pos)
        if wanted_set is None or key in wanted_set:
            out[key] = VisitContext(sv, tuple(journey))
        journey.append(sv)
    return out

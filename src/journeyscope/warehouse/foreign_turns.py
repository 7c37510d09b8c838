"""Turns recorded by other instrumentations (spans and GenAI log records), as stage visits and transcripts read them.

:mod:`~journeyscope.warehouse.turns` reads each span's and each log record's turns at ingest; what
depends on *other* rows is decided here, when visits are derived and transcripts are built, so the
answer is the same whichever row arrives first:

- a log record's turns belong to the span whose ``(trace_id, span_id)`` it carries, at the record's
  time; a record stored before its span is placed once the span arrives (the span's ingest re-derives
  its journey), and one stored after its span marks that span's journey for upkeep (:func:`insert`);
- per-message input records of one call (``gen_ai.user.message``, ...) repeat the conversation so far:
  those up to the call's last ``gen_ai.assistant.message`` are history and left out, as for a span's
  input messages;
- ``input.value``/``output.value`` turns of OpenInference AGENT or CHAIN spans are a fallback: left out
  when another span or a log record of the same trace carries the conversation's messages;
- with ``children``, each reply, tool call and tool result says whether it is a *repeat*: read from a span that
  encloses others (the parent of another span of its trace), as an ``invoke_agent`` or AGENT span repeats
  what its calls answered; a transcript keeps the calls' copy (:mod:`~journeyscope.warehouse.transcripts`).
  The customer's message is no repeat: the enclosing span received it first.

:mod:`~journeyscope.warehouse.visits` counts these turns and :mod:`~journeyscope.warehouse.transcripts`
lists them from the one SELECT of :func:`foreign_turns_sql`.
"""

from __future__ import annotations

from journeyscope import conventions as cv
from journeyscope.warehouse.turns import FALLBACK_KINDS

__all__ = ["foreign_turns_sql"]

_KINDS = ", ".join(f"'{kind}'" for kind in FALLBACK_KINDS)


def foreign_turns_sql(runs: str, span_filter: str = "", *, log_records: bool = True,
                      children: str | None = None) -> str:
    """A SELECT of the turns other conventions recorded, one row per turn.

    Columns ``(journey_id, position, stage, channel, trace_id, ts, seq, turn, idx)``.
    ``runs`` names a relation of ``(journey_id, seq, position)``: the staged spans and the visit each
    falls in; ``span_filter`` (``AND ...`` on ``sp``, the spans) narrows what is read. ``ts`` is when
    the turn happened: a customer's message when its span (the model call) starts, the agent's reply,
    tool calls and tool results when their span ends (they exist only then; an ``invoke_agent`` span
    that repeats its calls' answer ends after them); a log record's turns at the record's time.
    Within a visit, ``(ts, seq, idx)`` orders the turns. Without ``log_records`` (the caller found the table
    empty, in its transaction) the records' side is a constant-false filter the planner drops with its scans: an
    empty table does not stop it from joining every span to the runs first, on a lake whose scans it cannot size.
    With ``children`` (``AND ...`` on ``c``: which spans to look among for the turns' spans' children) a last
    column ``repeat`` is true for a turn dated at the end of a span that is another span's parent (false for log
    records' turns).
    """
    encloses = f""",
           EXISTS (SELECT 1 FROM spans c WHERE c.trace_id = o.trace_id AND c.parent_span_id = o.span_id
                   {children}) AS encloses""" if children is not None else ""
    return f"""
WITH fr_spans AS (
    SELECT r.journey_id, r.position, sp.stage, sp.channel, sp.trace_id, sp.start_time,
           coalesce(sp.end_time, sp.start_time) AS end_time, sp.seq, sp.turns, sp.span_id,
           coalesce(json_extract_string(sp.attributes, '$."openinference.span.kind"') IN ({_KINDS}), false)
               AS fallback
    FROM spans sp JOIN {runs} r ON r.seq = sp.seq AND r.journey_id = sp.journey_id
    WHERE sp.name <> '{cv.TURN_SPAN}' AND len(sp.turns) > 0 {span_filter}
),
fr_records AS (
    SELECT r.journey_id, r.position, sp.stage, sp.channel, l.trace_id, l.span_id, l.time, l.seq, l.turns,
           l.name, l.side,
           max(l.seq) FILTER (WHERE l.name = 'gen_ai.assistant.message' AND l.side = 'input')
               OVER (PARTITION BY l.trace_id, l.span_id) AS history_to
    FROM log_records l
    JOIN spans sp ON sp.trace_id = l.trace_id AND sp.span_id = l.span_id
    JOIN {runs} r ON r.seq = sp.seq AND r.journey_id = sp.journey_id
    WHERE {"true" if log_records else "false"} {span_filter}
),
fr_all AS (
    SELECT * FROM fr_spans
    UNION ALL
    SELECT journey_id, position, stage, channel, trace_id, time, time, seq, turns, NULL, false
    FROM fr_records
    WHERE len(turns) > 0 AND (side <> 'input' OR history_to IS NULL OR seq > history_to)
),
fr AS (
    SELECT * EXCLUDE (fallback){encloses} FROM fr_all o
    WHERE NOT o.fallback OR NOT EXISTS (SELECT 1 FROM fr_all x WHERE x.trace_id = o.trace_id AND NOT x.fallback)
)
SELECT journey_id, position, stage, channel, trace_id,
       CASE WHEN turn.role = 'customer' THEN start_time ELSE end_time END AS ts, seq, turn, idx{
           ", encloses AND turn.role <> 'customer' AS repeat" if children is not None else ""}
FROM (SELECT *, unnest(turns) AS turn, generate_subscripts(turns, 1) AS idx FROM fr)
"""


"""The customers' survey answers, one row per ``journey.feedback`` event, taken from spans as they are stored.

Ingest copies each new span's feedback events into the ``feedback`` table (in the
same transaction, from the batch already redacted), so deriving stage visits
reads a small table by journey instead of every span's events: upkeep costs the
same with or without surveys. Scores are kept only on their scale (ingest has
already left out the rest: :func:`journeyscope.conventions.clean_feedback`);
an event with no score and no comment is not an answer. Erasure and retention
reach the table by its ``journey_id``/``customer_id`` like every other.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from journeyscope import conventions as cv

__all__ = ["FEEDBACK_KEY", "FEEDBACK_TABLE", "HAS_FEEDBACK", "STORE_FEEDBACK", "feedback_rows", "may_hold_feedback"]

#: Spans that may carry a ``journey.feedback`` event (its name, quoted, in the events' JSON text).
_FEEDBACK_MARK = '"journey.feedback"'
HAS_FEEDBACK = f"events LIKE '%{_FEEDBACK_MARK}%'"


def may_hold_feedback(spans: pa.Table) -> bool:
    """:data:`HAS_FEEDBACK` of any of ``spans`` (an Arrow table with the span columns), asked without a query:
    ingest skips its feedback statement for the batches (nearly all) that carry no answer."""
    return bool(pc.any(pc.match_substring(spans["events"], _FEEDBACK_MARK)).as_py())

FEEDBACK_TABLE = """
CREATE TABLE IF NOT EXISTS feedback (
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    event           INTEGER NOT NULL,
    journey_id      VARCHAR NOT NULL,
    customer_id     VARCHAR,
    stage           VARCHAR NOT NULL,
    "at"            TIMESTAMP_NS NOT NULL,
    csat            DOUBLE,
    ces             DOUBLE,
    nps             DOUBLE,
    comment         VARCHAR,
    PRIMARY KEY (trace_id, span_id, event)
);
CREATE INDEX IF NOT EXISTS feedback_journey ON feedback (journey_id);
"""


def _score(measure: str) -> str:
    key, low, high = cv.FEEDBACK_SCALES[measure]
    value = f"""TRY_CAST(e->'attributes'->>'$."{key}"' AS DOUBLE)"""
    return f"CASE WHEN {value} BETWEEN {low} AND {high} THEN {value} END AS {measure}"


def feedback_rows(source: str) -> str:
    """``SELECT`` the feedback table's rows from the spans of ``source`` (a table or view with the span columns)."""
    return f"""
SELECT trace_id, span_id, event, journey_id, customer_id, stage, "at", csat, ces, nps, comment FROM (
    SELECT trace_id, span_id, CAST(i AS INTEGER) AS event, journey_id, customer_id,
           coalesce(e->'attributes'->>'$."{cv.JOURNEY_STAGE}"', span_stage) AS stage,
           make_timestamp_ns(coalesce(nullif(TRY_CAST(e->>'time' AS BIGINT), 0), epoch_ns(start_time))) AS "at",
           {_score("csat")}, {_score("ces")}, {_score("nps")},
           nullif(e->'attributes'->>'$."{cv.FEEDBACK_COMMENT}"', '') AS comment, e->>'name' AS name
    FROM (SELECT trace_id, span_id, journey_id, customer_id, stage AS span_stage, start_time,
                 unnest(CAST(events AS JSON[])) AS e, generate_subscripts(CAST(events AS JSON[]), 1) AS i
          FROM {source} WHERE {HAS_FEEDBACK} AND journey_id IS NOT NULL)
)
WHERE name = '{cv.FEEDBACK_EVENT}' AND stage IS NOT NULL
  AND (csat IS NOT NULL OR ces IS NOT NULL OR nps IS NOT NULL OR comment IS NOT NULL)
"""


#: Ingest: the new spans' answers (``incoming``: the batch just stored; a retried span's are already there).
STORE_FEEDBACK = feedback_rows("incoming")
#: The feedback table's key.
FEEDBACK_KEY = ("trace_id", "span_id", "event")

"""The warehouse schema and its migrations.

The schema version lives in the ``meta`` table. Opening a file migrates it
forward step by step; a file written by a newer journeyscope is refused with a
clear error instead of being half-understood.
"""

from __future__ import annotations

import duckdb

from journeyscope.errors import WarehouseError
from journeyscope.warehouse.dialect import on_lake, set_meta
from journeyscope.warehouse.feedback_events import FEEDBACK_TABLE, feedback_rows
from journeyscope.warehouse.journey_facts import REFRESH_ALL
from journeyscope.warehouse.lake import LAYOUT, LAYOUT_VERSION, adapt_ddl
from journeyscope.warehouse.visits import RECORD_FIRST_SEQ

SCHEMA_VERSION = 18

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS spans (
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    parent_span_id  VARCHAR,
    name            VARCHAR NOT NULL,
    kind            VARCHAR,
    start_time      TIMESTAMP_NS NOT NULL,
    end_time        TIMESTAMP_NS,
    status_code     VARCHAR,
    status_message  VARCHAR,
    customer_id     VARCHAR,
    journey_id      VARCHAR,
    journey_name    VARCHAR,
    stage           VARCHAR,
    channel         VARCHAR,
    cohort          VARCHAR,
    consent         VARCHAR,
    outcome         VARCHAR,
    turns           STRUCT(role VARCHAR, text VARCHAR, name VARCHAR)[],
    service_name    VARCHAR,
    scope_name      VARCHAR,
    attributes      JSON,
    events          JSON,
    links           JSON,
    resource        JSON,
    seq             BIGINT NOT NULL,
    ingested_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
"""

# v2: stage visits, derived from spans and kept up to date by ingest (journeyscope.warehouse.visits).
# No primary key: a batch deletes and re-inserts the visits of the journeys it touched, and
# readers select by journey; ``open_until`` lets a reader close idle visits by its own clock.
_V2 = """
CREATE TABLE IF NOT EXISTS stage_visits (
    journey_id      VARCHAR NOT NULL,
    customer_id     VARCHAR,
    journey_name    VARCHAR,
    stage           VARCHAR NOT NULL,
    visit           INTEGER NOT NULL,
    position        INTEGER NOT NULL,
    started_at      TIMESTAMP_NS NOT NULL,
    ended_at        TIMESTAMP_NS NOT NULL,
    outcome         VARCHAR NOT NULL,
    outcome_source  VARCHAR NOT NULL,
    turns           INTEGER NOT NULL,
    spans           INTEGER NOT NULL,
    channel         VARCHAR,
    channels        VARCHAR[],
    cohort          VARCHAR,
    open_until      TIMESTAMP_NS,
    first_seq       BIGINT,
    last_seq        BIGINT
);
-- Journeys whose visits must be derived again: written in the same transaction as their spans,
-- so a crash between a span commit and the visit upkeep loses no work.
CREATE TABLE IF NOT EXISTS visits_pending (journey_id VARCHAR NOT NULL);
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

# v3: evaluator results, one row per (journey_id, stage, visit, evaluator), written by
# journeyscope.warehouse.evaluations; and the LLM judge's verdict cache (key -> parsed verdict; journey_id
# of the visit that paid for it, so erasing a journey erases the judge's words about it too).
_V3 = """
CREATE TABLE IF NOT EXISTS evaluations (
    journey_id      VARCHAR NOT NULL,
    stage           VARCHAR NOT NULL,
    visit           INTEGER NOT NULL,
    evaluator       VARCHAR NOT NULL,
    version         VARCHAR NOT NULL,
    engine          VARCHAR NOT NULL,
    score           DOUBLE,
    passed          BOOLEAN,
    label           VARCHAR,
    reason          VARCHAR,
    evidence        JSON,
    error           VARCHAR,
    input_hash      VARCHAR NOT NULL,
    evaluated_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (journey_id, stage, visit, evaluator)
);

CREATE TABLE IF NOT EXISTS llm_verdicts (
    key             VARCHAR PRIMARY KEY,
    verdict         JSON NOT NULL,
    journey_id      VARCHAR,
    created_at      TIMESTAMP NOT NULL
);
"""

# v4: privacy (journeyscope.privacy, warehouse/compliance.py): what redaction did per span, type and action,
# counts only, never values (keyed per span so a retried batch is logged once); and the audit log of
# erasures, retention runs and privacy-policy changes (who, when, what, how many rows; never erased values).
_V4 = """
CREATE TABLE IF NOT EXISTS redaction_log (
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    customer_id     VARCHAR,
    journey_id      VARCHAR,
    journey_name    VARCHAR,
    stage           VARCHAR,
    pii_type        VARCHAR NOT NULL,
    action          VARCHAR NOT NULL,
    count           BIGINT NOT NULL,
    first_seen_at   TIMESTAMP_NS,
    logged_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (trace_id, span_id, pii_type, action)
);

CREATE TABLE IF NOT EXISTS audit_log (
    id              BIGINT PRIMARY KEY,
    "at"            TIMESTAMP NOT NULL,
    actor           VARCHAR NOT NULL,
    action          VARCHAR NOT NULL,
    rows            BIGINT NOT NULL,
    detail          JSON
);
"""

# v5: per-stage facts on each visit, so funnels count journeys without grouping by journey
# (a million journeys in well under a second): whether this is the journey's last visit to the
# stage, whether any of its visits to the stage completed, and its total time in the stage.
# Visits are derived again on the next writable open (the map digest is forgotten).
_V5 = """
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS last_of_stage BOOLEAN;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS stage_completed BOOLEAN;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS stage_seconds DOUBLE;
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

# v6: point lookups by journey (the API's journey state and routing, on every turn) use an index
# instead of scanning every visit: 47 ms -> 0.8 ms at a million journeys.
_V6 = """
CREATE INDEX IF NOT EXISTS stage_visits_journey ON stage_visits (journey_id);
CREATE INDEX IF NOT EXISTS evaluations_journey ON evaluations (journey_id);
"""

# v7: the stage each visit led to, so the transition graph is a GROUP BY instead of a window over every
# journey (seconds at a million journeys). Visits are derived again on the next writable open.
_V7 = """
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS next_stage VARCHAR;
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

# v8: the journey's channel sequence (``chat→email``) on each of its visits, so channel-mix lift counts journeys
# without grouping every visit by journey (8.6 s -> well under a second at a million journeys). Visits are
# derived again on the next writable open.
_V8 = """
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS channel_path VARCHAR;
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

# v9: each evaluation carries its visit's journey type and cohort (journeyscope.warehouse.journey_facts), so the
# funnel's and the stage page's scores filter without joining 15 M evaluations to their visits (seconds at a
# million journeys). Filled here from the visits; kept by the evaluation writes and the visit upkeep.
_V9 = f"""
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS journey_name VARCHAR;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS cohort VARCHAR;
{REFRESH_ALL};
"""

# v10: where each journey's staged spans begin in arrival order (``seq``), and the first ``seq`` of each
# pending batch, so stage-visit upkeep reads spans from the earliest touched journey's first span on (DuckDB's
# zone maps skip older row groups) instead of every span stored: 1.1 s per upkeep at 9.4 M spans, however few
# journeys it re-derives. A journey not listed here yet has all its staged spans in ``visits_pending``.
_V10 = f"""
ALTER TABLE IF EXISTS visits_pending ADD COLUMN IF NOT EXISTS first_seq BIGINT;
CREATE TABLE IF NOT EXISTS journey_first_seq (journey_id VARCHAR PRIMARY KEY, first_seq BIGINT NOT NULL);
INSERT OR IGNORE INTO journey_first_seq {RECORD_FIRST_SEQ};
"""

# v11: what customers reported about each stage visit (``journey.feedback`` events: the latest CSAT, effort and
# NPS answer, comment and time, and how many responses), derived with the visits (journeyscope.warehouse.visits),
# so feedback per stage is a GROUP BY of the visits and goes wherever they go (filters, erasure, retention).
# Visits are derived again on the next writable open.
_V11 = """
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS feedback_responses INTEGER;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS csat DOUBLE;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS ces DOUBLE;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS nps DOUBLE;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS feedback_comment VARCHAR;
ALTER TABLE stage_visits ADD COLUMN IF NOT EXISTS feedback_at TIMESTAMP_NS;
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

# v12: monitors' alerts (journeyscope.warehouse.monitors.alerts): one row per alarm of a monitor on a scope, firing
# until resolved, with its evidence; the failing visits behind it (keyed by journey, so erasure removes them); and
# every webhook delivery attempt.
_V12 = """
CREATE TABLE IF NOT EXISTS alerts (
    id              VARCHAR PRIMARY KEY,
    monitor         VARCHAR NOT NULL,
    signal          VARCHAR NOT NULL,
    journey_name    VARCHAR,
    stage           VARCHAR,
    cohort          VARCHAR,
    channel         VARCHAR,
    evaluator       VARCHAR,
    status          VARCHAR NOT NULL,
    fired_at        TIMESTAMP NOT NULL,
    resolved_at     TIMESTAMP,
    value           DOUBLE,
    baseline        DOUBLE,
    n               BIGINT,
    evidence        JSON,
    monitors_version VARCHAR,
    updated_at      TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_visits (
    alert_id        VARCHAR NOT NULL,
    journey_id      VARCHAR,
    stage           VARCHAR,
    visit           INTEGER,
    observed_at     VARCHAR,
    reason          VARCHAR
);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id        VARCHAR NOT NULL,
    event           VARCHAR NOT NULL,
    url             VARCHAR NOT NULL,
    attempt         INTEGER NOT NULL,
    attempted_at    TIMESTAMP NOT NULL,
    status          VARCHAR NOT NULL,
    http_status     INTEGER,
    error           VARCHAR
);
"""

# v13: people's verdicts on stage visits (journeyscope.warehouse.reviews), one row per review ever made: a later
# review of the same (visit, evaluator, reviewer) sets ``superseded_at`` on the earlier one, which is kept as
# history; the evaluator thresholds adopted from them (journeyscope.warehouse.thresholds), one row per adoption
# (``version``), never updated; the version that decided each evaluation's ``passed`` (NULL: the evaluator's
# built-in threshold); and scores of reviewed visits by the engine the evaluations were not made with, so local
# and llm agreement are measured on the same reviews.
_V13 = """
CREATE TABLE IF NOT EXISTS reviews (
    id              BIGINT PRIMARY KEY,
    journey_id      VARCHAR NOT NULL,
    stage           VARCHAR NOT NULL,
    visit           INTEGER NOT NULL,
    evaluator       VARCHAR NOT NULL,
    passed          BOOLEAN NOT NULL,
    reviewer        VARCHAR NOT NULL,
    note            VARCHAR,
    source          VARCHAR NOT NULL,
    reviewed_at     TIMESTAMP NOT NULL,
    superseded_at   TIMESTAMP
);
CREATE INDEX IF NOT EXISTS reviews_journey ON reviews (journey_id);

CREATE TABLE IF NOT EXISTS evaluator_thresholds (
    version         BIGINT PRIMARY KEY,
    evaluator       VARCHAR NOT NULL,
    engine          VARCHAR NOT NULL,
    journey_name    VARCHAR,
    stage           VARCHAR,
    threshold       DOUBLE NOT NULL,
    previous        DOUBLE,
    previous_version BIGINT,
    reason          VARCHAR NOT NULL,
    actor           VARCHAR NOT NULL,
    adopted_at      TIMESTAMP NOT NULL,
    reviews         INTEGER
);
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS threshold_version BIGINT;

CREATE TABLE IF NOT EXISTS review_scores (
    journey_id      VARCHAR NOT NULL,
    stage           VARCHAR NOT NULL,
    visit           INTEGER NOT NULL,
    evaluator       VARCHAR NOT NULL,
    engine          VARCHAR NOT NULL,
    version         VARCHAR NOT NULL,
    score           DOUBLE,
    passed          BOOLEAN,
    error           VARCHAR,
    threshold_version BIGINT,
    scored_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (journey_id, stage, visit, evaluator, engine)
);
"""

# v14: GenAI log records (OTLP logs: the official OpenAI instrumentation's message events), each with the turns
# read from it, kept apart from their span and joined to it by (trace_id, span_id) when transcripts and visits
# are built, so a record stored before its span arrives is placed as soon as the span is (warehouse.log_records).
# ``record_id`` (an MD5 of the record's bytes, with its resource and scope) stores a retried batch once.
_V14 = """
CREATE TABLE IF NOT EXISTS log_records (
    record_id       VARCHAR PRIMARY KEY,
    trace_id        VARCHAR NOT NULL,
    span_id         VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,
    time            TIMESTAMP_NS NOT NULL,
    side            VARCHAR NOT NULL,
    turns           STRUCT(role VARCHAR, text VARCHAR, name VARCHAR)[],
    severity        VARCHAR,
    attributes      JSON,
    body            JSON,
    resource        JSON,
    scope_name      VARCHAR,
    seq             BIGINT NOT NULL,
    ingested_at     TIMESTAMP NOT NULL
);
"""

# v15: every ``journey.feedback`` event, one row each (journeyscope.warehouse.feedback_events), copied from spans at
# ingest and filled here from the spans stored so far: visit upkeep reads this small table by journey instead of
# every span's events. The visits derived from the events under v11 hold the same answers.
_V15 = f"""
{FEEDBACK_TABLE}
INSERT OR IGNORE INTO feedback {feedback_rows("spans")};
"""

# v16: the change feed (journeyscope.warehouse.feed): what each commit changed, by generation, and how far each
# derived-data consumer (online scoring, monitors) has read it, so a restarted server resumes where it stopped.
_V16 = """
CREATE TABLE IF NOT EXISTS changes (
    generation      BIGINT NOT NULL,
    kind            VARCHAR NOT NULL,
    journey_ids     VARCHAR[],
    committed_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (generation, kind)
);
CREATE TABLE IF NOT EXISTS feed_positions (
    consumer        VARCHAR PRIMARY KEY,
    generation      BIGINT NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
"""

# v17: the ingest ledger of a lake (journeyscope.warehouse.lake): one row per stored batch, keyed by a hash of its
# span and log-record ids and written in the batch's own transaction, so a retried batch is stored once where no
# primary key refuses it (many receivers racing are serialised per key by an advisory lock). The embedded file's
# keys do that job, so it leaves the table empty. No customer data: erasure has nothing to remove here.
_V17 = """
CREATE TABLE IF NOT EXISTS ingest_ledger (
    batch_key       VARCHAR NOT NULL,
    spans           BIGINT NOT NULL,
    committed_at    TIMESTAMP NOT NULL
);
"""

# v18: stage-visit upkeep follows the change feed (Warehouse.update_visits) instead of a backlog table of its
# own: each commit's change rows carry the first ``seq`` of the spans it stored, which is all the backlog
# held beyond the journeys the feed already lists, and the backlog's insert was a Parquet file and a round of catalog
# writes per lake commit. Visits are derived again on the next writable open, which records where upkeep starts.
_V18 = """
ALTER TABLE changes ADD COLUMN IF NOT EXISTS first_seq BIGINT;
DROP TABLE IF EXISTS visits_pending;
DELETE FROM meta WHERE key = 'journey_map_digest';
"""

_MIGRATIONS: dict[int, str] = {
    1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V6, 7: _V7, 8: _V8, 9: _V9, 10: _V10, 11: _V11, 12: _V12, 13: _V13,
    14: _V14, 15: _V15, 16: _V16, 17: _V17, 18: _V18,
}


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of an open file (0 for an empty file)."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' AND table_schema = 'main'"
    ).fetchone()
    if not has_meta or not has_meta[0]:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def file_version(path: str) -> int | None:
    """The schema version of the file at ``path`` (0: no journeyscope tables), opened read-only for the question;
    ``None`` when it cannot be opened at all (not a DuckDB file, or held by a writer): why a file was refused."""
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.Error:
        return None
    try:
        return current_version(con)
    except duckdb.Error:
        return None
    finally:
        con.close()


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; return the version found before."""
    found = current_version(con)
    if found > SCHEMA_VERSION:
        raise WarehouseError(
            f"this warehouse has schema version {found}, newer than this journeyscope understands "
            f"({SCHEMA_VERSION}); upgrade journeyscope"
        )
    if on_lake(con):
        _migrate_lake(con, found)
        return found
    for version in range(found + 1, SCHEMA_VERSION + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(_MIGRATIONS[version])
            set_meta(con, "schema_version", str(version))
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return found


def _migrate_lake(con: duckdb.DuckDBPyConnection, found: int) -> None:
    """:func:`migrate` on a lake: every step in one transaction (one catalog snapshot, not one per step: each
    commit is a round of catalog writes), the DDL adapted (:func:`~journeyscope.warehouse.lake.adapt_ddl`), then
    the lake's physical layout (:data:`~journeyscope.warehouse.lake.LAYOUT`) when it records an older one: a new
    lake gets it with its tables, an existing one from the first writer of this version to open it."""
    layout = _lake_layout(con) if found else 0
    if found == SCHEMA_VERSION and layout == LAYOUT_VERSION:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            con.execute(adapt_ddl(_MIGRATIONS[version]))
        set_meta(con, "schema_version", str(SCHEMA_VERSION))
        if layout != LAYOUT_VERSION:
            for statement in LAYOUT:
                con.execute(statement)
            set_meta(con, "lake_layout", str(LAYOUT_VERSION))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _lake_layout(con: duckdb.DuckDBPyConnection) -> int:
    """The layout version a lake records (0: none, a lake made before layouts were recorded)."""
    row = con.execute("SELECT value FROM meta WHERE key = 'lake_layout'").fetchone()
    return int(row[0]) if row else 0

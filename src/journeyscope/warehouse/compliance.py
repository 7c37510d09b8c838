"""The compliance view: what PII arrived where, what was done with it, consent, policy, audit.

Plain dicts, ready for the API and the dashboard. Everything is counted, never
shown: the view reads ``redaction_log`` (counts per span, type and action), the
hashed tokens already stored in spans (``[EMAIL:3fa9c1d2e4b5]``, pseudonyms, to
follow one value across stages), the ``consent`` column, the policy the writer
recorded in ``meta``, and the audit log.

- :func:`pii_by_stage`: per journey type and stage, which types arrived and what was done;
- :func:`pii_entry_points`: where each type first entered a journey and which later stages received it;
- :func:`token_flows`: the same hashed value seen in a later stage (a context bridge carrying PII);
- :func:`consent_coverage`: per stage, journeys with each consent scope;
- :func:`compliance_view`: all of it, with the active policy and recent audit entries.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from journeyscope.warehouse import audit
from journeyscope.warehouse.dialect import sibling

#: A hashed redaction token as stored: ``[TYPE:12 hex]``.
TOKEN_SQL = r"\[([A-Z][A-Z0-9_.]*):[0-9a-f]{12}\]"


def _rows(cur: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def pii_by_stage(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """``{journey, stage, pii_type, action, values, spans, journeys, first_seen_at}``."""
    rows = _rows(cur, """
        SELECT journey_name AS journey, stage, pii_type, action, sum(count)::BIGINT AS values,
               count(*) AS spans, count(DISTINCT journey_id) AS journeys, min(first_seen_at) AS first_seen_at
        FROM redaction_log GROUP BY ALL ORDER BY journey NULLS LAST, stage NULLS LAST, pii_type, action""")
    for r in rows:
        r["first_seen_at"] = _iso(r["first_seen_at"])
    return rows


def pii_entry_points(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per journey type and PII type: the stage it first entered journeys at, and later stages that got it.

    ``{journey, pii_type, entered_at, journeys, later_stages: [{stage, journeys}]}``.
    """
    rows = _rows(cur, """
        WITH per AS (
            SELECT journey_name, journey_id, pii_type, stage, min(first_seen_at) AS seen
            FROM redaction_log WHERE journey_id IS NOT NULL AND stage IS NOT NULL GROUP BY ALL
        ),
        first AS (
            SELECT journey_name, journey_id, pii_type, arg_min(stage, seen) AS entered_at, min(seen) AS at
            FROM per GROUP BY ALL
        )
        SELECT f.journey_name AS journey, f.pii_type, f.entered_at, p.stage AS later_stage,
               count(DISTINCT f.journey_id) AS journeys
        FROM first f LEFT JOIN per p
          ON p.journey_id = f.journey_id AND p.pii_type = f.pii_type
         AND p.seen > f.at AND p.stage <> f.entered_at
        GROUP BY ALL ORDER BY journey, pii_type, entered_at, later_stage NULLS FIRST""")
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    totals = {(r["journey"], r["pii_type"], r["entered_at"]): r["journeys"] for r in _rows(cur, """
        SELECT journey_name AS journey, pii_type, entered_at, count(*) AS journeys FROM (
            SELECT journey_name, journey_id, pii_type, arg_min(stage, first_seen_at) AS entered_at
            FROM redaction_log WHERE journey_id IS NOT NULL AND stage IS NOT NULL GROUP BY ALL)
        GROUP BY ALL""")}
    for r in rows:
        key = (r["journey"], r["pii_type"], r["entered_at"])
        entry = out.setdefault(key, {"journey": key[0], "pii_type": key[1], "entered_at": key[2],
                                     "journeys": totals.get(key, 0), "later_stages": []})
        if r["later_stage"] is not None:
            entry["later_stages"].append({"stage": r["later_stage"], "journeys": r["journeys"]})
    return list(out.values())


def _has_token(column: str) -> str:
    """SQL: ``column`` holds a redaction token (a cheap LIKE first: a regex on every span costs seconds)."""
    return f"({column} LIKE '%[%:%]%' AND regexp_matches({column}, '{TOKEN_SQL}'))"


def token_flows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The same hashed value carried from the stage where it appeared first into a later stage.

    ``{journey, pii_type, from_stage, to_stage, journeys, values}``: only ``hash`` produces
    tokens, so masked types show in :func:`pii_entry_points` by type, not by value.
    """
    return _rows(cur, f"""
        WITH t AS (
            SELECT journey_name, journey_id, stage, start_time,
                   unnest(regexp_extract_all(coalesce(attributes::VARCHAR, '') || ' ' ||
                          coalesce(events::VARCHAR, '') || ' ' || coalesce(status_message, ''),
                          '{TOKEN_SQL}', 0)) AS token
            FROM spans
            WHERE journey_id IS NOT NULL AND stage IS NOT NULL
              -- Column by column, no string built per span (a token never straddles two JSON documents), and
              -- the regular expression only where a plain LIKE finds "[", ":" and "]" in that order.
              AND ({_has_token("attributes::VARCHAR")} OR {_has_token("events::VARCHAR")}
                   OR {_has_token("status_message")})
        ),
        firsts AS (
            SELECT journey_name, journey_id, token,
                   arg_min(stage, start_time) AS from_stage, min(start_time) AS at
            FROM t GROUP BY ALL
        )
        SELECT f.journey_name AS journey, lower(regexp_extract(f.token, '{TOKEN_SQL}', 1)) AS pii_type,
               f.from_stage, t.stage AS to_stage, count(DISTINCT f.journey_id) AS journeys,
               count(DISTINCT f.token) AS values
        FROM firsts f JOIN t ON t.journey_id = f.journey_id AND t.token = f.token
                             AND t.start_time > f.at AND t.stage <> f.from_stage
        GROUP BY ALL ORDER BY journey, pii_type, from_stage, to_stage""")


def consent_coverage(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per journey type and stage: journeys, journeys with consent recorded, and per scope.

    ``{journey, stage, journeys, recorded, none, scopes: {scope: journeys}, coverage: {scope: rate}}``.
    A journey's consent in a stage is the union of the scopes on its spans there. Journeys are counted
    over every staged span, scopes only over the spans that carry consent, and both in SQL: one row per
    stage and scope comes back, never one per journey.
    """
    rows = _rows(cur, """
        SELECT journey_name AS journey, stage, count(DISTINCT journey_id) AS journeys
        FROM spans WHERE stage IS NOT NULL AND journey_id IS NOT NULL
        GROUP BY ALL ORDER BY journey NULLS LAST, stage""")
    recorded: dict[tuple[Any, Any], int] = {}
    scopes: dict[tuple[Any, Any], dict[str, int]] = {}
    for journey, stage, scope, n in cur.execute("""
        WITH js AS (
            SELECT journey_name, stage, journey_id,
                   list_distinct(flatten(list(list_transform(string_split(consent, ','), s -> trim(s))))) AS scopes
            FROM spans
            WHERE stage IS NOT NULL AND journey_id IS NOT NULL AND consent IS NOT NULL AND consent <> ''
            GROUP BY ALL
        )
        SELECT journey_name, stage, NULL AS scope, count(*) FILTER (WHERE len(scopes) > 0) FROM js GROUP BY ALL
        UNION ALL
        SELECT journey_name, stage, scope, count(*)
        FROM (SELECT journey_name, stage, unnest(scopes) AS scope FROM js) WHERE scope <> '' GROUP BY ALL
        """).fetchall():
        if scope is None:
            recorded[(journey, stage)] = int(n)
        else:
            scopes.setdefault((journey, stage), {})[scope] = int(n)
    for r in rows:
        key = (r["journey"], r["stage"])
        n = r["journeys"]
        r["recorded"] = recorded.get(key, 0)
        r["none"] = n - r["recorded"]
        r["scopes"] = dict(sorted(scopes.get(key, {}).items()))
        r["coverage"] = {s: round(c / n, 4) for s, c in r["scopes"].items()} if n else {}
    return rows


def active_policy(cur: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The policy the writer last recorded (types, actions, types off, notes), or ``None``."""
    row = cur.execute("SELECT value FROM meta WHERE key = 'privacy_policy'").fetchone()
    return json.loads(row[0]) if row else None


def compliance_view(con: duckdb.DuckDBPyConnection, *, audit_limit: int = 50) -> dict[str, Any]:
    """Everything the compliance page shows, as plain dicts (one read cursor)."""
    cur = sibling(con)
    try:
        totals = cur.execute(
            "SELECT coalesce(sum(count), 0)::BIGINT, count(DISTINCT journey_id), "
            "coalesce(sum(count) FILTER (WHERE pii_type = 'redaction_failed'), 0)::BIGINT FROM redaction_log"
        ).fetchone() or (0, 0, 0)
        return {
            "policy": active_policy(cur),
            "totals": {"values_redacted": totals[0], "journeys_with_pii": totals[1], "failures": totals[2]},
            "stages": pii_by_stage(cur),
            "entry_points": pii_entry_points(cur),
            "flows": token_flows(cur),
            "consent": consent_coverage(cur),
            "audit": audit.entries(cur, limit=audit_limit),
        }
    finally:
        cur.close()


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat() + "Z"

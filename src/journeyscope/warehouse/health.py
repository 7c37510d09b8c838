"""Data health: can the numbers be trusted? Missing journey attributes, unmapped stages, ingest lag.

A funnel is only as good as its tagging. Spans without ``journey.id`` cannot be
attributed to any journey; spans with a journey but no ``journey.stage`` never
form a stage visit (a journey's root span legitimately has none, so they are
broken down by span name); survey answers left out at ingest (a score off its
scale) are counted; stages the journey map does not place are counted
but cannot be ordered; and a receiver that falls behind makes "live" numbers
stale. :func:`health` measures all of it in a handful of aggregate queries,
and also lists the values the filters can take (journey types, cohorts,
channels, time range), so a reader of the API needs no other call to build
its filter controls.

The dashboard's data-health page renders the dict; the eval API serves it at
``GET /v1/health``. Only JSON types; times are ISO 8601 UTC strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.journey_map import JourneyMap
from journeyscope.warehouse.markers import markers
from journeyscope.warehouse.schema import SCHEMA_VERSION, current_version
from journeyscope.warehouse.store import Warehouse

__all__ = ["activity", "filter_values", "health"]

_SPANS = """
SELECT count(*) AS spans,
       count(*) FILTER (WHERE journey_id IS NULL) AS without_journey_id,
       count(*) FILTER (WHERE journey_id IS NOT NULL AND stage IS NULL) AS without_stage,
       count(*) FILTER (WHERE journey_id IS NULL AND stage IS NOT NULL) AS stage_without_journey_id,
       min(start_time), max(start_time), max(ingested_at),
       count(*) FILTER (WHERE events LIKE '%"journey.feedback.rejected"%') AS feedback_left_out
FROM spans
"""

_UNSTAGED_BY_NAME = """
SELECT name, count(*) AS spans, count(DISTINCT journey_id) AS journeys FROM spans
WHERE journey_id IS NOT NULL AND stage IS NULL GROUP BY name ORDER BY spans DESC, name LIMIT 10
"""

# Lag of a span: when it was stored minus when it ended (both naive UTC). Counts and maxima are
# exact; quantiles come from a reservoir sample of the window (a day of ingest can be tens of
# millions of spans, and exact or t-digest quantiles over all of them cost seconds).
_LAG_BASE = """
SELECT ingested_at >= ? AS last_hour,
       epoch(ingested_at - CAST(coalesce(end_time, start_time) AS TIMESTAMP)) AS lag_s
FROM spans WHERE ingested_at >= ?
"""
_LAG = f"""
SELECT count(*) FILTER (WHERE last_hour), max(lag_s) FILTER (WHERE last_hour), count(*), max(lag_s)
FROM ({_LAG_BASE})
"""
# The sample is drawn from the window's spans first and the lag computed for the sampled ones only.
_LAG_QUANTILES = """
SELECT quantile_cont(lag_s, 0.5) FILTER (WHERE last_hour), quantile_cont(lag_s, 0.95) FILTER (WHERE last_hour),
       quantile_cont(lag_s, 0.5), quantile_cont(lag_s, 0.95)
FROM (
    SELECT ingested_at >= ? AS last_hour,
           epoch(ingested_at - CAST(coalesce(end_time, start_time) AS TIMESTAMP)) AS lag_s
    FROM (SELECT ingested_at, end_time, start_time FROM spans WHERE ingested_at >= ?
          USING SAMPLE reservoir(100000 ROWS) REPEATABLE (7))
)
"""

_STAGES = "SELECT DISTINCT journey_name, stage FROM stage_visits WHERE journey_name IS NOT NULL"

# The filter values and the visit counts every dashboard page needs, in one pass over the visits.
_DIMENSIONS = """
SELECT list(DISTINCT journey_name ORDER BY journey_name) FILTER (WHERE journey_name IS NOT NULL),
       list(DISTINCT cohort ORDER BY cohort) FILTER (WHERE cohort IS NOT NULL),
       list_sort(list_distinct(flatten(list(DISTINCT channels) FILTER (WHERE channels IS NOT NULL)))),
       count(*) FILTER (WHERE journey_name IS NOT NULL),
       min(started_at) FILTER (WHERE journey_name IS NOT NULL),
       max(started_at) FILTER (WHERE journey_name IS NOT NULL)
FROM stage_visits
"""

# The distinct visits scored in a query of their own: a DISTINCT over one key list beats
# count(DISTINCT (struct)) next to the other aggregates (seconds at millions of results).
_EVALUATIONS = """
SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT journey_id, stage, visit FROM evaluations)),
       count(error), max(evaluated_at), count(DISTINCT evaluator)
FROM evaluations
"""


def filter_values(warehouse: Warehouse) -> dict[str, Any]:
    """What the dashboard's filters offer and the counts its pages show, without :func:`health`'s span scans.

    ``{"counts": {stage_visits, evaluations}, "dimensions": {journeys, cohorts, channels, first_visit_at,
    last_visit_at}}``, the same values and shape as in :func:`health`: every page needs them, and a health
    check over every span (or counting the distinct visits scored) costs seconds at a million journeys.
    """
    journeys, cohorts, channels, visits, first, last = warehouse.query(_DIMENSIONS)[0]
    results = warehouse.query("SELECT count(*) FROM evaluations")[0][0]
    return {
        "counts": {"stage_visits": int(visits), "evaluations": int(results)},
        "dimensions": {
            "journeys": list(journeys or []),
            "cohorts": list(cohorts or []),
            "channels": list(channels or []),
            "first_visit_at": _iso(first),
            "last_visit_at": _iso(last),
            "markers": markers(warehouse),
        },
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") + ("Z" if value.tzinfo is None else "")
    return str(value)


def _schema_version(warehouse: Warehouse) -> int:
    cur = warehouse.cursor()
    try:
        return current_version(cur)
    finally:
        cur.close()


def _lag(spans: Any, median: Any, p95: Any, worst: Any) -> dict[str, Any]:
    return {"spans": int(spans or 0), "median_s": median, "p95_s": p95, "max_s": worst}


_ACTIVITY = """
SELECT {journeys}, {customers}, count(*), coalesce(sum(spans), 0), coalesce(sum(turns), 0),
       min(started_at), max(started_at)
FROM stage_visits WHERE journey_name IS NOT NULL AND {where}
"""


def activity(warehouse: Warehouse, filters: Filters | None = None) -> dict[str, Any]:
    """Journeys, customers, stage visits, spans and turns of the visits matching ``filters``.

    Spans are those inside the matching stage visits (a journey's stage-less root span is not in any).
    Distinct counts over millions of visits are the slow part, so when the filter is about whole
    journeys only (journey type, cohort: the same on every visit of a journey) journeys are counted
    by their first visit (``position = 0``) instead of ``count(DISTINCT ...)``; same answer.
    """
    filters = filters or Filters()
    where, params = filters.where()
    if filters.channel is None and filters.since is None and filters.until is None:
        journeys, customers = (
            "count(*) FILTER (WHERE position = 0)",
            "count(DISTINCT customer_id) FILTER (WHERE position = 0)",
        )
    else:
        journeys, customers = "count(DISTINCT journey_id)", "count(DISTINCT customer_id)"
    sql = _ACTIVITY.format(journeys=journeys, customers=customers, where=where)
    n_journeys, n_customers, visits, spans, turns, first, last = warehouse.query(sql, params)[0]
    return {
        "filters": filters.as_dict(),
        "journeys": int(n_journeys),
        "customers": int(n_customers),
        "stage_visits": int(visits),
        "spans": int(spans),
        "turns": int(turns),
        "first_visit_at": _iso(first),
        "last_visit_at": _iso(last),
    }


def health(
    warehouse: Warehouse,
    journey_map: JourneyMap | None = None,
    now: datetime | None = None,
    filters: Filters | None = None,
) -> dict[str, Any]:
    """Counts, attribute gaps, stages outside the journey map, ingest lag and filter values.

    ``window`` holds :func:`activity` for ``filters`` (everything when None), so one call gives a
    page both the data's health and what the selected window contains.
    """
    journey_map = journey_map if journey_map is not None else warehouse.journey_map
    now_utc = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    hour_ago, day_ago = now_utc - timedelta(hours=1), now_utc - timedelta(days=1)
    spans = warehouse.query(_SPANS)[0]
    everything = activity(warehouse)
    window = everything if filters is None else activity(warehouse, filters)
    hour_n, hour_max, day_n, day_max = warehouse.query(_LAG, [hour_ago, day_ago])[0]
    hour_p50, hour_p95, day_p50, day_p95 = warehouse.query(_LAG_QUANTILES, [hour_ago, day_ago])[0]
    unstaged = warehouse.query(_UNSTAGED_BY_NAME)
    journeys, cohorts, channels, _, _, _ = warehouse.query(_DIMENSIONS)[0]
    pending = warehouse.visits_due()

    # Which stages the map places: from the distinct (journey, stage) pairs, in the funnel's order.
    seen: dict[str, list[str]] = {}
    for journey, stage in warehouse.query(_STAGES):
        seen.setdefault(journey, []).append(stage)
    unmapped = []
    for journey in sorted(seen):
        spec = journey_map.journeys.get(journey)
        mapped = spec is not None and bool(spec.stages)
        extra = sorted(s for s in seen[journey] if s not in spec.stages) if mapped and spec else []
        unmapped.append(
            {
                "journey": journey,
                "in_map": mapped,
                "order": "map" if mapped else "inferred",
                "unmapped_stages": extra,
            }
        )
    warnings = [
        f"journey {u['journey']}: stages not in the journey map: {', '.join(u['unmapped_stages'])}"
        for u in unmapped
        if u["unmapped_stages"]
    ]
    if journey_map.journeys:
        warnings += [
            f"journey {u['journey']} is not in the journey map: its stage order is inferred"
            for u in unmapped
            if not u["in_map"]
        ]

    # The schema guarantees the table (a reader refuses any other schema version).
    results, scored_visits, errors, last_at, evaluators = warehouse.query(_EVALUATIONS)[0]
    evaluations: dict[str, Any] = {
        "table": True,
        "results": int(results),
        "visits": int(scored_visits),
        "errors": int(errors),
        "last_at": _iso(last_at),
        "evaluators": int(evaluators),
    }

    return {
        "generated_at": _iso(now_utc),
        "schema_version": _schema_version(warehouse),
        "schema_version_expected": SCHEMA_VERSION,
        "counts": {
            "spans": int(spans[0]),
            "turns": everything["turns"],
            "stage_visits": everything["stage_visits"],
            "journeys": everything["journeys"],
            "customers": everything["customers"],
            "evaluations": evaluations["results"],
            "evaluated_visits": evaluations["visits"],
            "visits_pending": int(pending),  # journeys awaiting upkeep (the backlog table's rows before schema 18)
        },
        "missing": {
            "spans_without_journey_id": int(spans[1]),
            "spans_without_stage": int(spans[2]),
            "stage_without_journey_id": int(spans[3]),
            "without_stage_by_name": [
                {"name": n, "spans": int(c), "journeys": int(j)} for n, c, j in unstaged
            ],
            # spans whose journey.feedback event had a score left out (journey.feedback.rejected says which)
            "spans_with_feedback_left_out": int(spans[7]),
        },
        "journey_map": {
            "source": journey_map.source,
            "journeys": sorted(journey_map.journeys),
            "stage_order": unmapped,
        },
        "warnings": warnings,
        "ingest": {
            "first_span_at": _iso(spans[4]),
            "last_span_at": _iso(spans[5]),
            "last_ingested_at": _iso(spans[6]),
            "lag_last_hour": _lag(hour_n, hour_p50, hour_p95, hour_max),
            "lag_last_day": _lag(day_n, day_p50, day_p95, day_max),
        },
        "evaluations": evaluations,
        "window": window,
        "dimensions": {
            "journeys": list(journeys or []),
            "cohorts": list(cohorts or []),
            "channels": list(channels or []),
            "first_visit_at": everything["first_visit_at"],
            "last_visit_at": everything["last_visit_at"],
            "markers": markers(warehouse),
        },
    }

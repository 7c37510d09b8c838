"""What a monitor can watch: a registry of signals, each one SQL query over per-visit outcomes.

A signal is defined once, as a query that yields one row per observation (a
stage visit, an evaluation, a span) with its scope (journey type, stage,
cohort, channel, evaluator), the time its outcome became known (``observed_at``),
whether it went badly (``bad``, for rates) and a number (``value``, for
means), and a ``reason`` to show as evidence. Everything else is generic: the
hourly series a rule reads (:func:`bucket_sql`) and the failing visits an
alert shows (:func:`failing_sql`) are built from that one query, so live
monitoring and backtesting read the same numbers.

``observed_at`` is when a live system would have known: an abandoned visit only once
its idle timeout ran out, a completed one when it ended.

Another module adds a signal with :func:`register_signal` (customer feedback,
for instance: one row per rating, ``bad`` for a low one).
"""

from __future__ import annotations

from dataclasses import dataclass

from journeyscope import conventions as cv
from journeyscope.warehouse.visits import OUTCOME_AT

__all__ = ["DIMENSIONS", "Signal", "bucket_sql", "failing_sql", "params_for", "register_signal", "signals"]

#: The scope columns every signal query yields (NULL where a signal has no such dimension).
DIMENSIONS = ("journey", "stage", "cohort", "channel", "evaluator")

# A visit's outcome as of the evaluation clock ($now_ns), and when it was known.
_OUTCOME = OUTCOME_AT.replace("?", "$now_ns")
_VISITS = f"""
    SELECT *, {_OUTCOME} AS final_outcome,
           CASE WHEN {_OUTCOME} = 'abandoned' AND outcome_source = 'derived' THEN open_until ELSE ended_at END
               AS decided_at
    FROM stage_visits
"""


@dataclass(frozen=True)
class Signal:
    """One watchable quantity.

    ``kind`` is ``"rate"`` (the share of observations that are ``bad``) or ``"mean"`` (the mean of
    ``value``); ``worse`` says which way is bad for a mean (``"up"`` or ``"down"``; a rate always
    worsens upward). ``dimensions`` are the scope keys it can be split by; ``sql`` yields the columns
    of :data:`DIMENSIONS` plus ``observed_at``, ``bad``, ``value``, ``journey_id``, ``visit``, ``reason``,
    with ``$now_ns`` as the clock. ``unit`` tells readers how ``value`` reads (``"rate"``,
    ``"score"``, ``"seconds"``); ``log_scale`` means ``value`` is ``ln(1 + x)`` of that unit.
    """

    name: str
    kind: str
    sql: str
    description: str
    dimensions: tuple[str, ...] = ("journey", "stage", "cohort", "channel")
    worse: str = "up"
    unit: str = "rate"
    log_scale: bool = False


_REGISTRY: dict[str, Signal] = {}


def register_signal(signal: Signal) -> Signal:
    """Add (or replace) a signal; monitors name it by ``signal.name``."""
    if signal.kind not in ("rate", "mean"):
        raise ValueError(f"signal {signal.name!r}: kind must be 'rate' or 'mean', got {signal.kind!r}")
    if signal.worse not in ("up", "down"):
        raise ValueError(f"signal {signal.name!r}: worse must be 'up' or 'down', got {signal.worse!r}")
    _REGISTRY[signal.name] = signal
    return signal


def signals() -> dict[str, Signal]:
    """Every registered signal by name."""
    return dict(_REGISTRY)


def params_for(sql: str, params: dict[str, object]) -> dict[str, object]:
    """The named parameters ``sql`` uses (DuckDB refuses extra ones; not every signal reads the clock)."""
    return {name: value for name, value in params.items() if f"${name}" in sql}


def bucket_sql(signal: Signal, spec: dict[str, str | None]) -> tuple[str, dict[str, object]]:
    """Hourly sums per scope: ``n``, bad ``k``, ``s`` = sum of values, ``ss`` = sum of squares.

    ``spec`` per dimension: None pools it (NULL in the result), ``"*"`` splits by it, a name keeps
    only that value. Parameters still to bind: ``$now_ns``, ``$since``, ``$until`` (naive UTC).
    """
    select, where, params = [], ["observed_at >= $since", "observed_at < $until"], {}
    for dim in DIMENSIONS:
        want = spec.get(dim)
        select.append(f"NULL::VARCHAR AS {dim}" if want is None else dim)
        if want == "*":
            where.append(f"{dim} IS NOT NULL")
        elif want is not None:
            where.append(f"{dim} = $scope_{dim}")
            params[f"scope_{dim}"] = want
    sql = f"""
        SELECT {', '.join(select)}, time_bucket(INTERVAL 1 HOUR, CAST(observed_at AS TIMESTAMP)) AS bucket,
               count(*) AS n, count(*) FILTER (WHERE bad) AS k,
               sum(value) AS s, sum(value * value) AS ss
        FROM ({signal.sql}) o
        WHERE {' AND '.join(where)}
        GROUP BY ALL
    """
    return sql, params


def failing_sql(signal: Signal, scope: dict[str, str | None], limit: int) -> tuple[str, dict[str, object]]:
    """The latest bad observations of one scope in ``[$since, $until)``: the evidence an alert shows."""
    where = ["observed_at >= $since", "observed_at < $until"]
    params: dict[str, object] = {}
    for dim, value in scope.items():
        if value is not None:
            where.append(f"{dim} = $scope_{dim}")
            params[f"scope_{dim}"] = value
    bad = "bad" if signal.kind == "rate" else ("value > $threshold" if signal.worse == "up" else "value < $threshold")
    sql = f"""
        SELECT journey_id, stage, visit, strftime(observed_at, '%Y-%m-%dT%H:%M:%SZ') AS observed_at, value, reason
        FROM ({signal.sql}) o
        WHERE {' AND '.join(where)} AND {bad}
        ORDER BY observed_at DESC LIMIT {int(limit)}
    """
    return sql, params


# -- the built-in signals ----------------------------------------------------------------------

_VISIT_SCOPE = "journey_name AS journey, stage, cohort, channel, NULL::VARCHAR AS evaluator"

register_signal(Signal(
    "completion",
    "rate",
    f"""SELECT {_VISIT_SCOPE}, decided_at AS observed_at, final_outcome <> 'completed' AS bad,
               (final_outcome = 'completed')::DOUBLE AS value, journey_id, visit, 'visit ' || final_outcome AS reason
        FROM ({_VISITS}) WHERE final_outcome <> 'open'""",
    "visits that did not complete (the customer did not move on to a later stage)",
))

register_signal(Signal(
    "conversion",
    "rate",
    f"""SELECT {_VISIT_SCOPE}, decided_at AS observed_at, NOT stage_completed AS bad,
               stage_completed::DOUBLE AS value, journey_id, visit,
               'journey left the stage: ' || final_outcome AS reason
        FROM ({_VISITS}) WHERE last_of_stage AND (stage_completed OR final_outcome <> 'open')""",
    "journeys that entered the stage and never got past it (one per journey, at its last visit)",
))

register_signal(Signal(
    "reentry",
    "rate",
    f"""SELECT {_VISIT_SCOPE}, ended_at AS observed_at, visit >= 2 AS bad, (visit >= 2)::DOUBLE AS value,
               journey_id, visit, 'came back to the stage (visit ' || visit || ')' AS reason
        FROM stage_visits WHERE last_of_stage""",
    "journeys that came back to the stage (one per journey, at its last visit)",
))

_EVALUATIONS = f"""
    SELECT e.journey_name AS journey, e.stage, e.cohort, v.channel, e.evaluator, v.decided_at AS observed_at,
           NOT e.passed AS bad, e.score AS value, e.journey_id, e.visit, e.evaluator || ': ' || e.reason AS reason
    FROM evaluations e JOIN ({_VISITS}) v USING (journey_id, stage, visit)
    WHERE e.error IS NULL AND e.score IS NOT NULL
"""

register_signal(Signal(
    "eval_fail",
    "rate",
    _EVALUATIONS,
    "an evaluator's fail rate (split by evaluator with evaluator = \"*\")",
    dimensions=("journey", "stage", "cohort", "channel", "evaluator"),
))

register_signal(Signal(
    "eval_score",
    "mean",
    _EVALUATIONS,
    "an evaluator's mean score, 0 to 1 (split by evaluator with evaluator = \"*\")",
    dimensions=("journey", "stage", "cohort", "channel", "evaluator"),
    worse="down",
    unit="score",
))

register_signal(Signal(
    "friction",
    "rate",
    f"""SELECT e.journey_name AS journey, e.stage, e.cohort, v.channel, NULL::VARCHAR AS evaluator,
               v.decided_at AS observed_at, bool_or(NOT e.passed) AS bad, min(e.score) AS value, e.journey_id, e.visit,
               string_agg(e.evaluator || ': ' || e.reason, '; ') FILTER (WHERE NOT e.passed) AS reason
        FROM evaluations e JOIN ({_VISITS}) v USING (journey_id, stage, visit)
        WHERE e.evaluator LIKE 'friction\\_%' ESCAPE '\\' AND e.error IS NULL AND e.passed IS NOT NULL
        GROUP BY e.journey_name, e.stage, e.cohort, v.channel, v.decided_at, e.journey_id, e.visit""",
    "visits with any friction signal (slow replies, repetition, channel switches, hesitation, backtracking)",
))

register_signal(Signal(
    "time_in_stage",
    "mean",
    f"""SELECT {_VISIT_SCOPE}, ended_at AS observed_at, NULL::BOOLEAN AS bad,
               ln(1 + greatest(epoch(ended_at - started_at), 0)) AS value, journey_id, visit,
               'in the stage for ' || round(epoch(ended_at - started_at)) || ' s' AS reason
        FROM stage_visits""",
    "time a visit spends in the stage (compared on a log scale; shown as a geometric mean in seconds)",
    worse="up",
    unit="seconds",
    log_scale=True,
))

register_signal(Signal(
    "missing_stage",
    "rate",
    f"""SELECT journey_name AS journey, NULL::VARCHAR AS stage, cohort, channel, NULL::VARCHAR AS evaluator,
               CAST(start_time AS TIMESTAMP) AS observed_at, stage IS NULL AS bad, (stage IS NULL)::DOUBLE AS value,
               journey_id, NULL::INTEGER AS visit, 'span ' || name || ' has no journey.stage' AS reason
        FROM spans WHERE journey_id IS NOT NULL AND name NOT IN ('{cv.ROUTE_SPAN}', '{cv.ALERT_SPAN}')""",
    "data health: spans of a journey that carry no journey.stage (split by journey type, not stage)",
    dimensions=("journey", "cohort", "channel"),
))

"""Plain-Python reference for the analytics definitions, computed straight from import records.

Independent of the warehouse on purpose: it reads the JSONL journeys as a person
would read docs/contracts.md, so the SQL is checked against a second implementation.
Historical data only (every journey idle for long): outcomes are explicit,
``completed`` or ``abandoned``, never ``open``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import mean, stdev
import math
from typing import Any


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def visits_of(journey: dict[str, Any], map_stages: list[str] | None) -> list[dict[str, Any]]:
    """Visits with stage, visit number, outcome, duration and channels."""
    items = sorted(enumerate(journey["turns"]), key=lambda p: (ts(p[1]["ts"]), p[0]))
    visits: list[dict[str, Any]] = []
    counts: dict[str, int] = defaultdict(int)
    for _, item in items:
        if item.get("event") == "feedback":
            continue  # about a stage, not in it: neither starts nor breaks a visit
        if item.get("event") == "outcome":
            owner = next(v for v in reversed(visits) if v["stage"] == item["stage"])
            owner["explicit"] = item["outcome"]
            continue
        stage = item["stage"]
        channel = item.get("channel") or journey.get("channel")
        if not visits or visits[-1]["stage"] != stage:
            counts[stage] += 1
            visits.append({"stage": stage, "visit": counts[stage], "start": ts(item["ts"]), "channels": set(),
                           "explicit": None, "turns": 0})
        v = visits[-1]
        v.setdefault("channel", channel)  # the visit's channel: its first turn's
        v["end"] = ts(item["ts"])
        v["turns"] += 1
        if channel:
            v["channels"].add(channel)
    first: dict[str, int] = {}
    for position, v in enumerate(visits):
        first.setdefault(v["stage"], position)
        v["position"] = position
    for position, v in enumerate(visits):
        later = [w["stage"] for w in visits[position + 1:]]
        if map_stages and v["stage"] in map_stages:
            further = any(s in map_stages and map_stages.index(s) > map_stages.index(v["stage"]) for s in later)
        else:
            further = any(first[s] > first[v["stage"]] for s in later)
        v["outcome"] = v["explicit"] or ("completed" if further else "abandoned")
    return visits


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def funnel(
    journeys: list[dict[str, Any]],
    maps: dict[str, list[str]],
    *,
    cohort: str | None = None,
    channel: str | None = None,
    since: float | None = None,
) -> dict[str, dict[str, Any]]:
    """journey type → {"total", "order", "stages": {stage: figures}} over visits passing the filters."""
    per_type: dict[str, list[tuple[str, list[dict[str, Any]]]]] = defaultdict(list)
    for j in journeys:
        if cohort is not None and j.get("cohort") != cohort:
            continue
        vs = [
            v
            for v in visits_of(j, maps.get(j["journey"]))
            if (channel is None or channel in v["channels"]) and (since is None or v["start"] >= since)
        ]
        if vs:
            per_type[j["journey"]].append((j["journey_id"], vs))
    result: dict[str, dict[str, Any]] = {}
    for jtype, items in per_type.items():
        stats: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"entered": 0, "completed": 0, "reentered": 0, "visits": 0, "times": [], "first": []}
        )
        for _, vs in items:
            by_stage: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for v in vs:
                by_stage[v["stage"]].append(v)
            for stage, svs in by_stage.items():
                s = stats[stage]
                s["entered"] += 1
                s["completed"] += any(v["outcome"] == "completed" for v in svs)
                s["reentered"] += max(v["visit"] for v in svs) >= 2
                s["visits"] += len(svs)
                s["times"].append(sum(v["end"] - v["start"] for v in svs))
                s["first"].append(min(v["position"] for v in svs))
        if jtype in maps:
            order = list(maps[jtype]) + sorted((s for s in stats if s not in maps[jtype]), key=lambda s: (mean(stats[s]["first"]), s))
        else:
            order = sorted(stats, key=lambda s: (mean(stats[s]["first"]), s))
        stages = {}
        previous = None
        for stage in order:
            s = stats.get(stage)
            in_map = jtype not in maps or stage in maps[jtype]
            entered = s["entered"] if s else 0
            stages[stage] = {
                "entered": entered,
                "completed": s["completed"] if s else 0,
                "dropped": entered - (s["completed"] if s else 0),
                "reentered": s["reentered"] if s else 0,
                "visits": s["visits"] if s else 0,
                "completion_rate": (s["completed"] / entered) if entered else None,
                "reentry_rate": (s["reentered"] / entered) if entered else None,
                # A stage outside the map has no place in the sequence, so no conversion.
                "conversion_from_previous": None if previous is None or not in_map else (
                    entered / previous if previous else None
                ),
                "median": quantile(s["times"], 0.5) if s else None,
                "p90": quantile(s["times"], 0.9) if s else None,
            }
            if in_map:
                previous = entered
        result[jtype] = {"total": len(items), "order": "map" if jtype in maps else "inferred", "stages": stages}
    return result


def journey_completion(
    journeys: list[dict[str, Any]],
    maps: dict[str, list[str]],
    *,
    cohort: str | None = None,
    channel: str | None = None,
    since: float | None = None,
) -> dict[Any, tuple[int, int]]:
    """(completed, journeys) by journey type, by (type, cohort) and by (type, "channel sequence").

    A journey counts when any of its visits passes the filters, and is judged whole: complete when a
    visit to its type's last stage (map order, else the filtered funnel's inferred order) completed.
    The channel sequence is its visits' channels with repeats in a row collapsed (``chat→email``).
    """
    order = funnel(journeys, maps, cohort=cohort, channel=channel, since=since)
    result: dict[Any, tuple[int, int]] = {}
    for j in journeys:
        if cohort is not None and j.get("cohort") != cohort:
            continue
        vs = visits_of(j, maps.get(j["journey"]))
        if not any(
            (channel is None or channel in v["channels"]) and (since is None or v["start"] >= since) for v in vs
        ):
            continue
        stages = maps.get(j["journey"]) or list(order[j["journey"]]["stages"])
        completed = any(v["stage"] == stages[-1] and v["outcome"] == "completed" for v in vs)
        sequence: list[str] = []
        for v in vs:
            c = v.get("channel") or "?"
            if not sequence or sequence[-1] != c:
                sequence.append(c)
        for key in (j["journey"], (j["journey"], j.get("cohort")), (j["journey"], "→".join(sequence))):
            k, n = result.get(key, (0, 0))
            result[key] = (k + completed, n + 1)
    return result


# -- evaluator results ----------------------------------------------------------------------------------
#: An evaluations row as the reference reads it: (journey_id, stage, visit, evaluator) -> (score, passed, error).
Scores = dict[tuple[str, str, int, str], tuple[float | None, bool | None, str | None]]


def scored_visits(
    journeys: list[dict[str, Any]],
    maps: dict[str, list[str]],
    scores: Scores,
    *,
    journey: str | None = None,
    cohort: str | None = None,
    channel: str | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    """Every evaluation whose visit (found by the reference's own visit numbering) passes the filters.

    An evaluation whose key names no visit of the journey is nobody's and never counts.
    """
    by_journey: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for jid, stage, visit, evaluator in scores:
        by_journey[jid].append((stage, visit, evaluator))
    out = []
    for j in journeys:
        if (journey is not None and j["journey"] != journey) or (cohort is not None and j.get("cohort") != cohort):
            continue
        visits = {(v["stage"], v["visit"]): v for v in visits_of(j, maps.get(j["journey"]))}
        for stage, number, evaluator in by_journey.get(j["journey_id"], []):
            v = visits.get((stage, number))
            if v is None or (channel is not None and channel not in v["channels"]):
                continue
            if since is not None and v["start"] < since:
                continue
            score, passed, error = scores[(j["journey_id"], stage, number, evaluator)]
            out.append({"journey_id": j["journey_id"], "journey": j["journey"], "stage": stage, "visit": number,
                        "evaluator": evaluator, "score": score, "passed": passed, "error": error,
                        "start": v["start"]})
    return out


def evaluator_summaries(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], tuple[float, int, int]]:
    """(journey type, stage, evaluator) -> (mean score, scored, failed) over the rows scored without error."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["error"] is None and r["score"] is not None:
            groups[(r["journey"], r["stage"], r["evaluator"])].append(r)
    return {
        key: (mean(r["score"] for r in rs), len(rs), sum(r["passed"] is False for r in rs))
        for key, rs in groups.items()
    }


def score_distribution(rows: list[dict[str, Any]], stage: str, bins: int) -> dict[str, dict[str, Any]]:
    """evaluator -> {"counts", "scored", "unscored", "failed"} at ``stage`` (rows without error)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["stage"] != stage or r["error"] is not None:
            continue
        e = out.setdefault(r["evaluator"], {"counts": [0] * bins, "scored": 0, "unscored": 0, "failed": 0})
        if r["score"] is None:
            e["unscored"] += 1
        else:
            e["counts"][min(int(r["score"] * bins), bins - 1)] += 1
            e["scored"] += 1
        e["failed"] += r["passed"] is False
    return out


def failing(rows: list[dict[str, Any]], stage: str, limit: int) -> list[tuple[str, str, int, str]]:
    """The failed rows at ``stage``, lowest score first (no score last), then latest visit, journey, evaluator."""
    failed = [r for r in rows if r["stage"] == stage and r["passed"] is False and r["error"] is None]
    failed.sort(key=lambda r: (r["score"] is None, r["score"] or 0.0, -r["start"], r["journey_id"], r["evaluator"]))
    return [(r["journey_id"], r["stage"], r["visit"], r["evaluator"]) for r in failed[:limit]]


# -- customer-reported feedback (docs/contracts.md: journey.feedback) ------------------------------------------
SCALES = {"csat": (1, 5), "ces": (1, 7), "nps": (0, 10)}


def visit_feedback(journey: dict[str, Any], visits: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """position → the visit's answers: each question's latest valid answer, the latest comment, the response count.

    A feedback item belongs to the latest visit of its stage that began at or before it, else the stage's first.
    """
    out: dict[int, dict[str, Any]] = {}
    for item in journey["turns"]:
        if item.get("event") != "feedback":
            continue
        at = ts(item["ts"])
        answers = {m: item[m] for m, (lo, hi) in SCALES.items()
                   if isinstance(item.get(m), (int, float)) and lo <= item[m] <= hi}
        comment = item.get("comment") or None
        if not answers and comment is None:
            continue
        same = [v for v in visits if v["stage"] == item["stage"]]
        if not same:
            continue
        started = [v for v in same if v["start"] <= at]
        owner = started[-1] if started else same[0]
        got = out.setdefault(owner["position"], {"responses": 0, "at": {}})
        got["responses"] += 1
        for m, value in list(answers.items()) + ([("comment", comment)] if comment is not None else []):
            if m not in got["at"] or at >= got["at"][m]:
                got[m], got["at"][m] = value, at
    return out


def feedback(
    journeys: list[dict[str, Any]],
    maps: dict[str, list[str]],
    *,
    cohort: str | None = None,
    channel: str | None = None,
    since: float | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """(journey type, stage) → visits, responses, and per question the answers of the visits passing the filters."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for j in journeys:
        if cohort is not None and j.get("cohort") != cohort:
            continue
        visits = visits_of(j, maps.get(j["journey"]))
        answers = visit_feedback(j, visits)
        for v in visits:
            if (channel is not None and channel not in v["channels"]) or (since is not None and v["start"] < since):
                continue
            s = out.setdefault((j["journey"], v["stage"]), {"visits": 0, "responses": 0, "csat": [], "ces": [], "nps": []})
            s["visits"] += 1
            a = answers.get(v["position"])
            if a:
                s["responses"] += 1
                for m in SCALES:
                    if m in a:
                        s[m].append(a[m])
    return out


def mean_and_sd(values: list[float]) -> tuple[int, float | None, float | None]:
    return len(values), (mean(values) if values else None), (stdev(values) if len(values) > 1 else None)


def nps(values: list[float]) -> tuple[int, int, int, float | None]:
    """n, promoters (9-10), detractors (0-6), score in points."""
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    return len(values), promoters, detractors, ((promoters - detractors) / len(values) * 100 if values else None)


def t_975(df: int) -> float:
    """Student's t 97.5% quantile by integrating the density (Simpson's rule) and bisection: a second way."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def mass(t: float, steps: int = 4000) -> float:  # P(0 < T < t)
        h = t / steps
        f = [math.exp(log_c - (df + 1) / 2 * math.log1p((i * h) ** 2 / df)) for i in range(steps + 1)]
        return h / 3 * (f[0] + f[-1] + 4 * sum(f[1:-1:2]) + 2 * sum(f[2:-1:2]))

    low, high = 1.0, 15.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if mass(mid) < 0.475 else (low, mid)
    return (low + high) / 2


def auroc(pairs: list[tuple[float, float]]) -> float | None:
    """P(score of a CSAT>=4 visit > score of a CSAT<=2 visit), ties half: every pair compared."""
    happy = [s for s, c in pairs if c >= 4]
    unhappy = [s for s, c in pairs if c <= 2]
    if not happy or not unhappy:
        return None
    wins = sum(1.0 if h > u else 0.5 if h == u else 0.0 for h in happy for u in unhappy)
    return wins / (len(happy) * len(unhappy))


def _mean_ranks(values: list[float]) -> list[float]:
    ordered = sorted(values)
    first = {}
    for i, v in enumerate(ordered):
        first.setdefault(v, i)
    counts = {v: ordered.count(v) for v in set(values)}
    return [first[v] + 1 + (counts[v] - 1) / 2 for v in values]


def spearman(pairs: list[tuple[float, float]]) -> float | None:
    """Pearson correlation of the mean ranks."""
    if len(pairs) < 2:
        return None
    a, b = _mean_ranks([p[0] for p in pairs]), _mean_ranks([p[1] for p in pairs])
    ma, mb = mean(a), mean(b)
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa, sbb = sum((x - ma) ** 2 for x in a), sum((y - mb) ** 2 for y in b)
    return None if saa == 0 or sbb == 0 else sab / math.sqrt(saa * sbb)

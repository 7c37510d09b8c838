"""What the numbers say, in words: the worst stage, the evaluator that fails there, formatted rates.

Pure functions over the API/library dicts (no Streamlit), so the sentences the
overview leads with are unit-tested. The overview must make a problem like the
case study's (one stage completing far less often than the rest, and the
evaluator that explains it) visible before anyone reads a chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "RETENTION",
    "StageAlert",
    "ci_text",
    "evaluator_hotspot",
    "fail_matrix",
    "pct",
    "rate_text",
    "worst_stage",
]

RETENTION = "customer_agent_context_retention"
#: A stage needs this many journeys before it can be called the worst (three journeys prove nothing).
MIN_ENTERED = 20
#: Completion this far (in points) below every other stage makes the worst stage an alert, not a footnote.
ALERT_GAP = 0.05


def pct(value: float | None, digits: int = 0) -> str:
    """``0.816`` → ``"82%"``; None → an en dash."""
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def ci_text(ci: Any) -> str:
    """``[0.73, 0.88]`` → ``"[73–88%]"``; empty when the interval is unknown."""
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{ci[0] * 100:.0f}–{ci[1] * 100:.0f}%]"


def rate_text(value: float | None, ci: Any, digits: int = 1) -> str:
    """A rate with its 95% interval, e.g. ``"81.6% [73–88%]"``."""
    text = pct(value, digits)
    interval = ci_text(ci)
    return f"{text} {interval}" if interval else text


def reported_text(record: dict[str, Any] | None, key: str = "mean", digits: int = 2) -> str:
    """A customer-reported figure (the funnel's ``csat``/``ces``/``nps`` record) with its interval and n,
    e.g. ``"4.03 [3.90–4.16] n=212"``; ``–`` where nobody answered."""
    if not record or record.get(key) is None:
        return "–"
    text = f"{record[key]:.{digits}f}"
    if record.get("ci_low") is not None and record.get("ci_high") is not None:
        text += f" [{record['ci_low']:.{digits}f}–{record['ci_high']:.{digits}f}]"
    return f"{text} n={record['n']}"


@dataclass(frozen=True)
class StageAlert:
    """The stage of one journey type that completes least often, against the others."""

    journey: str
    stage: str
    completion: float
    completion_ci: tuple[float | None, float | None]
    entered: int
    others_min: float | None
    others_max: float | None
    hotspot: str | None = None

    @property
    def gap(self) -> float:
        return (self.others_min - self.completion) if self.others_min is not None else 0.0

    @property
    def is_alert(self) -> bool:
        return self.others_min is not None and self.gap >= ALERT_GAP

    def sentence(self) -> str:
        """``"onboarding: app-install completes 81.6% vs ≥ 88.1% at every other stage"``."""
        text = f"{self.journey}: {self.stage} completes {pct(self.completion, 1)}"
        if self.others_min is not None:
            text += f" vs ≥ {pct(self.others_min, 1)} at every other stage"
        return text


def worst_stage(journey: dict[str, Any], min_entered: int = MIN_ENTERED) -> StageAlert | None:
    """The lowest-completing stage of a ``JourneyFunnel.as_dict()`` with at least ``min_entered`` journeys."""
    stages = [
        s
        for s in journey.get("stages", [])
        if s.get("completion_rate") is not None and s.get("entered", 0) >= min_entered
    ]
    if not stages:
        return None
    worst = min(stages, key=lambda s: (s["completion_rate"], -s["entered"]))
    others = [s["completion_rate"] for s in stages if s is not worst]
    ci = worst.get("completion_rate_ci") or [None, None]
    return StageAlert(
        journey=journey["journey"],
        stage=worst["stage"],
        completion=worst["completion_rate"],
        completion_ci=(ci[0], ci[1]),
        entered=worst["entered"],
        others_min=min(others) if others else None,
        others_max=max(others) if others else None,
        hotspot=evaluator_hotspot(journey, worst["stage"]),
    )


def evaluator_hotspot(journey: dict[str, Any], stage: str, min_visits: int = 10) -> str | None:
    """The evaluator failing most at ``stage`` compared with the journey's other stages, as a sentence.

    Failures are counted against all the stage's visits, not only those the
    evaluator could score: an evaluator that scored 20 of 107 visits and failed
    them all is not "failing 100%" of the stage. Ranked by the difference
    (here minus elsewhere, visits pooled), so an evaluator that fails
    everywhere does not hide the one that fails here.
    """
    here: dict[str, tuple[int, int, float]] = {}
    rest: dict[str, list[int]] = {}
    for s in journey.get("stages", []):
        visits = int(s.get("visits") or 0)
        for e in s.get("evaluators", []):
            if e.get("fail_rate") is None or not e.get("scored") or not visits:
                continue
            failed = round(e["fail_rate"] * e["scored"])
            if s["stage"] == stage:
                here[e["evaluator"]] = (failed, visits, e.get("mean_score") or 0.0)
            else:
                agg = rest.setdefault(e["evaluator"], [0, 0])
                agg[0] += failed
                agg[1] += visits
    best: tuple[float, str] | None = None
    for name, (failed, visits, _mean) in here.items():
        if visits < min_visits:
            continue
        failed_rest, visits_rest = rest.get(name, [0, 0])
        lift = failed / visits - (failed_rest / visits_rest if visits_rest else 0.0)
        if lift > 0 and (best is None or lift > best[0]):
            best = (lift, name)
    if best is None:
        return None
    name = best[1]
    failed, visits, mean = here[name]
    failed_rest, visits_rest = rest.get(name, [0, 0])
    text = f"{name} fails on {pct(failed / visits)} of visits here"
    if visits_rest:
        text += f" vs {pct(failed_rest / visits_rest)} at the other stages"
    return text + f" (mean score {mean:.2f})"


def fail_matrix(
    journey: dict[str, Any],
) -> tuple[list[str], list[str], list[list[float | None]], list[list[int]]]:
    """Stages (funnel order), evaluators (retention and the judged ones first), fail rates and sample sizes."""
    stages = [s["stage"] for s in journey.get("stages", [])]
    names: set[str] = set()
    for s in journey.get("stages", []):
        names.update(e["evaluator"] for e in s.get("evaluators", []))
    evaluators = sorted(names, key=lambda n: (n.startswith("friction_"), n != RETENTION, n))
    rates: list[list[float | None]] = []
    sizes: list[list[int]] = []
    for name in evaluators:
        row: list[float | None] = []
        size: list[int] = []
        for s in journey.get("stages", []):
            e = next((x for x in s.get("evaluators", []) if x["evaluator"] == name), None)
            row.append(e["fail_rate"] if e else None)
            size.append(e["scored"] if e else 0)
        rates.append(row)
        sizes.append(size)
    return stages, evaluators, rates, sizes

"""What the numbers say, in words: the worst stage, the evaluator that fails there, formatted rates.

Pure functions over the API/library dicts (no Streamlit), so the sentences the
overview leads with are unit-tested. The overview must make a problem like the
case study's (one stage completing far less often than the rest, and the
evaluator that explains it) visible before anyone reads a chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journeyscope import conventions as cv

__all__ = [
    "MIN_SCORED",
    "NOT_ENOUGH",
    "RETENTION",
    "StageAlert",
    "ci_text",
    "evaluator_hotspot",
    "fail_matrix",
    "pct",
    "rate_text",
    "worst_stage",
]

RETENTION = cv.RETENTION_EVALUATOR
#: A stage needs this many journeys before it can be called the worst (three journeys prove nothing).
MIN_ENTERED = 20
#: Completion this far (in points) below every other stage makes the worst stage an alert, not a footnote.
ALERT_GAP = 0.05
#: An evaluator's fail rate at a stage needs this many scored visits before it is shown as a rate or a
#: colour (below it, a 1-of-3 "33%" would look like a finding). Documented in the README.
MIN_SCORED = 20
#: What a cell below :data:`MIN_SCORED` says instead of a rate.
NOT_ENOUGH = "not enough data"


def pct(value: float | None, digits: int = 0) -> str:
    """``0.816`` → ``"82%"``; None → an en dash."""
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def ci_text(ci: Any) -> str:
    """``[0.73, 0.88]`` → ``"[73–88%]"``; empty when the interval is unknown."""
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{ci[0] * 100:.0f}–{ci[1] * 100:.0f}%]"


def rate_text(value: float | None, ci: Any, n: int | None = None, digits: int = 1) -> str:
    """A rate with its 95% interval and sample size, e.g. ``"81.6% [73–88%] n=120"``."""
    text = pct(value, digits)
    interval = ci_text(ci)
    text = f"{text} {interval}" if interval else text
    return text if n is None else f"{text} n={n:,}"


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


def evaluator_hotspot(journey: dict[str, Any], stage: str, min_scored: int = MIN_SCORED) -> str | None:
    """The evaluator failing most at ``stage`` compared with the journey's other stages, as a sentence.

    The fail rate is the heat map's: failures among the visits the evaluator could score, with
    at least ``min_scored`` of them (an evaluator that scored 3 of 107 visits and failed all three
    says nothing about the stage). Ranked by the difference (here minus elsewhere, scored visits
    pooled), so an evaluator that fails everywhere does not hide the one that fails here.
    """
    here: dict[str, tuple[int, int, float]] = {}
    rest: dict[str, list[int]] = {}
    for s in journey.get("stages", []):
        for e in s.get("evaluators", []):
            scored = int(e.get("scored") or 0)
            if e.get("fail_rate") is None or not scored:
                continue
            failed = round(e["fail_rate"] * scored)
            if s["stage"] == stage:
                here[e["evaluator"]] = (failed, scored, e.get("mean_score") or 0.0)
            else:
                agg = rest.setdefault(e["evaluator"], [0, 0])
                agg[0] += failed
                agg[1] += scored
    best: tuple[float, str] | None = None
    for name, (failed, scored, _mean) in here.items():
        if scored < min_scored:
            continue
        failed_rest, scored_rest = rest.get(name, [0, 0])
        lift = failed / scored - (failed_rest / scored_rest if scored_rest else 0.0)
        if lift > 0 and (best is None or lift > best[0]):
            best = (lift, name)
    if best is None:
        return None
    name = best[1]
    failed, scored, mean = here[name]
    failed_rest, scored_rest = rest.get(name, [0, 0])
    text = f"{name} fails on {pct(failed / scored)} of {scored:,} scored visits here"
    if scored_rest:
        text += f" vs {pct(failed_rest / scored_rest)} of {scored_rest:,} at the other stages"
    return text + f" (mean score {mean:.2f})"


def fail_matrix(
    journey: dict[str, Any],
) -> tuple[list[str], list[str], list[list[float | None]], list[list[int]]]:
    """Stages (funnel order), evaluators, fail rates and scored visits per cell.

    A cell with fewer than :data:`MIN_SCORED` scored visits has no rate (None): it is drawn as
    "not enough data", never as a colour. Visits an evaluator could not score are not in ``sizes``.
    """
    stages = [s["stage"] for s in journey.get("stages", [])]
    names: set[str] = set()
    for s in journey.get("stages", []):
        names.update(e["evaluator"] for e in s.get("evaluators", []))
    evaluators = sorted(names, key=lambda n: (n.startswith(cv.FRICTION_PREFIX), n != RETENTION, n))
    rates: list[list[float | None]] = []
    sizes: list[list[int]] = []
    for name in evaluators:
        row: list[float | None] = []
        size: list[int] = []
        for s in journey.get("stages", []):
            e = next((x for x in s.get("evaluators", []) if x["evaluator"] == name), None)
            scored = int(e["scored"]) if e else 0
            row.append(e["fail_rate"] if e and scored >= MIN_SCORED else None)
            size.append(scored)
        rates.append(row)
        sizes.append(size)
    return stages, evaluators, rates, sizes

"""Stage signals: the funnel row of a stage as the rates and means routing reads (``GET /v1/stages``).

One definition for the answer of ``/v1/stages`` (read from a file or held by
the server) and for the signals a routing policy tests, so a rule and the
dashboard never disagree about what "completion_rate at app-install" was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journeyscope import conventions as cv
from journeyscope.warehouse.funnel import FunnelReport, StageFunnel
from journeyscope.warehouse.stats import rate

__all__ = ["QUALITY", "RESOLUTION", "RETENTION", "StageSignal", "signals_by_stage", "stage_signal_set",
           "stages_body"]

RESOLUTION = cv.RESOLUTION_EVALUATOR
QUALITY = cv.QUALITY_EVALUATOR
RETENTION = cv.RETENTION_EVALUATOR


@dataclass(frozen=True)
class StageSignal:
    """A stage-level signal: value, sample size (journeys), 95% interval when known."""

    value: float | None
    n: int
    low: float | None = None
    high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "n": self.n, "ci_low": self.low, "ci_high": self.high}


def stage_signal_set(stage: StageFunnel) -> dict[str, StageSignal]:
    """The routing signals of one funnel row (rates with intervals, evaluator means)."""
    signals = {
        "completion_rate": StageSignal(stage.completion.value, stage.entered, stage.completion.low,
                                       stage.completion.high),
        "reentry_rate": StageSignal(stage.reentry.value, stage.entered, stage.reentry.low, stage.reentry.high),
    }
    fails = scored = 0
    for ev in stage.evaluators:
        fr = ev.fail_rate
        fails += fr.k
        scored += fr.n
        if ev.evaluator == RESOLUTION and fr.value is not None:
            # resolution rate = share of scored visits that passed; its interval mirrors the fail rate's
            signals["resolution_rate"] = StageSignal(
                1 - fr.value, fr.n, None if fr.high is None else 1 - fr.high, None if fr.low is None else 1 - fr.low
            )
            signals["resolution_mean"] = StageSignal(ev.mean_score, fr.n)
        elif ev.evaluator == QUALITY:
            signals["quality_mean"] = StageSignal(ev.mean_score, fr.n)
        elif ev.evaluator == RETENTION:
            signals["retention_mean"] = StageSignal(ev.mean_score, fr.n)
            signals["retention_fail_rate"] = StageSignal(fr.value, fr.n, fr.low, fr.high)
    if scored:
        r = rate(fails, scored)
        signals["eval_fail_rate"] = StageSignal(r.value, scored, r.low, r.high)
    feedback = stage.feedback
    if feedback is not None:  # what customers reported; n counts answers (visits), not journeys
        rr = feedback.response_rate
        signals["feedback_response_rate"] = StageSignal(rr.value, rr.n, rr.low, rr.high)
        for name, mean in (("csat_mean", feedback.csat), ("ces_mean", feedback.ces)):
            if mean.n:
                signals[name] = StageSignal(mean.mean, mean.n, mean.low, mean.high)
        if feedback.nps.n:
            signals["nps"] = StageSignal(feedback.nps.score, feedback.nps.n, feedback.nps.low, feedback.nps.high)
    return signals


def signals_by_stage(report: FunnelReport) -> dict[tuple[str, str], dict[str, StageSignal]]:
    """Every stage's routing signals, by (journey, stage)."""
    return {(jf.journey, row.stage): stage_signal_set(row) for jf in report.journeys for row in jf.stages}


def stages_body(report: FunnelReport) -> dict[str, Any]:
    """The report's part of the ``/v1/stages`` answer: per journey, per stage, its signals."""
    return {
        "note": report.note,
        "journeys": [
            {
                "journey": jf.journey,
                "total": jf.total,
                "stages": [
                    {
                        "stage": s.stage,
                        "entered": s.entered,
                        "visits": s.visits,
                        "signals": {k: v.as_dict() for k, v in stage_signal_set(s).items()},
                    }
                    for s in jf.stages
                ],
            }
            for jf in report.journeys
        ],
    }

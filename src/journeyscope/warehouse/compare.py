"""Compare two periods or two variants: the seeds' "compare against a controlled baseline".

Each side is a :class:`Filters` (before/after a release: two windows; an A/B
test: two cohorts). For every stage of every journey type both sides saw, the
completion and re-entry rates of each side and their difference (B − A) with a
Newcombe 95% interval; ``significant`` when the interval excludes zero. Where
customers answered surveys on either side, mean CSAT and NPS too (B − A, with
Welch's interval; NPS's from the multinomial variance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.flows import journey_outcomes
from journeyscope.warehouse.funnel import FunnelReport, funnel
from journeyscope.warehouse.feedback import StageFeedback
from journeyscope.warehouse.stats import Difference, MeanDifference, difference, rate, welch_difference
from journeyscope.warehouse.store import Warehouse


@dataclass(frozen=True)
class StageComparison:
    """One stage, side A against side B."""

    journey: str
    stage: str
    completion: Difference
    reentry: Difference
    csat: MeanDifference | None = None
    nps: MeanDifference | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "journey": self.journey,
            "stage": self.stage,
            "completion": self.completion.as_dict(),
            "reentry": self.reentry.as_dict(),
        }
        if self.csat is not None:
            out["csat"] = self.csat.as_dict()
        if self.nps is not None:
            out["nps"] = self.nps.as_dict()
        return out


def _reported(a: StageFeedback | None, b: StageFeedback | None) -> tuple[MeanDifference | None, MeanDifference | None]:
    """Mean CSAT and NPS of side B against side A, where either side has answers."""
    if a is None and b is None:
        return None, None
    ca, cb = (a.csat if a else None), (b.csat if b else None)
    na, nb = (a.nps if a else None), (b.nps if b else None)
    csat = welch_difference(
        ca.n if ca else 0, ca.mean if ca else None, ca.sd**2 if ca and ca.sd is not None else None,
        cb.n if cb else 0, cb.mean if cb else None, cb.sd**2 if cb and cb.sd is not None else None,
    )
    nps = welch_difference(
        na.n if na else 0, na.score if na else None, na.variance if na else None,
        nb.n if nb else 0, nb.score if nb else None, nb.variance if nb else None, normal=True,
    )
    return csat, nps


@dataclass(frozen=True)
class Comparison:
    """Everything that differs between two filters."""

    a: Filters
    b: Filters
    stages: tuple[StageComparison, ...]
    journeys: dict[str, Difference]

    def stage(self, journey: str, stage: str) -> StageComparison:
        return next(s for s in self.stages if s.journey == journey and s.stage == stage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.as_dict(),
            "b": self.b.as_dict(),
            "stages": [s.as_dict() for s in self.stages],
            "journeys": {j: d.as_dict() for j, d in self.journeys.items()},
        }


def _orders(report: FunnelReport) -> dict[str, list[tuple[str, bool]]]:
    """:func:`~journeyscope.warehouse.funnel.stage_orders` as the funnel of the same filters ordered them."""
    return {j.journey: [(s.stage, s.in_map) for s in j.stages] for j in report.journeys}


def compare(warehouse: Warehouse, a: Filters, b: Filters) -> Comparison:
    """Stage and journey completion of ``b`` against ``a``."""
    fa, fb = funnel(warehouse, a, evaluators=False), funnel(warehouse, b, evaluators=False)
    stages = []
    for jb in fb.journeys:
        ja = next((j for j in fa.journeys if j.journey == jb.journey), None)
        for sb in jb.stages:
            sa = next((s for s in ja.stages if s.stage == sb.stage), None) if ja else None
            ca = sa.completion if sa else rate(0, 0)
            ra = sa.reentry if sa else rate(0, 0)
            csat, nps = _reported(sa.feedback if sa else None, sb.feedback)
            stages.append(StageComparison(jb.journey, sb.stage, difference(ca, sb.completion), difference(ra, sb.reentry),
                                          csat, nps))
    # The funnels already hold each side's stage order: the outcomes need not compute it again.
    oa = journey_outcomes(warehouse, a, channel_mix=False, orders=_orders(fa))
    ob = journey_outcomes(warehouse, b, channel_mix=False, orders=_orders(fb))
    journeys = {j: difference(oa.overall.get(j, rate(0, 0)), rb) for j, rb in ob.overall.items()}
    return Comparison(a, b, tuple(stages), journeys)

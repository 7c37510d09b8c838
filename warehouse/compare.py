"""Compare two periods or two variants: the seeds' "compare against a controlled baseline".

Each side is a :class:`Filters` (before/after a release: two windows; an A/B
test: two cohorts). For every stage of every journey type both sides saw, the
completion and re-entry rates of each side and their difference (B − A) with a
Newcombe 95% interval; ``significant`` when the interval excludes zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.flows import journey_outcomes
from journeyscope.warehouse.funnel import FunnelReport, funnel
from journeyscope.warehouse.stats import Difference, difference, rate
from journeyscope.warehouse.store import Warehouse


@dataclass(frozen=True)
class StageComparison:
    """One stage, side A against side B."""

    journey: str
    stage: str
    completion: Difference
    reentry: Difference

    def as_dict(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "stage": self.stage,
            "completion": self.completion.as_dict(),
            "reentry": self.reentry.as_dict(),
        }


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
            stages.append(StageComparison(jb.journey, sb.stage, difference(ca, sb.completion), difference(ra, sb.reentry)))
    # The funnels already hold each side's stage order: the outcomes need not compute it again.
    oa = journey_outcomes(warehouse, a, channel_mix=False, orders=_orders(fa))
    ob = journey_outcomes(warehouse, b, channel_mix=False, orders=_orders(fb))
    journeys = {j: difference(oa.overall.get(j, rate(0, 0)), rb) for j, rb in ob.overall.items()}
    return Comparison(a, b, tuple(stages), journeys)

"""The warehouse's answers to the declared reads (:class:`journeyscope.warehouse.reads.Reads`).

The questions (names, parameters, bounds, documentation, paths) are declared
once in :mod:`~journeyscope.warehouse.reads`; here each is answered from an
open :class:`~journeyscope.warehouse.Warehouse` by the function that owns the
query. :func:`~journeyscope.warehouse.reads.implements` checks every read is
answered with the declared parameters and defaults, and checks the arguments
of each call against the declaration.
"""

from __future__ import annotations

from typing import Any, Literal

from journeyscope.warehouse.agreement import agreement_report
from journeyscope.warehouse.compare import compare
from journeyscope.warehouse.compliance import compliance_view
from journeyscope.warehouse.decisions import decisions as logged_decisions
from journeyscope.warehouse.evaluation_reads import failing_visits, score_distribution
from journeyscope.warehouse.feedback_agreement import feedback_agreement
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.flows import journey_outcomes, retention_between_stages, transitions
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.health import activity, filter_values, health
from journeyscope.warehouse.journey_detail import journey_detail, search_journeys
from journeyscope.warehouse.journey_state import journey_state
from journeyscope.warehouse.monitors.alerts import alerts as stored_alerts
from journeyscope.warehouse.reads import ALL, Reads, implements
from journeyscope.warehouse.reviews import review_queue, review_summary
from journeyscope.warehouse.stage_signals import stages_body
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.thresholds import history

__all__ = ["Reader"]


@implements
class Reader(Reads):
    """The reads of one open :class:`~journeyscope.warehouse.Warehouse`; each answer is JSON-able, and is
    exactly the body the API serves for it (``as_of_age_s`` is 0 here: a file read is as fresh as the file).
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    # -- stages and funnels -----------------------------------------------------------------------------
    def stages(self, filters: Filters = ALL) -> dict[str, Any]:
        report = funnel(self.warehouse, filters)
        return {"as_of_age_s": 0.0, "filters": filters.as_dict(), **stages_body(report)}

    def funnel(self, filters: Filters = ALL, evaluators: bool = True) -> dict[str, Any]:
        return {**funnel(self.warehouse, filters, evaluators=evaluators).as_dict(), "as_of_age_s": 0.0}

    def outcomes(
        self, filters: Filters = ALL, min_journeys: int = 1
    ) -> dict[str, Any]:
        return journey_outcomes(self.warehouse, filters, min_journeys=min_journeys).as_dict()

    def transitions(self, filters: Filters = ALL) -> list[dict[str, Any]]:
        return [t.as_dict() for t in transitions(self.warehouse, filters)]

    def retention(self, filters: Filters = ALL) -> list[dict[str, Any]]:
        return [h.as_dict() for h in retention_between_stages(self.warehouse, filters)]

    def compare(self, a: Filters = ALL, b: Filters = ALL) -> dict[str, Any]:
        return compare(self.warehouse, a, b).as_dict()

    # -- journeys -----------------------------------------------------------------------------------------
    def journeys(
        self, q: str = "", filters: Filters = ALL, limit: int = 20
    ) -> list[dict[str, Any]]:
        return search_journeys(self.warehouse, q, filters, limit)

    def journey(self, journey_id: str) -> dict[str, Any] | None:
        return journey_state(self.warehouse, journey_id)

    def journey_detail(self, journey_id: str) -> dict[str, Any] | None:
        return journey_detail(self.warehouse, journey_id)

    def decisions(
        self, journey_id: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        return {"decisions": logged_decisions(self.warehouse, journey_id, limit)}

    # -- evaluations --------------------------------------------------------------------------------------
    def failing(
        self,
        filters: Filters = ALL,
        stage: str | None = None,
        evaluator: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        return failing_visits(self.warehouse, filters, stage=stage, evaluator=evaluator, limit=limit)

    def distribution(
        self, filters: Filters = ALL, stage: str | None = None, evaluator: str | None = None
    ) -> dict[str, Any]:
        return score_distribution(self.warehouse, filters, stage=stage, evaluator=evaluator)

    def feedback_agreement(self, filters: Filters = ALL) -> dict[str, Any]:
        return {"evaluators": [a.as_dict() for a in feedback_agreement(self.warehouse, filters)]}

    # -- reviews and calibration ----------------------------------------------------------------------------
    def review_summary(self) -> dict[str, Any]:
        return review_summary(self.warehouse)

    def review_queue(
        self,
        evaluator: str,
        stage: str | None = None,
        journey: str | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        return review_queue(self.warehouse, evaluator, stage=stage, journey=journey, limit=limit)

    def agreement(
        self, evaluator: str | None = None, engine: Literal["local", "llm"] | None = None
    ) -> dict[str, Any]:
        return agreement_report(self.warehouse, evaluator, engine)

    def thresholds(self, evaluator: str | None = None) -> dict[str, Any]:
        cur = self.warehouse.cursor()
        try:
            return {"thresholds": [t.as_dict() for t in history(cur, evaluator)]}
        finally:
            cur.close()

    # -- monitors, health, compliance -----------------------------------------------------------------------
    def alerts(
        self,
        status: Literal["firing", "resolved"] | None = None,
        journey: str | None = None,
        stage: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        found = stored_alerts(self.warehouse, status=status, journey=journey, stage=stage, limit=limit)
        return {"alerts": found, "monitors": None}

    def health(self, filters: Filters = ALL) -> dict[str, Any]:
        return health(self.warehouse, filters=None if filters == ALL else filters)

    def activity(self, filters: Filters = ALL) -> dict[str, Any]:
        return activity(self.warehouse, filters)

    def filter_values(self) -> dict[str, Any]:
        return filter_values(self.warehouse)

    def compliance(self) -> dict[str, Any]:
        cur = self.warehouse.cursor()
        try:
            return compliance_view(cur)
        finally:
            cur.close()


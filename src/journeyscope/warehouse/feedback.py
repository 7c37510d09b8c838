"""What customers reported, per stage: response rate, mean CSAT and effort (CES), and NPS, each with n and a 95% CI.

Feedback is stored on the stage visit it is about (``journey.feedback`` events,
derived with the visits: :mod:`journeyscope.warehouse.visits`), the latest
answer to each question per visit. So per journey type and stage, over the
visits that pass the :class:`Filters`:

- ``responses``: visits with any answer or comment; ``response_rate``: responses
  / visits, with Wilson's interval;
- ``csat`` (1-5) and ``ces`` (1-7): the mean answer with Student's t-interval
  (clipped to the scale);
- ``nps`` (0-10 answers): % promoters (9-10) − % detractors (0-6), in points,
  with the multinomial interval (:func:`~journeyscope.warehouse.stats.net_promoter`).

:func:`csat_by_window` gives the CSAT series per stage and time window (by when
the answers came in), the aggregate a monitor watches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from journeyscope import conventions as cv
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.stats import Mean, NetScore, Rate, mean_interval, net_promoter, rate
from journeyscope.warehouse.store import Warehouse

__all__ = ["StageFeedback", "WindowFeedback", "csat_by_window", "feedback_by_stage"]

_SCALE = {m: (low, high) for m, (_key, low, high) in cv.FEEDBACK_SCALES.items()}

# Means and spreads rounded to 12 places: DuckDB's parallel sums differ in the last bits with the thread count,
# and the same question must give the same figure from the file, the API and the dashboard.
_ANSWERS = f"""
    count(*) AS responses,
    count(csat), round(avg(csat), 12), round(stddev_samp(csat), 12),
    count(ces), round(avg(ces), 12), round(stddev_samp(ces), 12),
    count(nps), count(*) FILTER (WHERE nps >= {cv.NPS_PROMOTER_MIN}),
    count(*) FILTER (WHERE nps <= {cv.NPS_DETRACTOR_MAX})
"""

# Only the visits that were answered are grouped (a few percent of them): the funnel already counts every visit.
_BY_STAGE = f"""
SELECT journey_name, stage, {_ANSWERS}
FROM stage_visits
WHERE journey_name IS NOT NULL AND feedback_responses > 0 AND {{where}}
GROUP BY ALL
"""

_VISITS = """
SELECT journey_name, stage, count(*) FROM stage_visits WHERE journey_name IS NOT NULL AND {where} GROUP BY ALL
"""

_BY_WINDOW = f"""
SELECT journey_name, stage, time_bucket(?, feedback_at, TIMESTAMP '2000-01-01') AS window_start, {_ANSWERS}
FROM stage_visits
WHERE journey_name IS NOT NULL AND feedback_responses > 0 AND feedback_at IS NOT NULL AND {{where}}
GROUP BY ALL ORDER BY journey_name, stage, window_start
"""


@dataclass(frozen=True)
class StageFeedback:
    """One stage's customer-reported signals."""

    response_rate: Rate
    csat: Mean
    ces: Mean
    nps: NetScore

    @property
    def responses(self) -> int:
        return self.response_rate.k

    def as_dict(self) -> dict[str, Any]:
        """The docs/contracts.md ``csat``/``ces``/``nps`` records (each only when answered), then the response rate."""
        out: dict[str, Any] = {}
        if self.csat.n:
            out["csat"] = self.csat.as_dict()
        if self.ces.n:
            out["ces"] = self.ces.as_dict()
        if self.nps.n:
            out["nps"] = self.nps.as_dict()
        out["feedback_responses"] = self.responses
        out["feedback_response_rate"] = self.response_rate.value
        out["feedback_response_rate_ci"] = [self.response_rate.low, self.response_rate.high]
        return out


@dataclass(frozen=True)
class WindowFeedback:
    """One stage's answers that came in during one time window."""

    journey: str
    stage: str
    window_start: datetime
    responses: int
    csat: Mean

    def as_dict(self) -> dict[str, Any]:
        return {"journey": self.journey, "stage": self.stage, "window_start": self.window_start.isoformat() + "Z",
                "responses": self.responses, "csat": self.csat.as_dict()}


def _answers(row: tuple[Any, ...]) -> tuple[int, Mean, Mean, NetScore]:
    responses, n_csat, m_csat, sd_csat, n_ces, m_ces, sd_ces, n_nps, promoters, detractors = row
    return (
        int(responses),
        mean_interval(int(n_csat), m_csat, sd_csat, *_SCALE["csat"]),
        mean_interval(int(n_ces), m_ces, sd_ces, *_SCALE["ces"]),
        net_promoter(int(n_nps), int(promoters), int(detractors)),
    )


def feedback_by_stage(
    warehouse: Warehouse, filters: Filters | None = None, visits: dict[tuple[str, str], int] | None = None
) -> dict[tuple[str, str], StageFeedback]:
    """Each (journey type, stage) with any feedback, over the visits passing ``filters``.

    ``visits``: the stages' visit counts when the caller has them (the funnel does), saving a scan.
    """
    filters = filters or Filters()
    where, params = filters.where()
    rows = warehouse.query(_BY_STAGE.format(where=where), params)
    if not rows:
        return {}
    if visits is None:
        visits = {(j, s): int(n) for j, s, n in warehouse.query(_VISITS.format(where=where), params)}
    out = {}
    for row in rows:
        responses, csat, ces, nps = _answers(row[2:])
        out[(row[0], row[1])] = StageFeedback(rate(responses, max(responses, visits.get((row[0], row[1]), 0))),
                                              csat, ces, nps)
    return out


def csat_by_window(
    warehouse: Warehouse, window: timedelta, filters: Filters | None = None
) -> list[WindowFeedback]:
    """Per journey type, stage and time window (by when the answers came in): responses and mean CSAT with its CI.

    Windows are aligned to ``window`` from 2000-01-01 UTC, so two calls agree on the boundaries; ``filters``
    select visits as everywhere else (its time window on when the visits began).
    """
    if window <= timedelta(0):
        raise ValueError("csat_by_window() needs a positive window")
    where, params = (filters or Filters()).where()
    rows = warehouse.query(_BY_WINDOW.format(where=where), [window, *params])
    out = []
    for row in rows:
        responses, csat, _ces, _nps = _answers(row[3:])
        if csat.n:
            out.append(WindowFeedback(row[0], row[1], row[2], responses, csat))
    return out

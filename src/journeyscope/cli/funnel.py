"""``journeyscope funnel``: the per-stage funnel as a table or as docs/contracts.md JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.console import Console

from journeyscope.cli.common import console, db_option, map_option
from journeyscope.cli.output import SHORT_LEGEND, TABLE_FORMATS, emit_csv, emit_json, short_name, table
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.funnel import FunnelReport, funnel
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.stats import Mean, Rate


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{low * 100:.0f}–{high * 100:.0f}]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _mean(m: Mean) -> str:
    return "–" if m.mean is None else f"{m.mean:.2f} n={m.n}"


def _rate(r: Rate) -> str:
    return _pct(r.value) + _ci(r.low, r.high)


def render(report: FunnelReport, console: Console) -> None:
    """Per journey type: the funnel, re-entry and time in stage, then each evaluator at each stage.

    Three narrow tables rather than one wide one, so an 80-column terminal shows every column with
    no name cut; rates carry their 95% intervals, evaluator fail rates the visits they count.
    """
    if report.note:
        console.print(report.note)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for journey in report.journeys:
        order = "journey map order" if journey.order == "map" else "order inferred from first entries (no journey map)"
        console.print(f"[bold]{journey.journey}[/]: {journey.total} journeys ({order})")
        names = [s.stage + ("" if s.in_map else " (not in map)") for s in journey.stages]
        flow = table(None, ("stage", "entered", "completed", "completion [95% CI]", "conversion", "dropped"),
                     text=("stage",))
        for name, s in zip(names, journey.stages):
            flow.add_row(name, str(s.entered), str(s.completed), _rate(s.completion),
                         _pct(s.conversion.value) if s.conversion else "–", str(s.dropped))
        console.print(flow)
        again = table(None, ("stage", "re-entered", "re-entry [95% CI]", "visits", "time median / p90"),
                      text=("stage",))
        for name, s in zip(names, journey.stages):
            again.add_row(name, str(s.reentered), _rate(s.reentry), str(s.visits),
                          f"{_duration(s.median_seconds)} / {_duration(s.p90_seconds)}")
        console.print(again)
        scores = table(None, ("stage", "evaluator", "mean", "fail [95% CI]", "n", "unscored"),
                       text=("stage", "evaluator"))
        for name, s in zip(names, journey.stages):
            for e in s.evaluators:
                mean = "–" if e.mean_score is None else f"{e.mean_score:.2f}"
                scores.add_row(name, short_name(e.evaluator), mean, _rate(e.fail_rate), str(e.fail_rate.n),
                               str(e.unscored))
        if scores.row_count:
            console.print(scores)
        if any(s.feedback is not None for s in journey.stages):
            reported = table(None, ("stage", "answered", "CSAT", "CES", "NPS"), text=("stage",))
            for name, s in zip(names, journey.stages):
                if s.feedback is None:
                    continue
                f = s.feedback
                nps = "–" if f.nps.score is None else f"{f.nps.score:+.0f} n={f.nps.n}"
                reported.add_row(name, _pct(f.response_rate.value), _mean(f.csat), _mean(f.ces), nps)
            console.print(reported)
    if any(s.evaluators for j in report.journeys for s in j.stages):
        console.print(f"evaluator: {SHORT_LEGEND}. fail: of the n visits the evaluator could score; "
                      "unscored visits (no evidence, unsupported language) are counted apart.")
    if any(s.feedback is not None for j in report.journeys for s in j.stages):
        console.print("answered: visits with a survey answer; CSAT 1-5, CES 1-7 (means), NPS -100..100; "
                      "their 95% intervals are in --format json or csv.")


def csv_rows(report: FunnelReport) -> list[dict[str, Any]]:
    """One row per journey type and stage: the JSON stage record flattened, then ``EVALUATOR.field``s."""
    rows = []
    for journey in report.journeys:
        for s in journey.stages:
            record = s.as_dict()
            evaluators = record.pop("evaluators")
            row: dict[str, Any] = {"journey": journey.journey, "journey_total": journey.total}
            for key, value in record.items():
                if key.endswith("_ci"):  # an interval, or None
                    row[f"{key}_low"], row[f"{key}_high"] = value if value else (None, None)
                else:
                    row[key] = value
            for e in evaluators:
                name = e["evaluator"]
                row.update({f"{name}.mean_score": e["mean_score"], f"{name}.fail_rate": e["fail_rate"],
                            f"{name}.scored": e["scored"], f"{name}.unscored": e["unscored"]})
            rows.append(row)
    return rows


@click.command("funnel")
@db_option
@map_option
@click.option("--journey", help="Only this journey type.")
@click.option("--cohort", help="Only journeys in this cohort.")
@click.option("--channel", help="Only visits on this channel.")
@click.option("--since", type=click.DateTime(), help="Visits that started at or after this UTC time.")
@click.option("--until", type=click.DateTime(), help="Visits that started before this UTC time.")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True,
              help="table for people; json (the shape in docs/contracts.md) or csv (one row per stage) for scripts.")
def funnel_command(
    db: str,
    map_file: str | None,
    journey: str | None,
    cohort: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    fmt: str,
) -> None:
    """Per-stage funnel: entered, completed, conversion, drop-off, re-entry, time in stage, scores."""
    filters = Filters(journey=journey, cohort=cohort, channel=channel, since=since, until=until)
    with Warehouse(db, read_only=True, journey_map=load_journey_map(map_file)) as warehouse:
        report = funnel(warehouse, filters)
    if fmt == "json":
        emit_json(report.as_dict())
    elif fmt == "csv":
        emit_csv(csv_rows(report))
    else:
        render(report, console())

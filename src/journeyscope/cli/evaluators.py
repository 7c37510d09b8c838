"""``journeyscope evaluators``: how far each evaluator agrees with people's reviews, and its adopted thresholds."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from journeyscope.cli.common import db_option
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.agreement import agreement_report
from journeyscope.warehouse.review_scoring import llm_configured
from journeyscope.warehouse.review_scoring import score_reviewed as score_reviewed_visits
from journeyscope.warehouse.thresholds import ENGINES, adopt, history


@click.group()
def evaluators() -> None:
    """Agreement of the evaluators with your reviews; calibrated thresholds, adopted explicitly."""


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _with_ci(row: dict, name: str) -> str:
    value, low, high = row[name], row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if value is None:
        return "–"
    return f"{value:.2f} [{low:.2f}–{high:.2f}]" if low is not None and high is not None else f"{value:.2f}"


def _scope(row: dict) -> str:
    if row["journey"] is None:
        return "overall"
    return row["journey"] + (f" / {row['stage']}" if row["stage"] else "")


@evaluators.command(name="agreement")
@db_option
@click.option("--evaluator", help="Only this evaluator.")
@click.option("--engine", type=click.Choice(ENGINES), help="Only results of this engine.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--score-reviewed", is_flag=True,
              help="First score the reviewed visits with each engine that has not scored them yet: local, and llm "
                   "when JOURNEYSCOPE_LLM_BASE_URL and _MODEL are set (cached), so both show on the same reviews.")
def agreement_command(db: str, evaluator: str | None, engine: str | None, fmt: str, score_reviewed: bool) -> None:
    """Each evaluator against the reviews: n, AUROC, Cohen's kappa, precision and recall of 'passed' (95%
    intervals), the threshold in force and a suggested one; overall, per journey type and per stage."""
    if score_reviewed:
        with Warehouse(db) as warehouse:
            for name in ("local", "llm") if llm_configured() else ("local",):
                done = score_reviewed_visits(warehouse, name)
                calls = f", {done.llm_calls} judge calls" if done.llm_calls else ""
                kept = f", {done.no_consent} kept from the judge (no consent)" if done.no_consent else ""
                click.echo(f"{name}: {done.scored} reviewed results scored, {done.up_to_date} already scored"
                           f"{kept}{calls}", err=True)
    with Warehouse(db, read_only=True) as warehouse:
        report = agreement_report(warehouse, evaluator, engine)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not report["evaluators"]:
        console.print("No reviewed visits with a score yet: import reviews with 'journeyscope reviews import "
                      "FILE.jsonl' or label visits on the dashboard's Review page, then evaluate.")
        return
    table = Table(title=f"Agreement with {report['reviews']} reviews (95% intervals)", title_justify="left")
    for column in ("evaluator", "engine", "scope", "n", "pass/fail", "AUROC", "kappa", "precision", "recall",
                   "threshold", "suggested"):
        table.add_column(column, justify="left" if column in ("evaluator", "engine", "scope") else "right")
    for row in report["evaluators"]:
        table.add_row(row["evaluator"], row["engine"], _scope(row), str(row["n"]),
                      f"{row['reviewed_pass']}/{row['reviewed_fail']}", _with_ci(row, "auroc"),
                      _with_ci(row, "kappa"), _with_ci(row, "precision"), _with_ci(row, "recall"),
                      _num(row["threshold"], 3) + (f" (v{row['threshold_version']})" if row["threshold_version"] else ""),
                      _num(row["suggested_threshold"], 3))
    console.print(table)
    console.print(f"intervals: {report['intervals']}; suggested: {report['suggestion_rule']}.")


@evaluators.command(name="adopt")
@click.argument("evaluator")
@click.option("--threshold", type=float, required=True, help="Score at or above which a visit passes (0 to 1).")
@click.option("--reason", required=True, help="Why (kept with the version, and in the audit log).")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True)
@click.option("--journey", help="Only for this journey type.")
@click.option("--stage", help="Only for this stage.")
@db_option
def adopt_command(evaluator: str, threshold: float, reason: str, engine: str, journey: str | None,
                  stage: str | None, db: str) -> None:
    """Adopt THRESHOLD for EVALUATOR: a new version, recorded with who, when, why and the value it replaces;
    stored results it covers are decided again (their scores never change)."""
    with Warehouse(db) as warehouse:
        adopted, decided = adopt(warehouse, evaluator, threshold, reason=reason, engine=engine, journey=journey,
                                 stage=stage)
    scope = " / ".join(x for x in (journey, stage) if x) or "everywhere"
    was = "built-in" if adopted.previous_version is None else f"v{adopted.previous_version}"
    previous = "none" if adopted.previous is None else f"{adopted.previous:g}"
    click.echo(f"adopted {evaluator} ({engine}, {scope}) threshold {adopted.threshold:g} as version "
               f"{adopted.version} (was {previous}, {was}); {decided} stored results decided by it")


@evaluators.command(name="thresholds")
@db_option
@click.option("--evaluator", help="Only this evaluator.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def thresholds_command(db: str, evaluator: str | None, fmt: str) -> None:
    """Every threshold ever adopted, oldest first."""
    with Warehouse(db, read_only=True) as warehouse:
        rows = [t.as_dict() for t in history(warehouse.cursor(), evaluator)]
    if fmt == "json":
        click.echo(json.dumps({"thresholds": rows}, indent=2))
        return
    if not rows:
        click.echo("No threshold adopted: every evaluator decides at its built-in threshold.")
        return
    table = Table(title="Adopted thresholds", title_justify="left")
    for column in ("version", "evaluator", "engine", "scope", "threshold", "previous", "reviews", "actor",
                   "adopted (UTC)", "reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["version"]), r["evaluator"], r["engine"], _scope(r), f"{r['threshold']:g}",
                      _num(r["previous"], 3), str(r["reviews"]), r["actor"], r["adopted_at"][:19], r["reason"])
    Console(width=None if sys.stdout.isatty() else 160).print(table)

"""``journeyscope evaluate``: score every stage visit not yet scored, then summarise."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import click
from rich.console import Console

from journeyscope.cli.common import console, db_option, map_option, require_warehouse
from journeyscope.cli.output import SHORT_LEGEND, TABLE_FORMATS, emit_csv, emit_json, short_name, table
from journeyscope.errors import InvalidInputError
from journeyscope.evaluators import registered
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.evaluations import (
    DEFAULT_WORKERS,
    ENGINES,
    NO_CONSENT_POLICIES,
    EvaluationSummary,
    evaluate_pending,
)


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _print_summary(summary: EvaluationSummary, out: Console, fmt: str = "table") -> None:
    if fmt == "json":
        emit_json(summary.as_dict())
        return
    if fmt == "csv":
        emit_csv(summary.as_dict()["evaluators"])
        return
    rate = f" ({summary.visits_per_second:,.0f} visits/s)" if summary.scored else ""
    out.print(
        f"{summary.scored} stage visits scored with the {summary.engine} engine in {summary.seconds:.1f}s{rate}; "
        f"{summary.up_to_date} already up to date, {summary.skipped_open} skipped (still open), "
        f"{summary.errors} errors",
        highlight=False,
    )
    if summary.no_consent:
        out.print(f"{summary.no_consent} visits kept from the LLM judge: no consent to AI evaluation", highlight=False)
    if summary.changed:
        out.print(f"{summary.changed} visits changed while being read; the next run scores them", highlight=False)
    if summary.llm_calls:
        out.print(f"{summary.llm_calls} LLM judge calls", highlight=False)
    if not summary.evaluators:
        return
    rows = table("Evaluations in the warehouse",
                 ("evaluator", "visits", "scored", "mean score", "fail rate", "errors"), text=("evaluator",))
    for s in summary.evaluators:
        mean = "-" if s.mean_score is None else f"{s.mean_score:.3f}"
        rows.add_row(short_name(s.evaluator), str(s.results), str(s.scored), mean, _percent(s.fail_rate),
                     str(s.errors))
    out.print(rows)
    out.print(f"evaluator: {SHORT_LEGEND}; fail rate: of the scored visits.")


@click.command()
@db_option
@map_option
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: deterministic, no network. llm: an OpenAI-compatible judge (JOURNEYSCOPE_LLM_*).")
@click.option("--evaluator", "evaluators", multiple=True, metavar="NAME",
              help="Run only this evaluator (repeatable). Default: every registered evaluator.")
@click.option("--on-no-consent", type=click.Choice(NO_CONSENT_POLICIES), default="local", show_default=True,
              help="With --engine llm, visits of customers without consent to AI evaluation: "
                   "score them locally, or skip them.")
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=8, show_default=True,
              help="Parallel LLM judge calls.")
@click.option("--workers", type=click.IntRange(min=0, max=64), default=DEFAULT_WORKERS, show_default=True,
              help="Processes that run the local evaluators (0: all in this process). Default: one per CPU.")
@click.option("--format", "fmt", type=click.Choice(TABLE_FORMATS), default="table", show_default=True,
              help="How to print the summary: table for people, json or csv for scripts.")
def evaluate(db: str, map_file: str | None, engine: str, evaluators: tuple[str, ...], on_no_consent: str,
             concurrency: int, workers: int, fmt: str) -> None:
    """Score every stage visit not yet scored by the current evaluator versions.

    Visits whose outcome is still open are skipped (they may still grow); re-running adds nothing
    new unless spans, an evaluator's version or the engine changed.
    """
    known = registered()
    unknown = [n for n in evaluators if n not in known]
    if unknown:
        raise InvalidInputError(f"unknown evaluator(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    require_warehouse(db)
    with Warehouse(db, journey_map=load_journey_map(map_file)) as warehouse, \
            _progress_bar(console(stderr=True)) as on_progress:
        summary = evaluate_pending(warehouse, engine, list(evaluators) or None, on_progress,
                                   on_no_consent=on_no_consent, concurrency=concurrency, workers=workers)
    _print_summary(summary, console(), fmt)


@contextlib.contextmanager
def _progress_bar(err: Console) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on a terminal, called as ``(done, total)``; none when stderr is a file or a pipe, which a
    bar that erases itself would leave empty anyway (and the command then neither loads nor redraws one)."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task("visits", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)

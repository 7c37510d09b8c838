"""Accuracy of the local evaluators on the STAR development dialogues (real, labelled text).

Run:  python benchmarks/star_accuracy.py [--data tests/data/star] [--direct] [--by-task]

By default the dialogues go through the real pipeline: ``journeyscope.warehouse.importer.import_jsonl``
into a temporary DuckDB warehouse (spans, then stage visits), ``evaluate_pending`` (transcripts rebuilt
from the warehouse), and the figures are computed from the ``evaluations`` table joined to the labels
on ``(journey_id, stage, visit)``. ``--direct`` instead groups the JSONL turns into visits in Python and
calls the evaluators directly (no warehouse; visit outcomes unknown).

Prints AUROC of ``conversation_resolution`` against ``resolved``, AUROC and recall at 5% false-positive
rate of (1 - ``customer_agent_context_retention``) against ``retention_failure``, AUROC of journey-level
``customer_agent_conversation_quality`` (mean and min over a journey's visits) against ``calm_helpful`` and,
journey mean only, against the weaker proxies ``task_success``, completion (the customer did not disconnect)
and ``user_annoyed``; on all journeys, on odd and even journeys, and on two halves of the tasks (by a
journey's first task), so figures that hinge on one half, or on one half's phrasing, show. ``--by-task`` adds the resolution AUROC per STAR task (= stage) and without
each task (leave-one-task-out: a rule change must not help the aggregate by hurting one task), and, with
``--direct``, where the remaining resolution rank errors sit (by the outcome pattern the evaluator saw).
Labels are read only here, never by an evaluator.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from journeyscope.evaluators import EvalResult, StageVisit, Turn, VisitContext
from journeyscope.evaluators.engine import evaluate_visit

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "star"


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def load_visit_contexts(path: Path | str) -> list[VisitContext]:
    """Group each journey of an import-format JSONL(.gz) file into stage visits, each with its history.

    A stage visit is a maximal run of consecutive turns with the same ``stage``; turns without a
    stage neither start nor break a visit; ``visit`` counts visits to that stage in the journey.
    This stands in for the warehouse import until the benchmark goes through it.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    contexts: list[VisitContext] = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            runs: list[tuple[str, list[Turn]]] = []
            for t in rec.get("turns", []):
                if t.get("event") is not None:
                    continue
                turn = Turn(t.get("role", ""), t.get("text") or "", _ts(t.get("ts")), t.get("stage"),
                            t.get("channel") or rec.get("channel"), t.get("name"))
                if turn.stage is None:
                    if runs:
                        runs[-1][1].append(turn)
                    continue
                if runs and runs[-1][0] == turn.stage:
                    runs[-1][1].append(turn)
                else:
                    runs.append((turn.stage, [turn]))
            seen: dict[str, int] = {}
            visits: list[StageVisit] = []
            for stage, turns in runs:
                seen[stage] = seen.get(stage, 0) + 1
                stamps = [t.ts for t in turns if t.ts is not None]
                visits.append(StageVisit(
                    journey_id=rec["journey_id"], stage=stage, visit=seen[stage], turns=tuple(turns),
                    customer_id=rec.get("customer_id"), journey_name=rec.get("journey"),
                    channel=rec.get("channel"), started_at=min(stamps, default=None),
                    ended_at=max(stamps, default=None)))
            for i, v in enumerate(visits):
                contexts.append(VisitContext(v, tuple(visits[:i])))
    return contexts


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties given average ranks."""
    pairs = sorted(zip(scores, labels), key=lambda p: p[0])
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2
        rank_sum += avg_rank * sum(lab for _, lab in pairs[i:j])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def recall_at_fpr(scores: Sequence[float], labels: Sequence[int], fpr: float = 0.05) -> float:
    """Recall of positives at the strictest threshold whose false-positive rate stays <= ``fpr``."""
    negs = sorted((s for s, lab in zip(scores, labels) if not lab), reverse=True)
    pos = [s for s, lab in zip(scores, labels) if lab]
    if not negs or not pos:
        return float("nan")
    allowed = int(fpr * len(negs))
    # Threshold strictly above the (allowed+1)-th highest negative: ties there would exceed the rate.
    cut = negs[allowed] if allowed < len(negs) else float("-inf")
    return sum(1 for s in pos if s > cut) / len(pos)


@dataclass
class Figures:
    """The accuracy figures for one set of journeys."""

    journeys: int
    resolution_auroc: float
    resolution_n: tuple[int, int]
    retention_auroc: float
    retention_recall5: float
    retention_n: tuple[int, int]
    retention_fail_recall: float  #: recall when "failed" means passed=False (score < 0.5)
    retention_fail_fpr: float
    quality_auroc: float  #: journey score = mean of its visits' quality
    quality_min_auroc: float  #: journey score = worst visit's quality
    quality_n: tuple[int, int]
    #: quality (journey mean) against the weaker proxies of satisfaction: ``task_success`` (the customer's own
    #: answer), journey completion (1: Complete, 0: the customer disconnected), ``user_annoyed`` (1 = annoyed
    #: counts as the negative class); each (AUROC, (pos, neg)); NaN when the labels have one class only.
    quality_proxies: dict[str, tuple[float, tuple[int, int]]]


def _load_labels(path: Path) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, dict[str, Any]]]:
    visits: dict[tuple[str, int], dict[str, Any]] = {}
    journeys: dict[str, dict[str, Any]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["stage"] is None:
                journeys[rec["journey_id"]] = rec
            else:
                visits[(rec["journey_id"], rec["position"])] = rec
    return visits, journeys


NAMES = ["conversation_resolution", "customer_agent_context_retention", "customer_agent_conversation_quality"]


def score_through_warehouse(data: Path, vlabels_by_key: dict[tuple[str, str, int], dict[str, Any]],
                            db: Path | None = None) -> tuple[list[tuple[str, dict[str, Any] | None,
                                                                         dict[str, float | None]]], int, float]:
    """Import ``data/dev.jsonl.gz`` into a fresh warehouse, run ``evaluate_pending``, read ``evaluations``.

    Returns ``(items for figures_of, visits scored, seconds spent in evaluate_pending)``.
    """
    from journeyscope.warehouse import JourneyMap, Warehouse
    from journeyscope.warehouse.evaluations import evaluate_pending
    from journeyscope.warehouse.importer import import_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "star.duckdb"
        with Warehouse(path, journey_map=JourneyMap()) as wh:
            import_jsonl(wh, data / "dev.jsonl.gz")
            summary = evaluate_pending(wh, "local", NAMES)
            rows = wh.query("SELECT journey_id, stage, visit, evaluator, score FROM evaluations "
                            "WHERE error IS NULL ORDER BY ALL")
    scores: dict[tuple[str, str, int], dict[str, float | None]] = {}
    for jid, stage, visit, name, score in rows:
        scores.setdefault((jid, stage, visit), {n: None for n in NAMES})[name] = score
    items = [(k[0], vlabels_by_key.get(k), sc) for k, sc in scores.items()]
    return items, summary.scored, summary.seconds


def score_all(contexts: Iterable[VisitContext]) -> list[tuple[VisitContext, dict[str, float | None]]]:
    """Run the local engine's three conversation evaluators on every visit."""
    return [(c, {r.evaluator: r.score for r in evaluate_visit(c, evaluators=NAMES)}) for c in contexts]


def figures(scored: list[tuple[VisitContext, dict[str, float | None]]], vlabels: dict[tuple[str, int], Any],
            jlabels: dict[str, Any], keep: Callable[[str], bool]) -> Figures:
    """Compute the figures over the journeys for which ``keep(journey_id)`` holds (direct path)."""
    items = [(ctx.visit.journey_id, vlabels.get((ctx.visit.journey_id, len(ctx.history))), sc) for ctx, sc in scored]
    return figures_of(items, jlabels, keep)


def figures_of(items: Sequence[tuple[str, dict[str, Any] | None, dict[str, float | None]]], jlabels: dict[str, Any],
               keep: Callable[[str], bool]) -> Figures:
    """The figures from ``(journey_id, visit labels or None, {evaluator: score})`` per scored visit."""
    res_s, res_y, ret_s, ret_y = [], [], [], []
    quality: dict[str, list[float]] = {}
    for jid, lab, sc in items:
        if not keep(jid):
            continue
        if lab is None:
            continue
        r = sc["conversation_resolution"]
        if lab["resolved"] is not None:
            res_s.append(0.5 if r is None else r)
            res_y.append(int(lab["resolved"]))
        k = sc["customer_agent_context_retention"]
        if lab["retention_failure"] is not None:
            ret_s.append(0.0 if k is None else 1.0 - k)
            ret_y.append(int(lab["retention_failure"]))
        q = sc["customer_agent_conversation_quality"]
        if q is not None:
            quality.setdefault(jid, []).append(q)
    q_mean, q_min, q_y = [], [], []
    proxies: dict[str, tuple[list[float], list[int]]] = {k: ([], []) for k in PROXIES}
    for jid, qs in quality.items():
        jl = jlabels.get(jid, {})
        ch = jl.get("calm_helpful")
        if ch is not None:
            q_mean.append(sum(qs) / len(qs))
            q_min.append(min(qs))
            q_y.append(int(ch))
        for name, to_y in PROXIES.items():
            y = to_y(jl)
            if y is not None:
                proxies[name][0].append(sum(qs) / len(qs))
                proxies[name][1].append(y)
    n_j = len({jid for jid, _, _ in items if keep(jid)})
    flagged = [s > 0.5 for s in ret_s]
    pos, neg = max(1, sum(ret_y)), max(1, len(ret_y) - sum(ret_y))
    fail_recall = sum(1 for f, y in zip(flagged, ret_y) if f and y) / pos
    fail_fpr = sum(1 for f, y in zip(flagged, ret_y) if f and not y) / neg
    return Figures(n_j, auroc(res_s, res_y), (sum(res_y), len(res_y) - sum(res_y)),
                   auroc(ret_s, ret_y), recall_at_fpr(ret_s, ret_y), (sum(ret_y), len(ret_y) - sum(ret_y)),
                   fail_recall, fail_fpr,
                   auroc(q_mean, q_y), auroc(q_min, q_y), (sum(q_y), len(q_y) - sum(q_y)),
                   {k: (auroc(sc, ys), (sum(ys), len(ys) - sum(ys))) for k, (sc, ys) in proxies.items()})


def _bool_label(key: str, good_when: bool = True) -> Callable[[dict[str, Any]], int | None]:
    def to_y(jl: dict[str, Any]) -> int | None:
        v = jl.get(key)
        return None if v is None else int(bool(v) == good_when)
    return to_y


#: Journey-level proxies of a satisfied customer (1 = satisfied), besides ``calm_helpful``.
PROXIES: dict[str, Callable[[dict[str, Any]], int | None]] = {
    "task_success": _bool_label("task_success"),
    "completion": lambda jl: None if jl.get("completion") is None else int(jl["completion"] == "Complete"),
    "user_annoyed": _bool_label("user_annoyed", good_when=False),
}


@dataclass
class TaskFigures:
    """Resolution AUROC for one task (stage) and for every journey visit outside it."""

    task: str
    n: tuple[int, int]  #: (resolved, unresolved) labelled visits of the task
    auroc: float  #: within the task; for a one-class task, its visits against the other class of all other tasks
    one_class: bool
    auroc_without: float  #: all labelled visits of the other tasks


def task_figures(items: Sequence[tuple[str, dict[str, Any] | None, dict[str, float | None]]]) -> list[TaskFigures]:
    """Per-task resolution figures, so a change is judged task by task and not only in aggregate.

    Many STAR tasks have labelled visits of one class only (every labelled visit unresolved); their
    within-task AUROC is undefined, so they are ranked against the other class's visits of every other
    task instead: the question that matters for them is whether their failures sort below others' successes.
    """
    rows = [(lab["stage"], 0.5 if sc["conversation_resolution"] is None else sc["conversation_resolution"],
             int(lab["resolved"])) for _, lab, sc in items if lab is not None and lab["resolved"] is not None]
    out = []
    for task in sorted({t for t, _, _ in rows}):
        mine = [(s, y) for t, s, y in rows if t == task]
        pos = sum(y for _, y in mine)
        one_class = pos in (0, len(mine))
        if one_class:
            mine = mine + [(s, y) for t, s, y in rows if t != task and y != mine[0][1]]
        rest = [(s, y) for t, s, y in rows if t != task]
        out.append(TaskFigures(task, (pos, sum(1 for t, _, y in rows if t == task and not y)),
                               auroc([s for s, _ in mine], [y for _, y in mine]), one_class,
                               auroc([s for s, _ in rest], [y for _, y in rest])))
    return out


def resolution_error_groups(results: Sequence[tuple[EvalResult, dict[str, Any] | None]],
                            ) -> list[tuple[str, str, float]]:
    """Share of all (resolved, unresolved) visit pairs ranked wrongly (ties half), by the two visits' outcome patterns.

    ``results`` are ``(conversation_resolution EvalResult, visit labels)``. The pattern is what the evaluator saw:
    a clean success, a success after an earlier failure, a final failure, or no stated outcome. This is the
    error analysis behind the README's account of why resolution stays below 0.97.
    """
    def group(r: EvalResult) -> str:
        ev = r.evidence
        if "escalation" in ev:
            return "hand-off"
        if "outcome" not in ev:
            return "tool status only" if "tool_result" in ev else "no stated outcome"
        if ev["polarity"] > 0:
            return "success after failure" if ev.get("failures_before") else "clean success"
        return "failure"

    rows = [(0.5 if r.score is None else r.score, int(lab["resolved"]), group(r))
            for r, lab in results if lab is not None and lab["resolved"] is not None]
    pos = [(s, g) for s, y, g in rows if y]
    neg = [(s, g) for s, y, g in rows if not y]
    loss: dict[tuple[str, str], float] = {}
    for sp, gp in pos:
        for sn, gn in neg:
            if sp <= sn:
                loss[(gp, gn)] = loss.get((gp, gn), 0.0) + (0.5 if sp == sn else 1.0)
    total = max(1, len(pos) * len(neg))
    return sorted(((gp, gn, v / total) for (gp, gn), v in loss.items()), key=lambda x: -x[2])


def _is_odd(jid: str) -> bool:
    digits = "".join(ch for ch in jid if ch.isdigit())
    return bool(digits) and int(digits) % 2 == 1


def _tasks_a(first_stage: dict[str, str]) -> Callable[[str], bool]:
    """Journeys whose first task is in the alphabetically even half of the tasks (the other half: ``not``).

    A split by task rather than by journey number: wording is shared within a task, so a rule fitted to
    one half's tasks and tested on the other's shows whether it generalises beyond the phrasing it saw.
    """
    tasks = sorted(set(first_stage.values()))
    half = {t for i, t in enumerate(tasks) if i % 2 == 0}
    return lambda jid: first_stage.get(jid) in half


def markdown(rows: list[tuple[str, Figures]]) -> str:
    """The figures as markdown tables: resolution and retention, then quality against each label."""
    out = [("| split | journeys | resolution AUROC (pos/neg) | retention AUROC | retention recall@5%FPR "
            "(pos/neg) |"), "|---|---|---|---|---|"]
    for name, f in rows:
        out.append(f"| {name} | {f.journeys} | {f.resolution_auroc:.4f} ({f.resolution_n[0]}/{f.resolution_n[1]}) | "
                   f"{f.retention_auroc:.4f} | {f.retention_recall5:.3f} ({f.retention_n[0]}/{f.retention_n[1]}) |")
    out += ["", "| split | quality AUROC vs calm_helpful, journey mean / min (pos/neg) | "
                + " | ".join(f"vs {k} (pos/neg)" for k in PROXIES) + " |",
            "|---|---|" + "---|" * len(PROXIES)]
    for name, f in rows:
        cells = [f"{a:.4f} ({n[0]}/{n[1]})" if not math.isnan(a) else "n/a (no labels)" if not sum(n) else "n/a (one class)"
                 for a, n in f.quality_proxies.values()]
        out.append(f"| {name} | {f.quality_auroc:.4f} / {f.quality_min_auroc:.4f} ({f.quality_n[0]}/{f.quality_n[1]}) | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Score the STAR dev split and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--direct", action="store_true",
                    help="score visits grouped in Python, without the warehouse (the pre-pipeline path)")
    ap.add_argument("--by-task", action="store_true",
                    help="also print resolution AUROC per task and leave-one-task-out (and, with --direct, "
                         "where the rank errors sit)")
    args = ap.parse_args(argv)
    vlabels, jlabels = _load_labels(args.data / "dev-labels.jsonl.gz")
    if args.direct:
        contexts = load_visit_contexts(args.data / "dev.jsonl.gz")
        t0 = time.perf_counter()
        scored = score_all(contexts)
        dt = time.perf_counter() - t0
        items = [(c.visit.journey_id, vlabels.get((c.visit.journey_id, len(c.history))), sc) for c, sc in scored]
        n, how = len(contexts), "directly"
    else:
        by_key = {(lab["journey_id"], lab["stage"], lab["visit"]): lab for lab in vlabels.values()}
        items, n, dt = score_through_warehouse(args.data, by_key)
        how = "through the warehouse (import, evaluate_pending, evaluations table)"
    first_stage = {lab["journey_id"]: lab["stage"] for lab in vlabels.values() if lab["position"] == 0}
    in_a = _tasks_a(first_stage)
    rows = [("all", figures_of(items, jlabels, lambda j: True)),
            ("odd journeys", figures_of(items, jlabels, _is_odd)),
            ("even journeys", figures_of(items, jlabels, lambda j: not _is_odd(j))),
            ("tasks A (first task)", figures_of(items, jlabels, in_a)),
            ("tasks B (first task)", figures_of(items, jlabels, lambda j: not in_a(j)))]
    print(f"{n} stage visits scored {how} in {dt:.2f} s (3 evaluators, {n / dt:.0f} visits/s)\n")
    print(markdown(rows))
    f = rows[0][1]
    print(f"\nretention at the evaluator's own threshold (passed=False): recall {f.retention_fail_recall:.3f}, "
          f"false-positive rate {f.retention_fail_fpr:.4f}")
    if args.by_task:
        print("\n| task | resolved/unresolved | resolution AUROC in the task | AUROC without the task |\n|---|---|---|---|")
        for t in task_figures(items):
            within = f"{t.auroc:.4f}" + (" (one class: vs the other tasks' other class)" if t.one_class else "")
            print(f"| {t.task} | {t.n[0]}/{t.n[1]} | {within} | {t.auroc_without:.4f} |")
        if args.direct:
            from journeyscope.evaluators.resolution import conversation_resolution

            labelled = [(conversation_resolution(c), vlabels.get((c.visit.journey_id, len(c.history))))
                        for c in contexts]
            print("\nresolution rank errors (share of all resolved/unresolved pairs), by outcome pattern:")
            for gp, gn, share in resolution_error_groups(labelled):
                print(f"  resolved visit with {gp} <= unresolved visit with {gn}: {share:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Running the evaluators over the warehouse: every stage visit scored once per evaluator version.

:func:`evaluate_pending` finds the visits that need a (new) score, rebuilds their transcripts
(:mod:`journeyscope.warehouse.transcripts`), runs the engine and writes the results to
``evaluations``, one row per ``(journey_id, stage, visit, evaluator)``, a batch per write.

A visit is scored for an evaluator when it has no row yet, or its row was made

- by another evaluator version or engine than the one this run would use (a bumped ``VERSION``,
  a new rubric or model, a switch between ``local`` and ``llm``),
- from other input (``input_hash``: the visit's and its journey's earlier visits' transcripts,
  times, channels and outcomes), or
- with an ``error`` (a judge that timed out is asked again next run).

Visits whose outcome is still ``open`` are not scored (they may still grow); the summary counts
them. Re-running with nothing new writes nothing.

**Consent.** A journey any of whose spans carries ``customer.consent`` without ``ai_evaluation``
never goes to the LLM judge: its judged evaluators are scored locally instead (the reason says so,
``evidence.consent = "no_ai_evaluation"``), or, with ``on_no_consent="skip"``, get a row with
``engine = "skipped"``, ``label = "no_consent"`` and no score. Friction signals are measurements and
always run locally.

**Writes** go through the warehouse's one connection under its write lock (the single-writer rule
of :mod:`journeyscope.warehouse.store`), one ``INSERT OR REPLACE`` of an Arrow batch per batch of
journeys, together with the LLM verdicts cached while scoring it. Each row also gets its visit's
journey type and cohort (:mod:`journeyscope.warehouse.journey_facts`), read in the same transaction.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from collections import deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from journeyscope.evaluators import EvalResult, registered
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse import feed
from journeyscope.warehouse import evaluation_scoring as scoring
from journeyscope.warehouse import journey_facts, thresholds
from journeyscope.warehouse.dialect import insert_replacing
from journeyscope.warehouse.store import Warehouse
from journeyscope.warehouse.transcripts import VisitKey, build_contexts, read_batch, visit_keys_sql

from journeyscope.errors import ConfigError, InvalidInputError, WarehouseError

if TYPE_CHECKING:
    from journeyscope.evaluators.llm import LLMEngine

__all__ = [
    "DEFAULT_WORKERS",
    "EVALUATIONS_EXPORT",
    "GENAI_EVALUATION_EVENT",
    "EvaluationSummary",
    "EvaluatorStats",
    "WarehouseVerdictCache",
    "evaluate_pending",
    "evaluator_stats",
    "genai_evaluation_attributes",
    "scoring_processes",
]

ENGINES = ("local", "llm")
NO_CONSENT_POLICIES = ("local", "skip")
#: Label and engine of a visit not judged because the customer did not consent to AI evaluation.
NO_CONSENT = "no_consent"
SKIPPED = "skipped"
#: Journeys per batch: one transcript read and one write each.
BATCH_JOURNEYS = 500

#: OpenTelemetry GenAI semantic conventions: the evaluation result event and its attributes.
GENAI_EVALUATION_EVENT = "gen_ai.evaluation.result"
GENAI_EVALUATION_NAME = "gen_ai.evaluation.name"
GENAI_EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
GENAI_EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
GENAI_EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"

_ISO = "'%Y-%m-%dT%H:%M:%S.%fZ'"

#: ``journeyscope export evaluations``: the documented record, then the extras, then the same result
#: as ``gen_ai.evaluation.result`` event attributes (nulls left out, as OpenTelemetry requires).
EVALUATIONS_EXPORT = f"""
    SELECT journey_id, stage, visit, evaluator, score, passed, label, reason,
           version, engine, error, strftime(evaluated_at, {_ISO}) AS evaluated_at, evidence, input_hash,
           threshold_version,
           json_merge_patch('{{}}', json_object(
               '{GENAI_EVALUATION_NAME}', evaluator,
               '{GENAI_EVALUATION_SCORE_VALUE}', score,
               '{GENAI_EVALUATION_SCORE_LABEL}',
                   coalesce(label, CASE WHEN passed THEN 'pass' WHEN NOT passed THEN 'fail' END),
               '{GENAI_EVALUATION_EXPLANATION}', reason,
               '{ERROR_TYPE}', error)) AS gen_ai_evaluation
    FROM evaluations ORDER BY journey_id, stage, visit, evaluator
"""

_RESULT_SCHEMA = pa.schema([
    ("journey_id", pa.string()), ("stage", pa.string()), ("visit", pa.int32()), ("evaluator", pa.string()),
    ("version", pa.string()), ("engine", pa.string()), ("score", pa.float64()), ("passed", pa.bool_()),
    ("label", pa.string()), ("reason", pa.string()), ("evidence", pa.string()), ("error", pa.string()),
    ("input_hash", pa.string()), ("evaluated_at", pa.timestamp("us")),
])


def genai_evaluation_attributes(result: EvalResult | dict[str, Any]) -> dict[str, Any]:
    """One evaluation as the attributes of an OTel GenAI ``gen_ai.evaluation.result`` event.

    Takes an :class:`EvalResult` or an ``evaluations`` row (dict). Attributes without a value are
    left out; ``error.type`` is set when the evaluation failed.
    """
    get = result.get if isinstance(result, dict) else lambda k: getattr(result, k)
    label = get("label")
    if label is None and get("passed") is not None:
        label = "pass" if get("passed") else "fail"
    attrs = {
        GENAI_EVALUATION_NAME: get("evaluator"),
        GENAI_EVALUATION_SCORE_VALUE: get("score"),
        GENAI_EVALUATION_SCORE_LABEL: label,
        GENAI_EVALUATION_EXPLANATION: get("reason"),
        ERROR_TYPE: get("error"),
    }
    return {k: v for k, v in attrs.items() if v is not None}


# -- writing under the single-writer rule ------------------------------------------------------------
def _write(warehouse: Warehouse, fn: Callable[[duckdb.DuckDBPyConnection], Any],
           journeys: list[str] | None = None) -> Any:
    """Run ``fn(cursor)`` in one :meth:`Warehouse.transaction`; ``journeys`` scored are published as ``scores``."""
    with warehouse.transaction("write evaluations") as tx:
        out = fn(tx.cur)
        if journeys:
            tx.publish(feed.SCORES, journeys)
        return out


class WarehouseVerdictCache:
    """The LLM judge's :class:`~journeyscope.evaluators.cache.VerdictCache`, kept in the warehouse.

    ``get`` reads table ``llm_verdicts`` (and verdicts not yet written); ``put`` holds the verdict in
    memory until :meth:`flush` or the evaluation batch that produced it writes it, in the same
    transaction as the results, so the write stays on the one writer. Thread-safe.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse
        self._pending: dict[str, dict[str, Any]] = {}
        self._mutex = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._mutex:
            hit = self._pending.get(key)
        if hit is not None:
            return dict(hit)
        cur = self._warehouse.cursor()
        try:
            row = cur.execute("SELECT verdict FROM llm_verdicts WHERE key = ?", [key]).fetchone()
        except duckdb.Error:
            return None
        finally:
            cur.close()
        return json.loads(row[0]) if row else None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        with self._mutex:
            self._pending[key] = dict(verdict)

    def write_pending(self, cur: duckdb.DuckDBPyConnection, journeys: dict[str, str] | None = None) -> int:
        """Write the verdicts held in memory on ``cur`` (inside the caller's transaction).

        ``journeys`` maps cache keys to the journey whose visit the verdict is about (stored so that
        erasing that journey also erases the verdict, which may quote the customer).
        """
        with self._mutex:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        keys = list(pending)
        journeys = journeys or {}
        table = pa.table({
            "key": pa.array(keys, pa.string()),
            "journey_id": pa.array([journeys.get(k) for k in keys], pa.string()),
            "verdict": pa.array([json.dumps(pending[k], ensure_ascii=False, default=str) for k in keys], pa.string()),
        })
        cur.register("js_verdicts", table)
        try:
            insert_replacing(cur, "llm_verdicts", "SELECT key, verdict, journey_id, now()::TIMESTAMP AS created_at "
                             "FROM js_verdicts", ("key",), by_name=True)
        finally:
            cur.unregister("js_verdicts")
        return len(keys)

    def flush(self) -> int:
        """Write the verdicts held in memory now; return how many."""
        return int(_write(self._warehouse, self.write_pending))

    def __len__(self) -> int:
        row = self._warehouse.query("SELECT count(*) FROM llm_verdicts")[0]
        return int(row[0]) + len(self._pending)


# -- the plan: which engine and version each evaluator gets ---------------------------------------------
@dataclass(frozen=True, slots=True)
class _Plan:
    evaluator: str
    engine_ok: str  #: engine for a visit with consent (or any visit when the engine is local)
    version_ok: str
    engine_nc: str  #: engine for a visit without consent to AI evaluation
    version_nc: str


def _plans(names: Sequence[str], judge: LLMEngine | None, on_no_consent: str) -> list[_Plan]:
    specs = registered()
    judged: set[str] = set()
    if judge is not None:
        from journeyscope.evaluators.rubrics import RUBRICS

        judged = set(RUBRICS)
    out = []
    for n in names:
        local = specs[n].version
        if judge is None or n not in judged:
            out.append(_Plan(n, "local", local, "local", local))
        elif on_no_consent == "local":
            out.append(_Plan(n, "llm", judge.version, "local", local))
        else:
            out.append(_Plan(n, "llm", judge.version, SKIPPED, judge.version))
    return out


_PENDING = """
WITH k AS ({keys}),
p AS (SELECT * FROM js_plan),
kp AS (
    SELECT k.*, p.evaluator,
           CASE WHEN k.ai_consent THEN p.engine_ok ELSE p.engine_nc END AS engine,
           CASE WHEN k.ai_consent THEN p.version_ok ELSE p.version_nc END AS version
    FROM k CROSS JOIN p
)
SELECT kp.journey_id, kp.position, any_value(kp.stage) AS stage, any_value(kp.visit) AS visit,
       any_value(kp.outcome) AS outcome, any_value(kp.ai_consent) AS ai_consent,
       any_value(kp.input_hash) AS input_hash,
       list(kp.evaluator ORDER BY kp.evaluator) FILTER (
           WHERE e.evaluator IS NULL OR e.error IS NOT NULL OR e.input_hash <> kp.input_hash
              OR e.engine <> kp.engine OR e.version <> kp.version) AS todo
FROM kp
LEFT JOIN evaluations e
       ON e.journey_id = kp.journey_id AND e.stage = kp.stage AND e.visit = kp.visit AND e.evaluator = kp.evaluator
GROUP BY kp.journey_id, kp.position
"""


@dataclass(frozen=True, slots=True)
class _Todo:
    key: VisitKey
    stage: str
    visit: int
    input_hash: str
    ai_consent: bool
    evaluators: tuple[str, ...]


# -- the summary ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EvaluatorStats:
    """One evaluator over every visit it scored in the warehouse (not only this run)."""

    evaluator: str
    results: int
    scored: int
    mean_score: float | None
    failed: int
    errors: int

    @property
    def fail_rate(self) -> float | None:
        return self.failed / self.scored if self.scored else None


@dataclass
class EvaluationSummary:
    """What one :func:`evaluate_pending` run did."""

    engine: str
    visits: int = 0  #: stage visits in the warehouse
    scored: int = 0  #: visits (re-)scored by this run
    up_to_date: int = 0  #: visits with nothing to do
    skipped_open: int = 0  #: visits not scored because their outcome is still open
    results: int = 0  #: rows written
    errors: int = 0  #: rows written with ``error`` set (evaluator or judge failed)
    no_consent: int = 0  #: visits kept from the LLM judge for lack of consent
    changed: int = 0  #: visits that changed while this run read them (scored next run)
    llm_calls: int = 0
    seconds: float = 0.0
    evaluators: list[EvaluatorStats] = field(default_factory=list)
    journeys: set[str] = field(default_factory=set, repr=False)  #: journeys that got new results
    stopped: bool = False  #: ended early when asked to stop; what was not reached is still pending

    @property
    def visits_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("engine", "visits", "scored", "up_to_date", "skipped_open", "results",
                                             "errors", "no_consent", "changed", "llm_calls", "seconds")}
        out["evaluators"] = [
            {"evaluator": s.evaluator, "results": s.results, "scored": s.scored, "mean_score": s.mean_score,
             "fail_rate": s.fail_rate, "errors": s.errors}
            for s in self.evaluators
        ]
        return out


def evaluator_stats(warehouse: Warehouse, evaluators: Iterable[str] | None = None) -> list[EvaluatorStats]:
    """Per evaluator: rows, scored rows, mean score, failures and errors over the whole table."""
    rows = warehouse.query(
        "SELECT evaluator, count(*), count(score) FILTER (WHERE error IS NULL), "
        "avg(score) FILTER (WHERE error IS NULL), count(*) FILTER (WHERE passed = false AND error IS NULL), "
        "count(error) FROM evaluations GROUP BY evaluator ORDER BY evaluator"
    )
    wanted = set(evaluators) if evaluators is not None else None
    return [EvaluatorStats(r[0], int(r[1]), int(r[2]), r[3], int(r[4]), int(r[5]))
            for r in rows if wanted is None or r[0] in wanted]


# -- the runner -------------------------------------------------------------------------------------
def _make_judge(warehouse: Warehouse) -> LLMEngine:
    try:
        from journeyscope.evaluators.llm import LLMEngine
    except ImportError as exc:  # httpx missing
        raise ConfigError(f"the llm engine needs httpx ({exc}); install journeyscope[test] or httpx") from None
    try:
        return LLMEngine(cache=WarehouseVerdictCache(warehouse))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def evaluate_pending(
    warehouse: Warehouse,
    engine: str | LLMEngine = "local",
    evaluators: Iterable[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    on_no_consent: str = "local",
    concurrency: int = 8,
    batch_journeys: int = BATCH_JOURNEYS,
    scorer: Executor | None = None,
    journeys: Iterable[str] | None = None,
    stop: Callable[[], bool] | None = None,
    workers: int = 0,
) -> EvaluationSummary:
    """Score every stage visit not yet scored by the current evaluator versions; return a summary.

    ``engine`` is ``"local"``, ``"llm"`` (an LLM judge configured from ``JOURNEYSCOPE_LLM_*``, its
    verdicts cached in the warehouse) or an ``LLMEngine`` instance. ``evaluators`` defaults to every
    registered evaluator. ``progress(done, total)`` is called after each batch with visits handled
    so far. ``on_no_consent`` (``"local"`` or ``"skip"``) decides what happens, with the llm engine,
    to visits whose customer did not consent to AI evaluation. ``concurrency`` bounds parallel
    judge calls. ``scorer`` runs the local evaluators (an executor: the server passes its worker
    processes, so scoring does not hold the GIL its event loop needs); by default they run here.
    ``journeys`` limits the run to those journeys (the server's online scoring passes the journeys
    whose visits changed, so a pass costs what changed, not what is stored). ``stop()`` is asked
    between batches: when it says so, the run ends early (``summary.stopped``), every batch before
    it written, the rest still pending (a server shutting down must not wait for a long first pass).
    ``workers`` > 0 (and no ``scorer``) starts that many scoring processes for this run
    (:func:`scoring_processes`), when there are at least :data:`MIN_JOURNEYS_FOR_WORKERS` journeys to score.
    """
    started = time.perf_counter()
    specs = registered()
    names = sorted(set(evaluators)) if evaluators is not None else sorted(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise InvalidInputError(f"unknown evaluator(s): {', '.join(unknown)}; known: {', '.join(sorted(specs))}")
    if not names:
        raise InvalidInputError("no evaluators to run")
    if on_no_consent not in NO_CONSENT_POLICIES:
        raise InvalidInputError(f"on_no_consent must be one of {', '.join(NO_CONSENT_POLICIES)}, got {on_no_consent!r}")
    if warehouse.read_only:
        raise WarehouseError(f"{warehouse.path} is open read-only; evaluations need a writable warehouse")
    judge: LLMEngine | None
    owns_judge = False
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise InvalidInputError(f"unknown engine {engine!r}: use 'local' or 'llm'")
        judge = _make_judge(warehouse) if engine == "llm" else None
        owns_judge = judge is not None
        engine_name = engine
    else:
        judge, engine_name = engine, "llm"
    summary = EvaluationSummary(engine_name)
    try:
        plans = _plans(names, judge, on_no_consent)
        todo = _find_pending(warehouse, plans, summary, None if journeys is None else sorted(set(journeys)))
        by_journey: dict[str, list[_Todo]] = {}
        for t in todo:
            by_journey.setdefault(t.key.journey_id, []).append(t)
        journeys = sorted(by_journey)
        total = len(todo)
        done = 0
        pool = ThreadPoolExecutor(max_workers=max(1, concurrency)) if judge is not None else None
        own_scorer = None
        threads = None
        if scorer is None and workers > 0 and len(journeys) >= MIN_JOURNEYS_FOR_WORKERS:
            scorer = own_scorer = scoring_processes(workers)
            # The scoring processes keep the cores busy: DuckDB's own worker threads would only add the cost of
            # splitting this process's reads and writes up (a quarter of its CPU) and take turns with them.
            threads = int(warehouse.query("SELECT current_setting('threads')")[0][0])
            warehouse.set_threads(1)
        try:
            # Up to BATCHES_AHEAD batches are read and handed to the scoring processes before the oldest is
            # collected and written, so the processes score while this one reads and writes.
            ahead = BATCHES_AHEAD if scorer is not None else 0
            in_flight: deque[tuple[_Started, int]] = deque()

            def finish_oldest() -> None:
                nonlocal done
                started_batch, visits_in_batch = in_flight.popleft()
                _finish_batch(warehouse, started_batch, judge, pool, plans, summary)
                done += visits_in_batch
                if progress is not None:
                    progress(done, total)

            for i in range(0, len(journeys), batch_journeys):
                if stop is not None and stop():
                    summary.stopped = True
                    break
                ids = journeys[i:i + batch_journeys]
                batch = [t for j in ids for t in by_journey[j]]
                in_flight.append((_start_batch(warehouse, batch, ids, plans, summary, scorer), len(batch)))
                if len(in_flight) > ahead:
                    finish_oldest()
            while in_flight:
                finish_oldest()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            if own_scorer is not None:
                own_scorer.shutdown(wait=True, cancel_futures=True)
            if threads is not None:
                warehouse.set_threads(threads)
        if judge is not None:
            summary.llm_calls = judge.calls
    finally:
        if owns_judge and judge is not None:
            judge.close()
    summary.evaluators = evaluator_stats(warehouse, names)
    summary.seconds = time.perf_counter() - started
    return summary


def _find_pending(warehouse: Warehouse, plans: list[_Plan], summary: EvaluationSummary,
                  journeys: list[str] | None = None) -> list[_Todo]:
    if journeys is not None and not journeys:
        return []
    cur = warehouse.cursor()
    try:
        # Temporary tables of this cursor's own, not registered Arrow tables: DuckDB plans the query, which
        # names the journeys several times, in much less time over tables of its own.
        columns = ", ".join(f"unnest(${f}::VARCHAR[]) AS {f}" for f in _Plan.__slots__)
        cur.execute(f"CREATE OR REPLACE TEMP TABLE js_plan AS SELECT {columns}",
                    {f: [getattr(p, f) for p in plans] for f in _Plan.__slots__})
        only = None
        if journeys is not None:
            cur.execute("CREATE OR REPLACE TEMP TABLE js_only AS SELECT unnest($ids::VARCHAR[]) AS journey_id",
                        {"ids": journeys})
            only = "js_only"
        cur.execute(_PENDING.format(keys=visit_keys_sql("$now", only)), {"now": warehouse.clock()})
        out = []
        # In parts: only the visits with work to do are kept, not a row for every visit looked at.
        while rows := cur.fetchmany(_PENDING_ROWS_AT_ONCE):
            summary.visits += len(rows)
            for jid, pos, stage, visit, outcome, consent, input_hash, todo in rows:
                if not todo:
                    summary.up_to_date += 1
                elif outcome == "open":
                    summary.skipped_open += 1
                else:
                    out.append(_Todo(VisitKey(jid, pos), stage, visit, input_hash, bool(consent), tuple(todo)))
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read stage visits from {warehouse.path}") from None
    finally:
        cur.close()
    return out


#: Rows of the pending-work query read into Python at once.
_PENDING_ROWS_AT_ONCE = 10_000


#: Scoring processes ``journeyscope evaluate`` and the demo start: one per CPU this process may use.
DEFAULT_WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
#: Fewer journeys than this are scored in this process even when ``workers`` are asked for: starting
#: processes would cost more than they save.
MIN_JOURNEYS_FOR_WORKERS = 4 * scoring.CHUNK_JOURNEYS
#: Batches read and handed to the scoring processes ahead of the one being collected and written, so the
#: processes always have work queued while this process reads and writes.
BATCHES_AHEAD = 2


def _warm() -> None:
    """Imports done when a scoring process starts, not on its first batch."""
    import journeyscope.evaluators  # noqa: F401 - registers the built-in evaluators


def scoring_processes(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes to score stage visits in (:func:`evaluate_pending`'s ``scorer``), started now.

    Forked on Linux (spawned elsewhere): a forked process has every module this one imported, so it
    starts in milliseconds instead of the seconds a spawned one spends importing DuckDB, Arrow and the
    evaluators again. It runs only the evaluators on Arrow tables it is sent (never the DuckDB
    connection), so the threads it leaves behind do not matter. Long-running programs that start
    threads of their own (the server) start their pool with ``spawn`` instead
    (:mod:`journeyscope.server.workers`).
    """
    method = "fork" if sys.platform.startswith("linux") else "spawn"  # macOS: fork is unsafe with its frameworks
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    # The objects this process made so far are left out of the forked processes' garbage collections (which
    # would otherwise walk them all, copying every page they touch); the processes are forked at the first submit.
    freeze = method == "fork"
    if freeze:
        gc.freeze()
    try:
        for _ in range(workers):
            pool.submit(_warm)
    finally:
        if freeze:
            gc.unfreeze()
    return pool


def _skipped(name: str, version: str) -> EvalResult:
    return EvalResult(name, version, None, None, NO_CONSENT,
                      "Not sent to the LLM judge: the customer did not consent to AI evaluation (customer.consent "
                      "lacks ai_evaluation).", {"consent": "no_ai_evaluation"})


@dataclass
class _Started:
    """A batch read and classified; its local results being scored (in the scoring processes, while the caller
    writes the batch before)."""

    rows: list[tuple[_Todo, EvalResult, str]]  #: results made here: visits skipped for lack of consent
    local_keys: pa.Table  #: journey_id, stage, visit, input_hash of each local job, in job order
    scored: scoring.Scored  #: the local results, their ``job`` indexing ``local_keys``
    calls: list[tuple[_Todo, str]]  #: (visit, evaluator) for the judge
    contexts: dict[VisitKey, Any]


def _start_batch(warehouse: Warehouse, batch: list[_Todo], journey_ids: list[str], plans: list[_Plan],
                 summary: EvaluationSummary, scorer: Executor | None = None) -> _Started:
    cur = warehouse.cursor()
    try:
        visits, turns = read_batch(cur, journey_ids, warehouse.clock())
    except duckdb.Error as exc:
        raise warehouse_error(exc, f"cannot read transcripts from {warehouse.path}") from None
    finally:
        cur.close()
    now_visits = dict(zip(zip(visits["journey_id"].to_pylist(), visits["position"].to_pylist()),
                          zip(visits["stage"].to_pylist(), visits["visit"].to_pylist())))
    plan = {p.evaluator: p for p in plans}
    rows: list[tuple[_Todo, EvalResult, str]] = []
    calls: list[tuple[_Todo, str]] = []
    local_todo: list[_Todo] = []
    jobs: list[scoring.Job] = []
    for t in batch:
        if now_visits.get((t.key.journey_id, t.key.position)) != (t.stage, t.visit):
            summary.changed += 1  # the journey moved on between the two reads; next run scores it
            continue
        summary.scored += 1
        to_judge = [n for n in t.evaluators if plan[n].engine_ok == "llm"]
        local = [n for n in t.evaluators if plan[n].engine_ok != "llm"]
        if to_judge and not t.ai_consent:
            summary.no_consent += 1
            if plan[to_judge[0]].engine_nc == "local":
                local_todo.append(t)
                jobs.append((t.key.journey_id, t.key.position, to_judge, True))
            else:
                rows.extend((t, _skipped(n, plan[n].version_nc), SKIPPED) for n in to_judge)
            to_judge = []
        if local:
            local_todo.append(t)
            jobs.append((t.key.journey_id, t.key.position, local, False))
        calls.extend((t, n) for n in to_judge)
    # Contexts as Python objects here only for the judge's calls.
    contexts = build_contexts(visits, turns, [t.key for t, _ in calls]) if calls else {}
    # The version each local result is stored with: its evaluator's local one (a visit without consent scored
    # locally included), so the next run finds it current.
    versions = {p.evaluator: p.version_ok if p.engine_ok == "local" else p.version_nc for p in plans}
    local_keys = pa.table({
        "journey_id": pa.array([t.key.journey_id for t in local_todo], pa.string()),
        "stage": pa.array([t.stage for t in local_todo], pa.string()),
        "visit": pa.array([t.visit for t in local_todo], pa.int32()),
        "input_hash": pa.array([t.input_hash for t in local_todo], pa.string()),
    })
    scored = scoring.submit(scorer, visits, turns, jobs, versions) if jobs else []
    return _Started(rows, local_keys, scored, calls, contexts)


def _finish_batch(warehouse: Warehouse, started: _Started, judge: LLMEngine | None, pool: ThreadPoolExecutor | None,
                  plans: list[_Plan], summary: EvaluationSummary) -> None:
    rows, contexts, calls = started.rows, started.contexts, started.calls
    plan = {p.evaluator: p for p in plans}
    parts = [_local_rows(started.local_keys, scoring.collect(started.scored))]
    if calls:
        assert judge is not None and pool is not None
        verdicts = pool.map(lambda c: judge.judge(contexts[c[0].key], c[1]), calls)
        rows.extend((c[0], r, "llm") for c, r in zip(calls, verdicts))
    if rows:
        parts.append(_to_arrow(rows, plan))
    table = pa.concat_tables(parts)
    if not table.num_rows:
        return
    summary.results += table.num_rows
    written_journeys = sorted(pc.unique(table["journey_id"]).to_pylist())
    summary.journeys.update(written_journeys)
    summary.errors += table.num_rows - table["error"].null_count
    cache = judge.cache if judge is not None and isinstance(judge.cache, WarehouseVerdictCache) else None

    def write(cur: duckdb.DuckDBPyConnection) -> None:
        # With the journey facts of the visits as they are now (a visit erased meanwhile gets no row).
        cur.register("js_evaluations", table)
        try:
            journey_facts.write(cur, "js_evaluations", written_journeys)
        finally:
            cur.unregister("js_evaluations")
        thresholds.apply(cur, written_journeys)  # an adopted threshold decides ``passed``
        if cache is not None:
            cache.write_pending(cur, {r.evidence["cache_key"]: t.key.journey_id for t, r, engine in rows
                                      if engine == "llm" and "cache_key" in r.evidence})

    _write(warehouse, write, written_journeys)


def _local_rows(keys: pa.Table, scored: pa.Table) -> pa.Table:
    """The local results as ``evaluations`` rows: each with its visit's key and input hash (by ``job``)."""
    n = scored.num_rows
    at = keys.take(scored["job"])
    columns = {
        "journey_id": at["journey_id"], "stage": at["stage"], "visit": at["visit"], "evaluator": scored["evaluator"],
        "version": scored["version"], "engine": pa.repeat(pa.scalar("local", pa.string()), n),
        "score": scored["score"], "passed": scored["passed"], "label": scored["label"], "reason": scored["reason"],
        "evidence": scored["evidence"], "error": scored["error"], "input_hash": at["input_hash"],
        "evaluated_at": pa.repeat(pa.scalar(time.time_ns() // 1000, pa.timestamp("us")), n),
    }
    return pa.table([columns[f.name] for f in _RESULT_SCHEMA], schema=_RESULT_SCHEMA)


def _to_arrow(rows: list[tuple[_Todo, EvalResult, str]], plan: dict[str, _Plan]) -> pa.Table:
    """Results made here (the judge's, the skipped) as rows; ``version`` is the planned one, so the next run finds
    it current."""
    now = time.time_ns() // 1000
    cols: dict[str, list[Any]] = {f.name: [] for f in _RESULT_SCHEMA}
    for t, r, engine in rows:
        cols["journey_id"].append(t.key.journey_id)
        cols["stage"].append(t.stage)
        cols["visit"].append(t.visit)
        cols["evaluator"].append(r.evaluator)
        p = plan[r.evaluator]
        cols["version"].append(p.version_ok if engine == p.engine_ok else p.version_nc)
        cols["engine"].append(engine)
        cols["score"].append(r.score)
        cols["passed"].append(r.passed)
        cols["label"].append(r.label)
        cols["reason"].append(r.reason)
        cols["evidence"].append(scoring.evidence_json(r.evidence))
        cols["error"].append(r.error)
        cols["input_hash"].append(t.input_hash)
        cols["evaluated_at"].append(now)
    return pa.table([pa.array(cols[f.name], f.type) for f in _RESULT_SCHEMA], schema=_RESULT_SCHEMA)

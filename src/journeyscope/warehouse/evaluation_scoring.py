"""Local scoring of a batch of stage visits, answered as Arrow columns, here or in scoring processes.

:func:`~journeyscope.warehouse.evaluations.evaluate_pending` reads a batch's visits and turns as Arrow
tables (:func:`~journeyscope.warehouse.transcripts.read_batch`) and hands them, a few whole journeys per
call, to :func:`score_tables`, which builds the transcripts, runs the local evaluators and answers with
the results already as the columns ``evaluations`` stores (evidence as JSON text) and the index of the
job each row belongs to. The process that reads and writes the warehouse, which every batch waits for,
then only attaches each row's visit key and input hash (an Arrow ``take``) and inserts the table: it never
makes, unpickles or serialises a Python object per result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from journeyscope.evaluators import EvalResult
from journeyscope.evaluators.engine import run_local
from journeyscope.warehouse.transcripts import VisitKey, build_contexts

__all__ = ["SCORED_SCHEMA", "Job", "Scored", "collect", "no_consent_note", "score_tables", "submit"]

#: One visit to score: journey, ``stage_visits.position``, evaluator names, and whether the reason must say the
#: visit was scored locally for lack of consent to AI evaluation.
Job = tuple[str, int, Sequence[str], bool]
#: A batch's local results on their way: (index of the call's first job in the batch, the call's answer).
Scored = list[tuple[int, "Future[pa.Table] | pa.Table"]]

#: What :func:`score_tables` answers: ``job`` indexes the jobs it was given.
SCORED_SCHEMA = pa.schema([
    ("job", pa.int32()), ("evaluator", pa.string()), ("version", pa.string()), ("score", pa.float64()),
    ("passed", pa.bool_()), ("label", pa.string()), ("reason", pa.string()), ("evidence", pa.string()),
    ("error", pa.string()),
])

#: Fewest journeys per call to a scoring process (a batch is spread over the processes in calls of this many
#: or an eighth of the batch, whichever is more).
CHUNK_JOURNEYS = 16

#: One encoder for every result: ``json.dumps`` with options builds a new one per call, which cost as much as encoding.
_EVIDENCE = json.JSONEncoder(ensure_ascii=False, default=str)

_NO_CONSENT = "Scored by the local engine: the customer did not consent to AI evaluation (customer.consent)."


def no_consent_note(result: EvalResult) -> EvalResult:
    """``result`` with its reason and evidence saying it was scored locally for lack of consent."""
    reason = result.reason.rstrip()
    return EvalResult(result.evaluator, result.version, result.score, result.passed, result.label,
                      f"{reason} {_NO_CONSENT}" if reason else _NO_CONSENT,
                      {**result.evidence, "consent": "no_ai_evaluation"}, result.error)


def evidence_json(evidence: dict[str, Any]) -> str | None:
    """An evaluation's evidence as stored (``None`` when there is none)."""
    return _EVIDENCE.encode(evidence) if evidence else None


def score_tables(visits: pa.Table, turns: pa.Table, jobs: Sequence[Job], versions: dict[str, str]) -> pa.Table:
    """Run the local evaluators on ``jobs`` (visits of :func:`read_batch`'s tables); one row per result.

    ``version`` is the one ``versions`` plans for the evaluator, so the next run finds the row current.
    Runs in a scoring process (or, without one, in the caller): the transcripts are built into Python
    objects there, not in the process that holds the warehouse.
    """
    contexts = build_contexts(visits, turns, [VisitKey(jid, pos) for jid, pos, _, _ in jobs])
    job: list[int] = []
    evaluator: list[str] = []
    version: list[str] = []
    score: list[float | None] = []
    passed: list[bool | None] = []
    label: list[str | None] = []
    reason: list[str] = []
    evidence: list[str | None] = []
    error: list[str | None] = []
    for i, (jid, pos, names, note) in enumerate(jobs):
        for r in run_local(contexts[VisitKey(jid, pos)], names):
            if note:
                r = no_consent_note(r)
            job.append(i)
            evaluator.append(r.evaluator)
            version.append(versions[r.evaluator])
            score.append(r.score)
            passed.append(r.passed)
            label.append(r.label)
            reason.append(r.reason)
            evidence.append(evidence_json(r.evidence))
            error.append(r.error)
    columns = (job, evaluator, version, score, passed, label, reason, evidence, error)
    return pa.table([pa.array(c, f.type) for c, f in zip(columns, SCORED_SCHEMA)], schema=SCORED_SCHEMA)


def submit(scorer: Executor | None, visits: pa.Table, turns: pa.Table, jobs: Sequence[Job],
           versions: dict[str, str]) -> Scored:
    """Score ``jobs`` (whole journeys together, in journey order) in ``scorer``'s processes, a few journeys per
    call, or here when there is no ``scorer``. The calls are submitted now: the processes score while the
    caller goes on."""
    if scorer is None:
        return [(0, score_tables(visits, turns, jobs, versions))]
    # Whole journeys per call: an eighth of the batch, at least CHUNK_JOURNEYS. Fewer, larger calls cost less to
    # send and answer; eight of them still keep the processes busy to the batch's end.
    per_call = max(CHUNK_JOURNEYS, -(-len({jid for jid, _, _, _ in jobs}) // 8))
    journeys = 0
    starts: list[int] = []  # index of each call's first job
    previous = None
    for i, (jid, _, _, _) in enumerate(jobs):
        if jid != previous:
            previous = jid
            if journeys % per_call == 0:
                starts.append(i)
            journeys += 1
    ends = starts[1:] + [len(jobs)]
    out: Scored = []
    for start, end in zip(starts, ends):
        chunk = jobs[start:end]
        ids = pa.array(sorted({jid for jid, _, _, _ in chunk}), pa.string())
        out.append((start, scorer.submit(score_tables, visits.filter(pc.is_in(visits["journey_id"], ids)),
                                         turns.filter(pc.is_in(turns["journey_id"], ids)), chunk, versions)))
    return out


def collect(scored: Scored) -> pa.Table:
    """The results of :func:`submit`, in job order, ``job`` indexing the batch's jobs (waits for the calls)."""
    parts = []
    for start, answer in scored:
        table = answer.result() if isinstance(answer, Future) else answer
        if start:
            table = table.set_column(0, "job", pc.add(table["job"], pa.scalar(start, pa.int32())))
        parts.append(table)
    return pa.concat_tables(parts) if parts else SCORED_SCHEMA.empty_table()

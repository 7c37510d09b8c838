"""The evaluation runner over a real DuckDB file: which visits get scored, what is stored, consent, export, CLI.

Spans go in through the warehouse's one write path (``Warehouse.ingest``), as the importer and the
OTLP receiver write them; the warehouse clock is fixed so visit outcomes (``open`` or not) are known.
The LLM judge is the real ``LLMEngine`` talking HTTP to the loopback stand-in in ``tests/support``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journeyscope.evaluators import EvalResult
from journeyscope.evaluators import result as _result
from journeyscope.evaluators.llm import LLMEngine
from journeyscope import conventions as cv
from journeyscope.warehouse import JourneyMap, SpanRows, Warehouse
from journeyscope.warehouse.evaluations import (
    GENAI_EVALUATION_EVENT,
    MIN_JOURNEYS_FOR_WORKERS,
    WarehouseVerdictCache,
    evaluate_pending,
    genai_evaluation_attributes,
)
from journeyscope.warehouse.export import export_table
from journeyscope.warehouse.transcripts import VisitKey, load_contexts
from support.openai_server import completion, openai_server

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z
S = 10**9
#: "Now" for the warehouse: an hour after the journeys, so every visit is closed.
LATER = T0 + 3600 * S
JUDGED = ("conversation_resolution", "customer_agent_context_retention", "customer_agent_conversation_quality")
RECORD = ["journey_id", "stage", "visit", "evaluator", "score", "passed", "label", "reason"]


def _id(*parts: object, n: int = 8) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[: 2 * n]


def add_journey(rows: SpanRows, journey_id: str, turns: list[tuple[str, str, str]], *, start: int = T0,
                consent: str | None = None, step: int = 20 * S, customer: str = "c-1") -> None:
    """``turns``: (stage, role, text), one ``journey.turn`` span each, ``step`` apart."""
    for i, (stage, role, text) in enumerate(turns):
        attrs: dict[str, Any] = {cv.JOURNEY_ID: journey_id, cv.CUSTOMER_ID: customer, cv.JOURNEY_NAME: "support",
                                 cv.JOURNEY_STAGE: stage, cv.JOURNEY_CHANNEL: "chat", cv.TURN_ROLE: role,
                                 cv.TURN_TEXT: text}
        if consent is not None:
            attrs[cv.CUSTOMER_CONSENT] = consent
        t = start + i * step
        rows.add(trace_id=_id(journey_id, n=16), span_id=_id(journey_id, t, text), parent_span_id=None,
                 name=cv.TURN_SPAN, start_ns=t, end_ns=t, attributes=attrs)


BOOKING = [
    ("booking", "customer", "Hi, I need a table for two tonight at 7 pm."),
    ("booking", "agent", "Sure. May I have your name?"),
    ("booking", "customer", "Ana Lopez."),
    ("booking", "agent", "Your table for two at 7 pm is booked, Ana."),
    ("booking", "customer", "Thanks!"),
    ("payment", "agent", "Please confirm the card ending 4242 for the deposit."),
    ("payment", "customer", "Yes, use that card."),
    ("payment", "agent", "The deposit is paid. See you tonight."),
    ("payment", "customer", "Great, thank you."),
]
SUPPORT = [
    ("diagnose", "customer", "My order 12345 never arrived."),
    ("diagnose", "agent", "I'm sorry. What is your order number?"),
    ("diagnose", "customer", "I already told you: 12345."),
    ("diagnose", "agent", "Unfortunately I cannot find that order. I cannot help with this."),
]


def make_db(path: Path, *, clock: int = LATER, consent: dict[str, str] | None = None) -> Warehouse:
    consent = consent or {}
    wh = Warehouse(path, journey_map=JourneyMap(), clock=lambda: clock)
    rows = SpanRows()
    add_journey(rows, "j-book", BOOKING, consent=consent.get("j-book"))
    add_journey(rows, "j-help", SUPPORT, start=T0 + 5 * S, consent=consent.get("j-help"), customer="c-2")
    wh.ingest(rows)
    return wh


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Warehouse]:
    wh = make_db(tmp_path / "wh.duckdb")
    yield wh
    wh.close()


def rows_of(wh: Warehouse, where: str = "true") -> list[dict[str, Any]]:
    cur = wh.cursor()
    try:
        cur.execute(f"SELECT * FROM evaluations WHERE {where} ORDER BY journey_id, stage, visit, evaluator")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        cur.close()


# -- transcripts ------------------------------------------------------------------------------------
def test_transcripts_are_rebuilt_per_visit_with_history(db: Warehouse) -> None:
    cur = db.cursor()
    ctxs = load_contexts(cur, ["j-book"], db.clock())
    cur.close()
    assert sorted(ctxs) == [VisitKey("j-book", 0), VisitKey("j-book", 1)]
    pay = ctxs[VisitKey("j-book", 1)]
    assert (pay.visit.stage, pay.visit.visit, pay.visit.outcome) == ("payment", 1, "abandoned")
    assert [t.text for t in pay.visit.turns] == [t for s, _, t in BOOKING if s == "payment"]
    assert [v.stage for v in pay.history] == ["booking"] and len(pay.history[0].turns) == 5
    first = pay.visit.turns[0]
    assert first.role == "agent" and first.channel == "chat" and first.stage == "payment"
    assert first.ts is not None and first.ts.utcoffset() is not None and int(first.ts.timestamp()) == (T0 + 100 * S) // S


def test_openinference_turns_repeated_by_nested_spans_are_read_once(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path / "oi.duckdb", journey_map=JourneyMap(), clock=lambda: LATER)
    rows = SpanRows()
    attrs = {"session.id": "j-oi", "user.id": "c-9", cv.JOURNEY_STAGE: "help",
             "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": "Where is my parcel?",
             "llm.output_messages.0.message.role": "assistant",
             "llm.output_messages.0.message.content": "It arrives tomorrow."}
    for i, name in enumerate(["agent run", "ChatCompletion"]):  # an AGENT span and its child LLM span
        rows.add(trace_id=_id("t", n=16), span_id=_id("s", i), parent_span_id=_id("s", 0) if i else None, name=name,
                 start_ns=T0 + i * S, end_ns=T0 + 5 * S, attributes=attrs)
    wh.ingest(rows)
    cur = wh.cursor()
    (ctx,) = load_contexts(cur, ["j-oi"], wh.clock()).values()
    cur.close()
    assert [(t.role, t.text) for t in ctx.visit.turns] == [("customer", "Where is my parcel?"),
                                                           ("agent", "It arrives tomorrow.")]
    assert ctx.visit.turns[1].ts is not None and ctx.visit.turns[0].ts is not None
    assert (ctx.visit.turns[1].ts - ctx.visit.turns[0].ts).total_seconds() == 5  # the reply comes at the span's end
    wh.close()


# -- the runner -------------------------------------------------------------------------------------
def test_every_closed_visit_gets_one_row_per_evaluator_and_a_rerun_adds_nothing(db: Warehouse) -> None:
    summary = evaluate_pending(db)
    n_eval = len(_result.registered())
    assert (summary.visits, summary.scored, summary.skipped_open, summary.errors) == (3, 3, 0, 0)
    rows = rows_of(db)
    assert len(rows) == summary.results == 3 * n_eval
    assert {(r["journey_id"], r["stage"], r["visit"]) for r in rows} == {
        ("j-book", "booking", 1), ("j-book", "payment", 1), ("j-help", "diagnose", 1)}
    assert all(r["engine"] == "local" and r["version"] and r["input_hash"] and r["evaluated_at"] for r in rows)
    res = {(r["journey_id"], r["evaluator"]): r for r in rows if r["stage"] != "payment"}
    assert res[("j-book", "conversation_resolution")]["passed"] is True
    assert res[("j-help", "conversation_resolution")]["passed"] is False
    assert res[("j-help", "customer_agent_context_retention")]["label"] == "reasked"
    assert json.loads(res[("j-help", "customer_agent_context_retention")]["evidence"])
    stats = {s.evaluator: s for s in summary.evaluators}
    assert stats["conversation_resolution"].scored == 3 and stats["conversation_resolution"].failed >= 1

    again = evaluate_pending(db)
    assert (again.scored, again.results, again.up_to_date) == (0, 0, 3)
    assert rows_of(db) == rows  # nothing rewritten, not even evaluated_at


def test_a_run_limited_to_some_journeys_scores_those_alone_and_the_same_way(db: Warehouse,
                                                                             tmp_path: Path) -> None:
    only_help = evaluate_pending(db, journeys=["j-help"])
    assert (only_help.visits, only_help.scored) == (1, 1)
    assert {r["journey_id"] for r in rows_of(db)} == {"j-help"}
    assert evaluate_pending(db, journeys=[]).visits == 0
    rest = evaluate_pending(db)  # everything else; j-help is up to date
    assert (rest.scored, rest.up_to_date) == (2, 1)
    def scores(wh: Warehouse) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "evaluated_at"} for r in rows_of(wh, "journey_id = 'j-help'")]

    with make_db(tmp_path / "all.duckdb") as whole:
        evaluate_pending(whole)
        assert scores(whole) == scores(db)  # the same hashes and scores as a run over every journey


def test_a_run_asked_to_stop_ends_between_batches_and_leaves_the_rest_pending(db: Warehouse) -> None:
    asked: list[int] = []

    def stop_after_first_batch() -> bool:
        asked.append(1)
        return len(asked) > 1

    first = evaluate_pending(db, batch_journeys=1, stop=stop_after_first_batch)
    assert first.stopped and len(asked) == 2
    scored_journeys = {r["journey_id"] for r in rows_of(db)}
    assert len(scored_journeys) == 1  # one batch of one journey written, then the run ended
    rest = evaluate_pending(db)
    assert not rest.stopped and rest.scored == 3 - first.scored and rest.up_to_date == first.scored
    assert {r["journey_id"] for r in rows_of(db)} == {"j-book", "j-help"}


def test_scoring_in_worker_processes_gives_exactly_the_rows_of_scoring_in_place(tmp_path: Path) -> None:
    """The server scores in its worker processes, ``journeyscope evaluate`` in processes of its own
    (``workers``), reading the next batch while they score: the transcripts cross as Arrow tables, a few
    journeys per call, and are built and scored there. Every row must be what scoring in place writes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    n = MIN_JOURNEYS_FOR_WORKERS + 6  # enough for a run to start its own processes

    def fleet(path: Path) -> Warehouse:
        wh = Warehouse(path, journey_map=JourneyMap(), clock=lambda: LATER)
        rows = SpanRows()
        for i in range(n):  # more journeys than one call to a worker takes
            add_journey(rows, f"j-{i:02d}", BOOKING if i % 3 else SUPPORT, start=T0 + i * S, customer=f"c-{i}")
        wh.ingest(rows)
        return wh

    def scores(wh: Warehouse) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "evaluated_at"} for r in rows_of(wh)]

    bookings = sum(1 for i in range(n) if i % 3)
    with fleet(tmp_path / "here.duckdb") as here, fleet(tmp_path / "workers.duckdb") as there, \
            fleet(tmp_path / "own.duckdb") as own:
        evaluate_pending(here)
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            summary = evaluate_pending(there, scorer=pool)
        assert summary.scored == 2 * bookings + (n - bookings)  # booking journeys have two visits, support one
        assert scores(there) == scores(here) and len(scores(here)) > 100
        seen: list[tuple[int, int]] = []
        summary = evaluate_pending(own, workers=2, batch_journeys=16, progress=lambda d, t: seen.append((d, t)))
        assert summary.scored == 2 * bookings + (n - bookings)
        assert scores(own) == scores(here)
        # every batch reported once, in order, the last one complete
        assert len(seen) == -(-n // 16) and [d for d, _ in seen] == sorted(d for d, _ in seen)
        assert seen[-1] == (summary.scored, summary.scored)


def test_open_visits_are_skipped_until_they_close(tmp_path: Path) -> None:
    path = tmp_path / "open.duckdb"
    wh = make_db(path, clock=T0 + 400 * S)  # minutes after the last turn: the last visits may still grow
    summary = evaluate_pending(wh)
    assert summary.skipped_open == 2 and summary.scored == 1  # booking completed (payment followed)
    assert {r["stage"] for r in rows_of(wh)} == {"booking"}
    wh.close()
    wh = Warehouse(path, journey_map=JourneyMap(), clock=lambda: LATER)
    later = evaluate_pending(wh)
    assert (later.skipped_open, later.scored, later.up_to_date) == (0, 2, 1)
    wh.close()


def test_a_bumped_version_rescores_only_that_evaluator(db: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluate_pending(db)
    before = {(r["journey_id"], r["stage"], r["evaluator"]): r for r in rows_of(db)}
    spec = _result.registered()["friction_reentry"]
    monkeypatch.setitem(_result._REGISTRY, "friction_reentry", dataclasses.replace(spec, version="local-99"))
    summary = evaluate_pending(db)
    assert summary.scored == 3 and summary.results == 3
    after = {(r["journey_id"], r["stage"], r["evaluator"]): r for r in rows_of(db)}
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {k for k in after if k[2] == "friction_reentry"}
    assert {after[k]["version"] for k in changed} == {"local-99"}


def test_a_changed_transcript_rescores_the_visit_and_the_visits_after_it(db: Warehouse) -> None:
    evaluate_pending(db)
    rows = SpanRows()  # a late-arriving turn inside the booking visit
    add_journey(rows, "j-book", [("booking", "customer", "Also, a high chair please.")], start=T0 + 30 * S)
    db.ingest(rows)
    summary = evaluate_pending(db)
    assert summary.scored == 2 and summary.up_to_date == 1  # booking and, through its history, payment


def test_an_evaluator_that_raises_gives_error_rows_that_are_retried(db: Warehouse,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(ctx: Any) -> EvalResult:
        calls.append(ctx)
        raise RuntimeError("boom")

    monkeypatch.setitem(_result._REGISTRY, "test_broken", _result.EvaluatorSpec("test_broken", "t-1", broken))
    summary = evaluate_pending(db, evaluators=["test_broken"])
    assert summary.errors == 3
    rows = rows_of(db, "evaluator = 'test_broken'")
    assert all(r["error"] == "RuntimeError: boom" and r["score"] is None and r["passed"] is None for r in rows)
    evaluate_pending(db, evaluators=["test_broken"])
    assert len(calls) == 6  # errors are not final


def test_unknown_evaluator_and_engine_are_clear_errors(db: Warehouse) -> None:
    from journeyscope.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="unknown evaluator"):
        evaluate_pending(db, evaluators=["nope"])
    with pytest.raises(InvalidInputError, match="unknown engine"):
        evaluate_pending(db, engine="gpt")


# -- the LLM judge: consent, failures, the DuckDB cache ------------------------------------------------
def _judge_reply(request: dict[str, Any]) -> tuple[int, Any]:
    if request["model"] == "broken":
        return 500, {"error": {"message": "overloaded"}}
    system = request["messages"][0]["content"]
    label = next(x for x in ("resolved", "retained", "good") if f'"{x}"' in system)
    return 200, completion(json.dumps({"score": 0.8, "label": label, "reason": "stand-in verdict"}))


def _sent_text(seen: list[dict[str, Any]]) -> str:
    return "\n".join(m["content"] for s in seen for m in s["body"]["messages"])


def test_no_consent_visits_never_reach_the_judge(tmp_path: Path) -> None:
    wh = make_db(tmp_path / "c.duckdb", consent={"j-book": "ai_evaluation,analytics", "j-help": "analytics"})
    with openai_server(_judge_reply) as (url, seen):
        judge = LLMEngine(url, "stand-in", cache=WarehouseVerdictCache(wh))
        summary = evaluate_pending(wh, judge, concurrency=4)
        assert summary.no_consent == 1 and summary.errors == 0
        assert len(seen) == 2 * len(JUDGED) and judge.calls == 6
        assert "12345" not in _sent_text(seen) and "Ana Lopez" in _sent_text(seen)
        rows = rows_of(wh)
        for r in rows:
            if r["journey_id"] == "j-book" and r["evaluator"] in JUDGED:
                assert (r["engine"], r["version"], r["score"], r["reason"]) == (
                    "llm", "llm-1/stand-in", 0.8, "stand-in verdict")
            elif r["journey_id"] == "j-help" and r["evaluator"] in JUDGED:
                assert r["engine"] == "local" and r["version"] == _result.registered()[r["evaluator"]].version
                assert "consent" in r["reason"] and json.loads(r["evidence"])["consent"] == "no_ai_evaluation"
            else:
                assert r["engine"] == "local"  # friction signals are measurements
        assert evaluate_pending(wh, judge).scored == 0  # the fallback rows are current, not re-judged
        # The verdicts are cached in the warehouse: scoring again from scratch calls nobody.
        wh.query("DELETE FROM evaluations")
        fresh = LLMEngine(url, "stand-in", cache=WarehouseVerdictCache(wh))
        again = evaluate_pending(wh, fresh)
        assert again.scored == 3 and fresh.calls == 0 and len(seen) == 6
        fresh.close()
        judge.close()

        skip = LLMEngine(url, "stand-in", cache=WarehouseVerdictCache(wh))
        summary = evaluate_pending(wh, skip, on_no_consent="skip")
        assert summary.scored == 1 and skip.calls == 0  # only j-help changes: local fallback -> skipped
        skipped = rows_of(wh, "journey_id = 'j-help' AND engine = 'skipped'")
        assert {r["evaluator"] for r in skipped} == set(JUDGED)
        assert all(r["label"] == "no_consent" and r["score"] is None and r["error"] is None for r in skipped)
        skip.close()
    wh.close()


def test_failing_judge_calls_give_error_rows_never_scores(db: Warehouse) -> None:
    with openai_server(_judge_reply) as (url, seen), LLMEngine(url, "broken", cache=WarehouseVerdictCache(db)) as judge:
        summary = evaluate_pending(db, judge, evaluators=["conversation_resolution"])
        assert summary.errors == 3 and summary.results == 3
        rows = rows_of(db)
        assert all(r["error"] and "500" in r["error"] and r["score"] is None and r["passed"] is None for r in rows)
        assert db.query("SELECT count(*) FROM llm_verdicts")[0][0] == 0  # failures are not cached
        evaluate_pending(db, judge, evaluators=["conversation_resolution"])
        assert len(seen) == 6  # and are asked again next run


def test_llm_engine_by_name_reads_the_environment_or_fails_clearly(db: Warehouse,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from journeyscope.errors import ConfigError

    monkeypatch.delenv("JOURNEYSCOPE_LLM_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="base URL"):
        evaluate_pending(db, "llm")
    with openai_server(_judge_reply) as (url, seen):
        monkeypatch.setenv("JOURNEYSCOPE_LLM_BASE_URL", url)
        monkeypatch.setenv("JOURNEYSCOPE_LLM_MODEL", "stand-in")
        summary = evaluate_pending(db, "llm", evaluators=["conversation_resolution"])
        assert summary.llm_calls == 3 and summary.errors == 0 and len(seen) == 3
    assert db.query("SELECT count(*), count(DISTINCT journey_id) FROM llm_verdicts")[0] == (3, 2)


# -- export and OTel interop --------------------------------------------------------------------------
def test_export_evaluations_has_the_documented_fields(db: Warehouse, tmp_path: Path) -> None:
    evaluate_pending(db, evaluators=["conversation_resolution"])
    out = tmp_path / "e.jsonl"
    assert export_table(db, "evaluations", "jsonl", out) == 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(records[0])[: len(RECORD)] == RECORD
    assert {"version", "engine", "error", "evaluated_at"} <= set(records[0])
    helped = next(r for r in records if r["journey_id"] == "j-help")
    event = helped["gen_ai_evaluation"]
    assert event == genai_evaluation_attributes(helped)
    assert event["gen_ai.evaluation.name"] == "conversation_resolution"
    assert event["gen_ai.evaluation.score.value"] == helped["score"]
    assert event["gen_ai.evaluation.score.label"] == helped["label"]
    assert event["gen_ai.evaluation.explanation"] == helped["reason"] and "error.type" not in event
    assert GENAI_EVALUATION_EVENT == "gen_ai.evaluation.result"
    assert export_table(db, "evaluations", "csv", tmp_path / "e.csv") == 3


def test_genai_attributes_of_a_failed_evaluation() -> None:
    failed = EvalResult("conversation_resolution", "llm-1/m", None, None, "error", "Not scored.", {}, error="timeout")
    assert genai_evaluation_attributes(failed) == {
        "gen_ai.evaluation.name": "conversation_resolution", "gen_ai.evaluation.score.label": "error",
        "gen_ai.evaluation.explanation": "Not scored.", "error.type": "timeout"}


# -- the command line ---------------------------------------------------------------------------------
EXE = shutil.which("journeyscope")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    assert EXE, "the journeyscope console script is not installed"
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_evaluate_then_export(tmp_path: Path) -> None:
    path = tmp_path / "cli.duckdb"
    make_db(path).close()
    first = run("evaluate", "--db", str(path), "--evaluator", "conversation_resolution")
    assert first.returncode == 0, first.stderr
    assert "3 stage visits scored with the local engine" in first.stdout and "conversation_resolution" in first.stdout
    second = run("evaluate", "--db", str(path), "--evaluator", "conversation_resolution")
    assert second.returncode == 0 and "0 stage visits scored" in second.stdout and "3 already up to date" in second.stdout
    exported = run("export", "evaluations", "--db", str(path))
    assert exported.returncode == 0, exported.stderr
    assert [json.loads(x)["evaluator"] for x in exported.stdout.splitlines()] == ["conversation_resolution"] * 3


@pytest.mark.parametrize("args, message", [
    (["--db", "{tmp}/missing.duckdb"], "no warehouse at"),
    (["--db", "{db}", "--evaluator", "nope"], "unknown evaluator"),
    (["--db", "{db}", "--engine", "llm"], "base URL"),
])
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], message: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEYSCOPE_LLM_BASE_URL", raising=False)
    path = tmp_path / "db.duckdb"
    make_db(path).close()
    result = run("evaluate", *[a.format(tmp=tmp_path, db=path) for a in args])
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr

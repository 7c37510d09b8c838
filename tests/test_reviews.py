"""Reviews and calibration: reviews stored (file, API), agreement against a plain-Python reference, the
review queue, and adopted thresholds, on a real warehouse of real dialogues (a slice of STAR, scored by
the local engine) with the STAR visit labels as one reviewer's verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

import agreement_reference as ref
from journeyscope.cli import cli as command_group
from journeyscope.cli.common import run_cli
from journeyscope.evaluators.rubrics import RUBRIC_VERSION
from journeyscope.server.auth import new_token
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import Warehouse, audit
from journeyscope.warehouse.agreement import MIN_PER_VERDICT, agreement, agreement_report
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.export import export_table
from journeyscope.warehouse.reviews import add_reviews, review_queue
from journeyscope.warehouse.thresholds import adopt, builtin_threshold, history
from receiver_support import running_server
from review_support import QUALITY, RESOLUTION, build_star, noisy_reviews, star_reviews

EXE = shutil.which("journeyscope")


@pytest.fixture(scope="module")
def star_db(tmp_path_factory) -> Path:
    """Built once per module, copied per test."""
    return build_star(tmp_path_factory.mktemp("reviews"))


@pytest.fixture
def db(star_db, tmp_path) -> Path:
    copy = tmp_path / "star.duckdb"
    shutil.copy(star_db, copy)
    return copy


def store(db: Path, records: list[dict], reviewer: str = "tester"):
    with Warehouse(db) as warehouse:
        return add_reviews(warehouse, enumerate(records, 1), reviewer=reviewer, source="import")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script in a process of its own, as a user runs it."""
    assert EXE, "the journeyscope console script is not installed"
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def cli(capsys):
    """The same command in this process (the click group and its error handling; a process start is 2-3 s)."""
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        code = run_cli(command_group, list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return call


# -- storing reviews -----------------------------------------------------------------------------------
def test_import_keeps_the_good_lines_and_names_each_bad_one(db, tmp_path):
    good = star_reviews(db)[:5]
    bad = [
        {**good[0], "journey_id": "no-such-journey"},
        {**good[0], "visit": 9},
        {**good[0], "evaluator": "no_such_evaluator"},
        {**good[0], "passed": "yes"},
        {k: v for k, v in good[0].items() if k != "stage"},
    ]
    lines = [json.dumps(r) for r in good[:2]] + [json.dumps(r) for r in bad] + ["{not json"] + \
            [json.dumps(r) for r in good[2:]]
    file = tmp_path / "reviews.jsonl"
    file.write_text("\n".join(lines) + "\n")

    result = run("reviews", "import", str(file), "--db", str(db), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "imported 5 reviews" in result.stdout and "6 lines rejected" in result.stdout
    rejected = result.stderr.strip().splitlines()
    assert [line.split(":")[1] for line in rejected] == ["3", "4", "5", "6", "7", "8"]
    assert "unknown journey 'no-such-journey'" in rejected[0]
    assert "has no visit 9 to stage" in rejected[1]
    assert "unknown evaluator 'no_such_evaluator'" in rejected[2]
    assert "'passed' must be true or false" in rejected[3]
    assert "missing field(s): stage" in rejected[4]
    assert "not JSON" in rejected[5]
    assert "Traceback" not in result.stderr
    with Warehouse(db, read_only=True) as warehouse:
        stored = warehouse.query("SELECT journey_id, stage, visit, passed, reviewer, source FROM reviews ORDER BY id")
    assert stored == [(r["journey_id"], r["stage"], r["visit"], r["passed"], "star", "import") for r in good]


def test_import_with_nothing_valid_fails_with_one_line(db, tmp_path, cli):
    file = tmp_path / "bad.jsonl"
    file.write_text('{"journey_id": "x", "stage": "s", "visit": 1, "evaluator": "conversation_resolution", '
                    '"passed": true}\n')
    result = cli("reviews", "import", str(file), "--db", str(db))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: no reviews imported from {file}: all 1 lines were rejected"
    missing = cli("reviews", "import", str(file), "--db", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: no warehouse at")
    assert not (tmp_path / "nope.duckdb").exists()
    absent = cli("reviews", "import", str(tmp_path / "none.jsonl"), "--db", str(db))
    assert absent.returncode == 1 and "no review file at" in absent.stderr and "Traceback" not in absent.stderr


def test_a_later_review_supersedes_the_earlier_which_stays_as_history(db, tmp_path, cli):
    review = star_reviews(db)[0]
    first = store(db, [review, {**review, "reviewer": "someone-else"}])
    assert (first.accepted, first.superseded) == (2, 0)
    changed = store(db, [{**review, "passed": not review["passed"], "note": "missed the refund"}])
    assert (changed.accepted, changed.superseded) == (1, 1)
    twice = store(db, [{**review, "passed": True}, {**review, "passed": False}])  # in one batch: the later wins
    assert (twice.accepted, twice.superseded) == (2, 2)
    out = tmp_path / "reviews.jsonl"
    with Warehouse(db, read_only=True) as warehouse:
        current = warehouse.query("SELECT reviewer, passed FROM reviews WHERE superseded_at IS NULL ORDER BY reviewer")
        assert export_table(warehouse, "reviews", "jsonl", out) == 5
    assert current == [("someone-else", review["passed"]), ("star", False)]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(records[0])[:7] == ["journey_id", "stage", "visit", "evaluator", "passed", "reviewer", "note"]
    assert [r["superseded_at"] is None for r in records] == [False, True, False, False, True]
    assert all(r["score"] is not None and r["engine"] == "local" for r in records)
    # an export can be imported again (its extra fields are accepted)
    again = cli("reviews", "import", str(out), "--db", str(db))
    assert again.returncode == 0 and "imported 5 reviews" in again.stdout


def test_a_note_is_redacted_like_every_text(db):
    review = {**star_reviews(db)[0], "note": "customer wrote from jane.doe@example.com, call +1 415 555 0100"}
    assert store(db, [review]).accepted == 1
    with Warehouse(db, read_only=True) as warehouse:
        (note,), = warehouse.query("SELECT note FROM reviews")
    assert "jane.doe@example.com" not in note and "555 0100" not in note and note.startswith("customer wrote from")


# -- agreement ------------------------------------------------------------------------------------------
def _pairs(db: Path, evaluator: str, journey: str | None = None, stage: str | None = None):
    with Warehouse(db, read_only=True) as warehouse:
        rows = warehouse.query(
            "SELECT e.score, e.passed, r.passed FROM reviews r JOIN evaluations e USING (journey_id, stage, visit, "
            "evaluator) WHERE r.superseded_at IS NULL AND e.evaluator = ? AND (? IS NULL OR e.journey_name = ?) "
            "AND (? IS NULL OR e.stage = ?) AND e.score IS NOT NULL", [evaluator, journey, journey, stage, stage])
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def test_agreement_matches_the_plain_python_reference(db, tmp_path, cli):
    store(db, star_reviews(db) + noisy_reviews(db, QUALITY, seed=3, flip=0.25, reviewer="noisy"))
    with Warehouse(db, read_only=True) as warehouse:
        rows = agreement(warehouse)
    assert {(a.evaluator, a.journey, a.stage) for a in rows if a.journey is None} == {(RESOLUTION, None, None),
                                                                                      (QUALITY, None, None)}
    checked = 0
    for a in rows:
        scores, passed, truth = _pairs(db, a.evaluator, a.journey, a.stage)
        assert a.n == len(scores) and (a.reviewed_pass, a.reviewed_fail) == (sum(truth), len(truth) - sum(truth))
        counts = ref.confusion(passed, truth)
        assert (a.tp, a.fp, a.fn, a.tn) == (counts["tp"], counts["fp"], counts["fn"], counts["tn"])
        expected_auc = ref.auroc(scores, truth)
        assert (a.auroc is None) == (expected_auc is None)
        if expected_auc is not None:
            assert a.auroc == pytest.approx(expected_auc, abs=1e-12)
            assert a.auroc_ci[0] <= a.auroc <= a.auroc_ci[1]
        expected_kappa = ref.kappa(passed, truth)
        assert a.kappa == pytest.approx(expected_kappa, abs=1e-12) if expected_kappa is not None else a.kappa is None
        if counts["tp"] + counts["fp"]:
            assert a.precision == pytest.approx(counts["tp"] / (counts["tp"] + counts["fp"]))
            assert a.precision_ci[0] <= a.precision <= a.precision_ci[1]
        if counts["tp"] + counts["fn"]:
            assert a.recall == pytest.approx(counts["tp"] / (counts["tp"] + counts["fn"]))
        assert a.threshold == builtin_threshold(a.evaluator)
        if a.suggested_threshold is not None:
            assert min(a.reviewed_pass, a.reviewed_fail) >= MIN_PER_VERDICT
            assert ref.youden_at(scores, truth, a.suggested_threshold) == pytest.approx(ref.best_youden(scores, truth))
        else:
            assert min(a.reviewed_pass, a.reviewed_fail) < MIN_PER_VERDICT
        checked += 1
    assert checked > 10
    overall = {a.evaluator: a for a in rows if a.journey is None}
    # the noisy reviewer disagrees on a quarter of the visits, the STAR annotators rarely: kappa tells them apart
    assert overall[QUALITY].kappa_ci[0] < overall[QUALITY].kappa < overall[QUALITY].kappa_ci[1]
    assert overall[QUALITY].kappa_ci[1] < overall[RESOLUTION].kappa_ci[0]
    assert overall[QUALITY].suggested_threshold is not None

    result = cli("evaluators", "agreement", "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    with Warehouse(db, read_only=True) as warehouse:
        assert json.loads(result.stdout) == json.loads(json.dumps(agreement_report(warehouse)))
    first = json.loads(result.stdout)["evaluators"][0]
    assert {"evaluator", "journey", "stage", "n", "auroc", "kappa", "precision", "recall", "threshold",
            "suggested_threshold", "auroc_ci_low", "auroc_ci_high", "kappa_ci_low", "precision_ci_high",
            "recall_ci_low", "engine"} <= set(first)
    table = cli("evaluators", "agreement", "--db", str(db))
    assert table.returncode == 0 and "overall" in table.stdout and "Hanley-McNeil" in table.stdout


def test_agreement_without_reviews_is_empty_not_an_error(db, tmp_path, cli):
    with Warehouse(db, read_only=True) as warehouse:
        assert agreement_report(warehouse)["evaluators"] == []
    result = cli("evaluators", "agreement", "--db", str(db))
    assert result.returncode == 0 and "No reviewed visits" in result.stdout


# -- thresholds -----------------------------------------------------------------------------------------
def test_adopting_a_threshold_is_versioned_audited_and_reproducible(db, tmp_path, cli):
    store(db, noisy_reviews(db, QUALITY, seed=5, flip=0.1, reviewer="r"))
    with Warehouse(db) as warehouse:
        before = dict(((j, s, v), p) for j, s, v, p in warehouse.query(
            "SELECT journey_id, stage, visit, passed FROM evaluations WHERE evaluator = ? AND score IS NOT NULL",
            [QUALITY]))
        first, decided = adopt(warehouse, QUALITY, 0.75, reason="reviews of week 48", actor="alice")
        assert (first.version, first.previous, first.previous_version, first.reviews) == (1, 0.6, None, len(before))
        assert decided == len(before)
        stage = warehouse.query("SELECT stage FROM evaluations WHERE evaluator = ? GROUP BY stage "
                                "ORDER BY count(*) DESC LIMIT 1", [QUALITY])[0][0]
        second, _ = adopt(warehouse, QUALITY, 0.4, reason="this stage is judged more leniently", stage=stage,
                          actor="bob")
        assert (second.version, second.previous, second.previous_version) == (2, 0.75, 1)
        rows = warehouse.query("SELECT e.journey_id, e.visit, e.stage, e.score, e.passed, e.threshold_version, t.threshold "
                               "FROM evaluations e LEFT JOIN evaluator_thresholds t ON t.version = e.threshold_version "
                               "WHERE e.evaluator = ? AND e.score IS NOT NULL", [QUALITY])
        others = warehouse.query("SELECT count(*) FROM evaluations WHERE evaluator <> ? AND threshold_version IS NOT NULL",
                                 [QUALITY])
        entries = audit.entries(warehouse.cursor(), action=audit.THRESHOLD_ADOPTED)
    # every verdict is its score against the threshold of the version it records: the most specific scope wins
    assert all(v == (2 if s == stage else 1) and p == (score >= t) for _, _, s, score, p, v, t in rows)
    changed = sum(1 for j, visit, s, _, p, _, _ in rows if before[(j, s, visit)] != p)
    assert changed == sum(1 for _, _, s, score, _, _, _ in rows
                          if (0.6 <= score < 0.75 and s != stage) or (0.4 <= score < 0.6 and s == stage)) > 0
    assert others == [(0,)]  # other evaluators keep their built-in thresholds
    assert [(e["actor"], e["detail"]["version"], e["detail"]["threshold"]) for e in entries] == [
        ("bob", 2, 0.4), ("alice", 1, 0.75)]

    # new results are decided by the adopted threshold as they are written
    with Warehouse(db) as warehouse:
        warehouse.query("DELETE FROM evaluations WHERE evaluator = ?", [QUALITY])
        evaluate_pending(warehouse, evaluators=[QUALITY])
        rescored = warehouse.query("SELECT e.stage, e.score, e.passed, e.threshold_version FROM evaluations e "
                                   "WHERE e.evaluator = ? AND e.score IS NOT NULL", [QUALITY])
        assert [t.version for t in history(warehouse.cursor(), QUALITY)] == [1, 2]
    assert len(rescored) == len(rows)
    assert all(p == (score >= (0.4 if s == stage else 0.75)) and v == (2 if s == stage else 1)
               for s, score, p, v in rescored)

    with Warehouse(db, read_only=True) as warehouse:
        overall = next(a for a in agreement(warehouse, QUALITY) if a.journey is None)
        per_stage = next(a for a in agreement(warehouse, QUALITY) if a.stage == stage)
    assert (overall.threshold, overall.threshold_version) == (0.75, 1)
    assert (per_stage.threshold, per_stage.threshold_version) == (0.4, 2)
    with Warehouse(db, read_only=True) as warehouse:  # the export says which version decided each verdict
        export_table(warehouse, "evaluations", "jsonl", tmp_path / "evaluations.jsonl")
    exported = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert {r["threshold_version"] for r in exported if r["evaluator"] == QUALITY and r["score"] is not None} == {1, 2}

    adopted = cli("evaluators", "adopt", QUALITY, "--threshold", "0.7", "--reason", "ticket 12", "--journey", "assistant",
              "--db", str(db))
    assert adopted.returncode == 0, adopted.stderr
    assert "as version 3 (was 0.75, v1)" in adopted.stdout
    listed = cli("evaluators", "thresholds", "--db", str(db), "--format", "json")
    assert [t["version"] for t in json.loads(listed.stdout)["thresholds"]] == [1, 2, 3]
    for args, message in [
        (["--threshold", "1.5", "--reason", "x"], "a threshold is a score from 0 to 1"),
        (["--threshold", "0.5", "--reason", " "], "say why this threshold is adopted"),
    ]:
        bad = cli("evaluators", "adopt", QUALITY, *args, "--db", str(db))
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr
    unknown = cli("evaluators", "adopt", "nope", "--threshold", "0.5", "--reason", "x", "--db", str(db))
    assert unknown.returncode == 1 and "unknown evaluator 'nope'" in unknown.stderr


# -- the review queue ----------------------------------------------------------------------------------
def test_the_queue_starts_near_the_threshold_across_stages_and_skips_reviewed_visits(db):
    with Warehouse(db, read_only=True) as warehouse:
        queue = review_queue(warehouse, QUALITY, limit=40)
        stages = {r[0] for r in warehouse.query("SELECT DISTINCT stage FROM evaluations WHERE evaluator = ? "
                                                "AND score IS NOT NULL", [QUALITY])}
        scored = warehouse.query("SELECT count(*) FROM evaluations WHERE evaluator = ? AND score IS NOT NULL",
                                 [QUALITY])[0][0]
    assert len(queue) == 40 and len({(q["journey_id"], q["stage"], q["visit"]) for q in queue}) == 40
    distances = sorted(abs(q["score"] - 0.6) for q in queue)
    assert abs(queue[0]["score"] - 0.6) <= distances[len(distances) // 4]  # the first is among the nearest
    assert len({q["stage"] for q in queue[:15]}) >= min(8, len(stages))  # spread over stages early
    assert {q["passed"] for q in queue} == {True, False}  # both sides of the threshold
    store(db, [{"journey_id": q["journey_id"], "stage": q["stage"], "visit": q["visit"], "evaluator": QUALITY,
                "passed": True} for q in queue[:10]])
    with Warehouse(db, read_only=True) as warehouse:
        after = review_queue(warehouse, QUALITY, limit=scored)
        # A stage with a visit still to review (the first queued visit's stage may have had only that one, reviewed now).
        one_stage = review_queue(warehouse, QUALITY, stage=after[0]["stage"], limit=scored)
    reviewed = {(q["journey_id"], q["stage"], q["visit"]) for q in queue[:10]}
    assert len(after) == scored - 10 and not reviewed & {(q["journey_id"], q["stage"], q["visit"]) for q in after}
    assert {q["stage"] for q in one_stage} == {after[0]["stage"]}
    assert (after[0]["journey_id"], after[0]["visit"]) in {(q["journey_id"], q["visit"]) for q in one_stage}


# -- the API ----------------------------------------------------------------------------------------------
def test_api_reviews_agreement_queue_and_thresholds(db, tmp_path):
    reviews = star_reviews(db)
    tokens = {name: new_token() for name in ("reader", "writer", "admin")}
    keys = tmp_path / "keys.toml"
    scopes = {"reader": '"read"', "writer": '"write", "read"', "admin": '"admin", "read"'}
    keys.write_text("".join(f'[[keys]]\nname = "{n}"\nscopes = [{scopes[n]}]\nsha256 = "{digest}"\n'
                            for n, (_, digest) in tokens.items()))
    settings = ServerSettings(db=str(db), keys_file=str(keys), evaluate_online=False)
    with running_server(settings) as server:
        def call(method: str, path: str, who: str, **kw) -> httpx.Response:
            return httpx.request(method, server.base_url + path, headers={"Authorization": f"Bearer {tokens[who][0]}"},
                                 timeout=30, **kw)

        assert call("POST", "/v1/reviews", "reader", json=reviews[0]).status_code == 403
        one = call("POST", "/v1/reviews", "writer", json=reviews[0])
        assert one.status_code == 200 and one.json() == {"accepted": 1, "superseded": 0, "rejected": []}
        mixed = call("POST", "/v1/reviews", "writer", json=[*reviews[1:], {**reviews[0], "visit": 0}, "text"])
        assert mixed.status_code == 200
        assert mixed.json()["accepted"] == len(reviews) - 1
        assert mixed.json()["rejected"] == [
            {"index": len(reviews), "reason": "'visit' must be a whole number from 1, got 0"},
            {"index": len(reviews) + 1, "reason": "a review is a JSON object, got str"}]
        none = call("POST", "/v1/reviews", "writer", json=[{**reviews[0], "evaluator": "nope"}])
        assert none.status_code == 422 and "unknown evaluator 'nope'" in none.json()["rejected"][0]["reason"]

        agreement_body = call("GET", "/v1/evaluators/agreement", "reader").json()
        overall = next(r for r in agreement_body["evaluators"] if r["journey"] is None and r["stage"] is None)
        assert overall["evaluator"] == RESOLUTION and overall["n"] == len(reviews)
        assert call("GET", "/v1/evaluators/agreement?engine=nope", "reader").status_code == 422

        assert call("POST", "/v1/evaluators/agreement/score", "reader").status_code == 403
        scored = call("POST", "/v1/evaluators/agreement/score", "writer").json()["engines"]
        assert scored == [{"engine": "local", "scored": 0, "up_to_date": len(reviews), "no_consent": 0, "errors": 0,
                           "llm_calls": 0}]  # no llm configured; the local engine made these evaluations already

        queue = call("GET", f"/v1/reviews/queue?evaluator={QUALITY}&limit=5", "reader").json()
        assert len(queue) == 5 and all(q["evaluator"] == QUALITY for q in queue)

        body = {"evaluator": RESOLUTION, "threshold": 0.55, "reason": "calibrated on STAR labels"}
        assert call("POST", "/v1/evaluators/thresholds", "writer", json=body).status_code == 403
        adopted = call("POST", "/v1/evaluators/thresholds", "admin", json=body)
        assert adopted.status_code == 200, adopted.text
        assert adopted.json()["version"] == 1 and adopted.json()["actor"] == "api-key:admin"
        assert call("POST", "/v1/evaluators/thresholds", "admin", json={**body, "threshold": 2}).status_code == 422
        listed = call("GET", "/v1/evaluators/thresholds", "reader").json()["thresholds"]
        assert [(t["version"], t["threshold"]) for t in listed] == [(1, 0.55)]
    with Warehouse(db, read_only=True) as warehouse:
        assert warehouse.query("SELECT DISTINCT reviewer, source FROM reviews") == [("star", "api")]


# -- local and llm side by side --------------------------------------------------------------------------
def _judge(body: dict) -> tuple[int, dict]:
    """A crude judge behind the OpenAI-compatible stand-in (a hosted LLM cannot run here): a visit is resolved
    when its transcript says something was done."""
    from support.openai_server import completion

    text = body["messages"][-1]["content"].lower()
    done = any(w in text for w in ("confirmed", "booked", "unlocked", "reserved", "scheduled", "has been"))
    verdict = {"score": 0.85 if done else 0.25, "label": "resolved" if done else "unresolved",
               "reason": "[s#1:1] stand-in verdict."}
    return 200, completion(json.dumps(verdict), model=body["model"])


def test_local_and_llm_agreement_side_by_side_on_the_same_reviews(db, cli, monkeypatch):
    from support.openai_server import openai_server

    reviews = star_reviews(db)
    store(db, reviews)
    kept_back = reviews[0]["journey_id"]
    with Warehouse(db) as warehouse:  # this customer did not consent to AI evaluation
        warehouse.query("UPDATE spans SET consent = 'analytics' WHERE journey_id = ?", [kept_back])
        local_before = next(a for a in agreement(warehouse) if a.journey is None)
    with openai_server(_judge) as (url, seen):
        monkeypatch.setenv("JOURNEYSCOPE_LLM_BASE_URL", url)
        monkeypatch.setenv("JOURNEYSCOPE_LLM_MODEL", "stand-in-judge")
        first = cli("evaluators", "agreement", "--db", str(db), "--score-reviewed", "--format", "json")
        calls = len(seen)
        again = cli("evaluators", "agreement", "--db", str(db), "--score-reviewed", "--format", "json")
        assert len(seen) == calls  # up to date: no second call
    assert first.returncode == 0, first.stderr
    judged = {(r["journey_id"], r["stage"], r["visit"]) for r in reviews if r["journey_id"] != kept_back}
    assert calls == len(judged) and "llm: " in first.stderr and "1 kept from the judge (no consent)" in first.stderr
    assert all(kept_back not in json.dumps(s["body"]) for s in seen)
    rows = {(r["engine"], r["journey"], r["stage"]): r for r in json.loads(again.stdout)["evaluators"]}
    local, llm = rows[("local", None, None)], rows[("llm", None, None)]
    assert local["n"] == local_before.n == len(reviews) and local["auroc"] == local_before.auroc
    assert llm["n"] == len(judged) and llm["evaluator"] == local["evaluator"] == RESOLUTION
    with Warehouse(db, read_only=True) as warehouse:
        pairs = warehouse.query(
            "SELECT s.score, r.passed FROM review_scores s JOIN reviews r USING (journey_id, stage, visit, evaluator) "
            "WHERE s.engine = 'llm' AND r.superseded_at IS NULL")
        versions = warehouse.query("SELECT DISTINCT version FROM review_scores")
    assert llm["auroc"] == pytest.approx(ref.auroc([p[0] for p in pairs], [p[1] for p in pairs]), abs=1e-12)
    assert versions == [(f"{RUBRIC_VERSION}/stand-in-judge",)]

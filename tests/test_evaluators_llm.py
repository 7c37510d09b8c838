"""LLM engine against a real OpenAI-compatible HTTP server on loopback (``tests/support/openai_server.py``).

The stand-in speaks ``POST /v1/chat/completions`` over real HTTP like a hosted LLM (OpenAI, vLLM,
Ollama, ...); its answer is chosen by the ``model`` named in the request, so each test exercises one
behaviour of a real endpoint: a valid verdict, HTTP 500, malformed JSON, an out-of-schema verdict, a
slow reply. Every request is recorded so tests can count calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from journeyscope.evaluators import StageVisit, Turn, VisitContext, evaluate_visit
from journeyscope.evaluators.cache import MemoryCache
from journeyscope.evaluators.llm import ENV_BASE_URL, ENV_MODEL, LLMEngine
from support.openai_server import completion, openai_server

GOOD = {"score": 0.9, "label": "resolved", "reason": "[s#1:3] the agent confirmed the booking.",
        "evidence": {"turns": [3]}}


def _reply(body: dict[str, Any]) -> tuple[int, Any]:
    model = body["model"]
    if model == "http-500":
        return 500, {"error": {"message": "boom"}}
    if model == "slow":
        time.sleep(1.0)
    content = {
        "good": json.dumps(GOOD),
        "fenced": "```json\n" + json.dumps(GOOD) + "\n```",
        "not-json": "The conversation was resolved, score 0.9.",
        "bad-schema": json.dumps({"score": 1.7, "label": "resolved", "reason": "x"}),
        "bad-label": json.dumps({"score": 0.5, "label": "great", "reason": "x"}),
    }.get(model, json.dumps(GOOD))
    return 200, completion(content, model=model)


@pytest.fixture(scope="module")
def _stand_in() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with openai_server(_reply) as (url, seen):
        yield url, seen


@pytest.fixture()
def server(_stand_in: tuple[str, list[dict[str, Any]]]) -> str:
    return _stand_in[0]


@pytest.fixture()
def calls(_stand_in: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The requests the stand-in received during this test (path, headers, body)."""
    seen = _stand_in[1]
    seen.clear()
    return seen


def _ctx() -> VisitContext:
    turns = (Turn("customer", "Book me a table for two at 7."), Turn("agent", "May I have your name?"),
             Turn("customer", "Ana"), Turn("agent", "Your table for two at 7 pm is confirmed."))
    return VisitContext(StageVisit("j", "s", 1, turns))


def test_valid_verdict_becomes_a_result(server: str, calls: list[dict[str, Any]]) -> None:
    with LLMEngine(server, "good", api_key="sk-test") as eng:
        (r,) = eng.evaluate(_ctx(), ["conversation_resolution"])
    assert r.error is None and r.score == 0.9 and r.passed and r.label == "resolved"
    assert r.version == "llm-1/good" and r.evidence["turns"] == [3] and r.evidence["cached"] is False
    (req,) = calls
    assert req["path"] == "/v1/chat/completions" and req["headers"]["Authorization"] == "Bearer sk-test"
    messages = req["body"]["messages"]
    assert messages[0]["role"] == "system" and "resolved" in messages[0]["content"]
    assert "Your table for two at 7 pm is confirmed." in messages[1]["content"]


def test_cache_hit_makes_no_second_http_call(server: str, calls: list[dict[str, Any]]) -> None:
    cache = MemoryCache()
    with LLMEngine(server, "good", cache=cache) as eng:
        first = eng.judge(_ctx(), "conversation_resolution")
        second = eng.judge(_ctx(), "conversation_resolution")
    assert len(calls) == 1 and eng.calls == 1 and len(cache) == 1
    assert first.score == second.score and second.evidence["cached"] is True
    with LLMEngine(server, "other-model", cache=cache) as eng2:  # the model is part of the key
        eng2.judge(_ctx(), "conversation_resolution")
    assert len(calls) == 2


def test_http_500_gives_an_error_result(server: str, calls: list[dict[str, Any]]) -> None:
    cache = MemoryCache()
    with LLMEngine(server, "http-500", cache=cache) as eng:
        (r,) = eng.evaluate(_ctx(), ["conversation_resolution"])
    assert r.error is not None and "500" in r.error
    assert r.score is None and r.passed is None and r.label == "error"
    assert len(cache) == 0  # a failure is not cached: the next run retries it


@pytest.mark.parametrize("model, message", [("not-json", "not JSON"), ("bad-schema", "score"),
                                            ("bad-label", "label")])
def test_malformed_or_out_of_schema_answer_gives_an_error_result(server: str, model: str, message: str,
                                                                 calls: list[dict[str, Any]]) -> None:
    with LLMEngine(server, model) as eng:
        r = eng.judge(_ctx(), "conversation_resolution")
    assert r.score is None and r.error is not None and message in r.error


def test_fenced_json_is_accepted(server: str, calls: list[dict[str, Any]]) -> None:
    with LLMEngine(server, "fenced") as eng:
        assert eng.judge(_ctx(), "conversation_resolution").score == 0.9


def test_timeout_gives_an_error_result(server: str, calls: list[dict[str, Any]]) -> None:
    with LLMEngine(server, "slow", timeout=0.2) as eng:
        r = eng.judge(_ctx(), "conversation_resolution")
    assert r.score is None and r.error is not None and "timed out" in r.error


def test_unreachable_endpoint_gives_an_error_result() -> None:
    with LLMEngine("http://127.0.0.1:9/v1", "good", timeout=1.0) as eng:
        r = eng.judge(_ctx(), "conversation_resolution")
    assert r.score is None and r.error is not None


def test_env_configuration_and_friction_stays_local(server: str, calls: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_BASE_URL, server)
    monkeypatch.setenv(ENV_MODEL, "good")
    results = evaluate_visit(_ctx(), engine="llm", evaluators=["conversation_resolution", "friction_reentry"])
    assert [r.evaluator for r in results] == ["conversation_resolution", "friction_reentry"]
    assert results[0].version.startswith("llm-1/") and results[1].version == "local-1"
    assert len(calls) == 1


def test_missing_configuration_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BASE_URL, raising=False)
    monkeypatch.delenv(ENV_MODEL, raising=False)
    with pytest.raises(ValueError, match="base URL"):
        LLMEngine()


def test_empty_visit_is_not_sent_to_the_judge(server: str, calls: list[dict[str, Any]]) -> None:
    with LLMEngine(server, "good") as eng:
        r = eng.judge(VisitContext(StageVisit("j", "s", 1, ())), "conversation_resolution")
    assert r.score is None and r.label == "no_evidence" and not calls

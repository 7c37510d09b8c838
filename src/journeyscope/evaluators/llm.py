"""The opt-in LLM engine: our rubric prompts, any OpenAI-compatible chat-completions endpoint, cached.

Configuration comes from constructor arguments or the environment (``JOURNEYSCOPE_LLM_BASE_URL``,
``JOURNEYSCOPE_LLM_MODEL``, ``JOURNEYSCOPE_LLM_API_KEY``). The judge must answer with one JSON object
that passes a strict schema check; anything else (HTTP error, timeout, malformed or out-of-range JSON)
gives a result with ``error`` set for that visit, never a default score. Friction evaluators are
measurements, not judgements, and always run locally.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import httpx

from journeyscope import settings
from journeyscope.evaluators import quality, resolution, retention
from journeyscope.evaluators.base import guard
from journeyscope.evaluators.cache import MemoryCache, VerdictCache, cache_key
from journeyscope.evaluators.result import EvalResult, registered, run_local
from journeyscope.evaluators.rubrics import RUBRIC_VERSION, RUBRICS, Rubric, render
from journeyscope.evaluators.text import read_visit
from journeyscope.evaluators.transcript import VisitContext

ENV_BASE_URL = "JOURNEYSCOPE_LLM_BASE_URL"
ENV_MODEL = "JOURNEYSCOPE_LLM_MODEL"
ENV_API_KEY = "JOURNEYSCOPE_LLM_API_KEY"
DEFAULT_TIMEOUT_S = 60.0

_PASS_AT = {
    resolution.NAME: resolution.PASS_AT,
    retention.NAME: retention.PASS_AT,
    quality.NAME: quality.PASS_AT,
}
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class VerdictError(ValueError):
    """The judge's answer is not the JSON object the rubric asked for."""


def parse_verdict(content: str, rubric: Rubric) -> dict[str, Any]:
    """Parse and schema-check one judge answer; raise :class:`VerdictError` when it does not conform.

    Accepted: a single JSON object, optionally inside a ```json fence (many models add one), with
    ``score`` a finite number in [0, 1], ``label`` one of the rubric's labels, ``reason`` a non-empty
    string and optional ``evidence`` an object. Extra keys are rejected: they signal a confused answer.
    """
    m = _FENCE.match(content)
    body = m.group(1) if m else content.strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"answer is not JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise VerdictError("answer is not a JSON object")
    extra = set(data) - {"score", "label", "reason", "evidence"}
    if extra:
        raise VerdictError(f"unexpected key(s): {', '.join(sorted(extra))}")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
            or not 0.0 <= score <= 1.0:
        raise VerdictError(f"score must be a number in [0, 1], got {score!r}")
    label = data.get("label")
    if label not in rubric.labels:
        raise VerdictError(f"label must be one of {list(rubric.labels)}, got {label!r}")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise VerdictError("reason must be a non-empty string")
    evidence = data.get("evidence", {})
    if not isinstance(evidence, dict):
        raise VerdictError("evidence must be an object")
    return {"score": float(score), "label": label, "reason": reason.strip(), "evidence": evidence}


class LLMEngine:
    """Scores visits with an LLM judge. Reuse one instance: it holds the HTTP client and the cache.

    ``client`` may be any ``httpx.Client`` (tests and proxies pass their own); ``cache`` any
    :class:`VerdictCache`. Bad configuration (no base URL or model) fails fast with ``ValueError``.
    """

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT_S, cache: VerdictCache | None = None,
                 client: httpx.Client | None = None, json_mode: bool = True, temperature: float = 0.0) -> None:
        env = settings.load()
        self.base_url = (base_url or env.llm_base_url or "").rstrip("/")
        self.model = model or env.llm_model or ""
        self.api_key = api_key if api_key is not None else env.llm_api_key
        if not self.base_url:
            raise ValueError(f"LLM engine needs a base URL (argument or {ENV_BASE_URL})")
        if not self.model:
            raise ValueError(f"LLM engine needs a model name (argument or {ENV_MODEL})")
        self.cache: VerdictCache = cache if cache is not None else MemoryCache()
        self.json_mode = json_mode
        self.temperature = temperature
        self._client = client or httpx.Client(timeout=timeout)
        self._owns_client = client is None
        #: HTTP calls made, for tests and cost reports.
        self.calls = 0

    @property
    def version(self) -> str:
        """Stored version of this engine's results: rubric version and model."""
        return f"{RUBRIC_VERSION}/{self.model}"

    def close(self) -> None:
        """Close the HTTP client if this engine created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> LLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def evaluate(self, ctx: VisitContext, evaluators: Sequence[str]) -> list[EvalResult]:
        """One result per name, in order; judged evaluators go to the LLM, the others run locally."""
        known = registered()
        unknown = [n for n in evaluators if n not in known]
        if unknown:
            raise ValueError(f"unknown evaluator(s): {', '.join(unknown)}")
        out: list[EvalResult] = []
        for name in evaluators:
            if name in RUBRICS:
                out.append(self.judge(ctx, name))
            else:
                out.extend(run_local(ctx, [name]))
        return out

    def judge(self, ctx: VisitContext, name: str) -> EvalResult:
        """Ask the judge one rubric's question about one visit (cached)."""
        rubric = RUBRICS[name]
        vt = read_visit(ctx.visit)
        bad = guard(name, self.version, vt, need_agent=name != resolution.NAME)
        if bad is not None and bad.label != "unsupported_language":  # the judge reads any language
            return bad
        transcript = render(ctx)
        key = cache_key(name, RUBRIC_VERSION, self.model, transcript)
        verdict = self.cache.get(key)
        cached = verdict is not None
        if verdict is None:
            try:
                verdict = self._ask(rubric, transcript)
            except (httpx.HTTPError, VerdictError) as exc:
                return self._error(name, exc)
            self.cache.put(key, verdict)
        score = verdict["score"]
        evidence = {**verdict.get("evidence", {}), "engine": "llm", "model": self.model, "cached": cached,
                    "cache_key": key}
        return EvalResult(name, self.version, score, score >= _PASS_AT[name], verdict["label"], verdict["reason"],
                          evidence)

    def _ask(self, rubric: Rubric, transcript: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": self.temperature,
            "messages": [{"role": "system", "content": rubric.system_prompt()},
                         {"role": "user", "content": transcript}],
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.calls += 1
        resp = self._client.post(f"{self.base_url}/chat/completions", json=body, headers=headers)
        resp.raise_for_status()
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise VerdictError("response is not a chat-completions object") from None
        if not isinstance(content, str):
            raise VerdictError("message content is not text")
        return parse_verdict(content, rubric)

    def _error(self, name: str, exc: Exception) -> EvalResult:
        if isinstance(exc, httpx.HTTPStatusError):
            what = f"HTTP {exc.response.status_code} from the LLM endpoint"
        elif isinstance(exc, httpx.TimeoutException):
            what = "the LLM endpoint timed out"
        elif isinstance(exc, httpx.HTTPError):
            what = f"could not reach the LLM endpoint ({type(exc).__name__})"
        else:
            what = f"invalid judge answer: {exc}"
        return EvalResult(name, self.version, None, None, "error", f"Not scored: {what}.",
                          {"engine": "llm", "model": self.model}, error=what)

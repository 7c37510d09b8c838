"""Conversation turns read out of a span, whatever convention produced it.

journeyscope's own ``journey.turn`` spans carry one turn. Agents instrumented
by OpenInference (``input.value``/``output.value``, ``llm.input_messages.N.*``)
or the OTel GenAI conventions (``gen_ai.input.messages``/``gen_ai.output.messages``)
carry the turns of one model call; from those only what is *new* in the call
is taken (the last customer message and the reply), because an LLM span's input
repeats the whole conversation so far and would otherwise duplicate every turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from journeyscope.instrument import conventions as cv

Turn = dict[str, Any]

_ROLE_MAP = {
    "user": "customer",
    "human": "customer",
    "customer": "customer",
    "assistant": "agent",
    "ai": "agent",
    "model": "agent",
    "agent": "agent",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}


def _turn(role: str, text: str, name: str | None = None) -> Turn:
    return {"role": role, "text": text, "name": name}


def _role(value: Any) -> str | None:
    return _ROLE_MAP.get(str(value).strip().lower()) if value is not None else None


def _openinference_messages(attributes: Mapping[str, Any], prefix: str) -> list[Turn]:
    """``llm.input_messages.0.message.role`` ... flattened keys, in index order."""
    found: dict[int, dict[str, Any]] = {}
    start = len(prefix) + 1
    for key, value in attributes.items():
        if not key.startswith(prefix + "."):
            continue
        index_text, _, rest = key[start:].partition(".")
        if not index_text.isdigit():
            continue
        found.setdefault(int(index_text), {})[rest] = value
    turns = []
    for index in sorted(found):
        message = found[index]
        role = _role(message.get("message.role"))
        text = message.get("message.content")
        if text is None:
            parts = [v for k, v in sorted(message.items()) if k.startswith("message.contents.") and k.endswith(".text")]
            text = "\n".join(str(p) for p in parts) if parts else None
        if role and text:
            turns.append(_turn(role, str(text), _opt(message.get("message.name"))))
    return turns


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _genai_messages(raw: Any) -> list[Turn]:
    """OTel GenAI ``gen_ai.*.messages``: a JSON array of ``{role, parts: [{type, content}]}``."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return []
    if not isinstance(raw, list):
        return []
    turns = []
    for message in raw:
        if not isinstance(message, dict):
            continue
        role = _role(message.get("role"))
        content = message.get("content")
        if content is None and isinstance(message.get("parts"), list):
            texts = [
                str(p.get("content") or p.get("text") or "")
                for p in message["parts"]
                if isinstance(p, dict) and p.get("type", "text") == "text"
            ]
            content = "\n".join(t for t in texts if t)
        if role and content:
            turns.append(_turn(role, str(content), _opt(message.get("name"))))
    return turns


def _last_customer(turns: list[Turn]) -> list[Turn]:
    for turn in reversed(turns):
        if turn["role"] == "customer":
            return [turn]
    return []


def extract_turns(span_name: str, attributes: Mapping[str, Any]) -> list[Turn]:
    """The conversation turns this span records, oldest first (often none)."""
    role = attributes.get(cv.TURN_ROLE)
    if span_name == cv.TURN_SPAN or role is not None:
        text = attributes.get(cv.TURN_TEXT)
        # Any attribute value can arrive here (a list from a careless SDK): only a string is a role.
        mapped = (role if role in cv.TURN_ROLES else _role(role)) if isinstance(role, str) else None
        if mapped and text is not None:
            return [_turn(mapped, str(text), _opt(attributes.get(cv.TURN_NAME)))]
        return []
    if any(k.startswith("llm.input_messages.") or k.startswith("llm.output_messages.") for k in attributes):
        return _last_customer(_openinference_messages(attributes, "llm.input_messages")) + _openinference_messages(
            attributes, "llm.output_messages"
        )
    if "gen_ai.input.messages" in attributes or "gen_ai.output.messages" in attributes:
        return _last_customer(_genai_messages(attributes.get("gen_ai.input.messages"))) + _genai_messages(
            attributes.get("gen_ai.output.messages")
        )
    kind = str(attributes.get("openinference.span.kind", "")).upper()
    if kind in ("AGENT", "CHAIN") and ("input.value" in attributes or "output.value" in attributes):
        turns = []
        if attributes.get("input.value"):
            turns.append(_turn("customer", str(attributes["input.value"])))
        if attributes.get("output.value"):
            turns.append(_turn("agent", str(attributes["output.value"])))
        return turns
    return []

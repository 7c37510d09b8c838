"""Conversation turns read out of a span or a log record, whatever convention produced it.

The one table of these rules (README, "Where turns come from", repeats it). For a span, the first rule
whose keys it carries decides:

====================================  ====================================================================
keys on the span                      turns
====================================  ====================================================================
``journey.turn.role`` / ``.text``     journeyscope's own turn span: that one turn
``llm.input_messages.N.message.*``,   OpenInference LLM span: the call's new messages (below)
``llm.output_messages.N.message.*``
``gen_ai.input.messages.N.message.*`` traceAI (flattened, as OpenInference): the call's new messages
``gen_ai.output.messages.N.message.*``
``gen_ai.input.messages``,            OTel GenAI (latest): the call's new messages; a structured value or
``gen_ai.output.messages``            its JSON text, messages of ``parts`` (``text``, ``tool_call``,
                                      ``tool_call_response``); ``gen_ai.system_instructions`` is context
``gen_ai.tool.call.arguments``,       OTel GenAI ``execute_tool`` span: the call and its result as tool
``gen_ai.tool.call.result``           turns
``openinference.span.kind`` AGENT or  ``input.value`` as the customer's, ``output.value`` as the agent's,
CHAIN, ``input.value``/``output.      unless its ``*.mime_type`` is JSON; a *fallback*: dropped when an
value``                               LLM span of the trace carries messages (:data:`FALLBACK_KINDS`)
====================================  ====================================================================

Log records (OTLP logs; the event name in ``event_name`` or the ``event.name`` attribute), each a turn of
the span whose ids it carries:

- ``gen_ai.user.message`` → customer, ``gen_ai.assistant.message`` → agent (or its tool calls),
  ``gen_ai.tool.message`` → tool, ``gen_ai.choice`` → the reply; ``gen_ai.system.message`` is context;
- ``gen_ai.client.inference.operation.details``: its ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` read like a span's;
- any other record: not stored (journeyscope keeps conversations, not logs).

**A call's new messages.** An LLM call's input repeats the conversation so far, and that history was
already the output (and the inputs) of the journey's earlier calls. So only the input messages after its
last assistant message are taken, then its output: a customer message, a tool result, and the reply.
System and developer messages are the agent's instructions, context rather than turns of the
conversation: they stay in the span's attributes. A tool call is a ``tool`` turn named after the tool,
its text the arguments; a tool result a ``tool`` turn, its text the result, named only by a ``name`` it
carries (its ``id`` or ``tool_call_id`` is the call's id, not a tool's name, on every path). The per-message log records
of one call are trimmed the same way when visits and transcripts are built (:mod:`foreign_turns`): they may
arrive in several requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from journeyscope import conventions as cv

__all__ = [
    "FALLBACK_KINDS", "GENAI_EVENTS", "LOG_INPUT", "LOG_OUTPUT", "LOG_WHOLE", "TURN_KEYS", "TURN_PREFIXES",
    "Turn", "extract_turns", "log_record_turns",
]

Turn = dict[str, Any]

#: Span keys (and key prefixes) from which :func:`extract_turns` reads another convention's turns; the
#: compiled decoder leaves a span holding one to the Python rules.
TURN_KEYS = (
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "openinference.span.kind",
)
TURN_PREFIXES = (
    "llm.input_messages.", "llm.output_messages.", "gen_ai.input.messages.", "gen_ai.output.messages.",
)
#: OpenInference span kinds whose ``input.value``/``output.value`` are turns only when no LLM span of the
#: trace carries the messages (the transcript query drops them otherwise).
FALLBACK_KINDS = ("AGENT", "CHAIN")

#: Which side of its call a log record's turns are: input messages (trimmed to what is new when the
#: transcript is built), the output, or a whole call (already trimmed).
LOG_INPUT, LOG_OUTPUT, LOG_WHOLE = "input", "output", "whole"
#: GenAI log record event names: the role of their turn and the side of the call.
GENAI_EVENTS: dict[str, tuple[str | None, str]] = {
    "gen_ai.system.message": (None, LOG_INPUT),
    "gen_ai.user.message": ("customer", LOG_INPUT),
    "gen_ai.assistant.message": ("agent", LOG_INPUT),
    "gen_ai.tool.message": ("tool", LOG_INPUT),
    "gen_ai.choice": ("agent", LOG_OUTPUT),
    "gen_ai.client.inference.operation.details": (None, LOG_WHOLE),
}

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
_JSON_MIME = "application/json"


def _turn(role: str, text: str, name: str | None = None) -> Turn:
    return {"role": role, "text": text, "name": name}


def _role(value: Any) -> str | None:
    return _ROLE_MAP.get(str(value).strip().lower()) if isinstance(value, str) else None


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _text(value: Any) -> str:
    """A value as turn text: strings as they are, anything structured as its JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return str(value)


def _tool_text(value: Any) -> str:
    """Tool arguments or a result as turn text: JSON (structured, or its text) in one compact spelling, so
    the same call recorded by two spans (a model call's output and an ``execute_tool`` span) is one turn."""
    if isinstance(value, str):
        parsed = _parsed(value) if value[:1] in ("{", "[") else None
        return _text(parsed) if isinstance(parsed, (dict, list)) else value
    return _text(value)


def _parsed(raw: Any) -> Any:
    """A structured attribute value, or the JSON text of one (``None`` when it is neither)."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return None
    return raw


# -- one message, whatever its shape --------------------------------------------------------------------
def _message_turns(role: str | None, content: Any, tool_calls: list[tuple[Any, Any]], name: Any) -> list[Turn]:
    """The turns of one message: its text (as ``role``) and each tool call (a ``tool`` turn)."""
    turns = []
    if role == "tool":
        if content not in (None, ""):
            turns.append(_turn("tool", _tool_text(content), _opt(name)))
        return turns
    if role in ("customer", "agent") and content not in (None, ""):
        turns.append(_turn(role, _text(content), _opt(name) if role == "customer" else None))
    if role == "agent":
        turns += [_turn("tool", _tool_text(arguments if arguments is not None else ""), _opt(tool))
                  for tool, arguments in tool_calls]
    return turns


def _flattened(attributes: Mapping[str, Any], prefix: str) -> list[tuple[str | None, list[Turn]]]:
    """OpenInference/traceAI ``PREFIX.N.message.*`` keys as ``(role, turns)`` per message, in index order."""
    found: dict[int, dict[str, Any]] = {}
    start = len(prefix) + 1
    for key, value in attributes.items():
        if not key.startswith(prefix + "."):
            continue
        index_text, _, rest = key[start:].partition(".")
        if index_text.isdigit():
            found.setdefault(int(index_text), {})[rest] = value
    messages = []
    for index in sorted(found):
        message = found[index]
        role = _role(message.get("message.role"))
        content = message.get("message.content")
        if content is None:
            parts = [v for k, v in sorted(message.items())
                     if k.startswith("message.contents.") and k.endswith(".text") and v]
            content = "\n".join(str(p) for p in parts) if parts else None
        calls: dict[int, dict[str, Any]] = {}
        for key, value in message.items():
            if key.startswith("message.tool_calls."):
                n, _, field = key[len("message.tool_calls."):].partition(".")
                if n.isdigit():
                    calls.setdefault(int(n), {})[field] = value
        tool_calls = [(c.get("tool_call.function.name"), c.get("tool_call.function.arguments"))
                      for _, c in sorted(calls.items())]
        messages.append((role, _message_turns(role, content, tool_calls, message.get("message.name"))))
    return messages


def _genai_message(message: Any) -> tuple[str | None, list[Turn]]:
    """One OTel GenAI message (``{role, parts: [...]}``, or the older ``{role, content}``) as turns."""
    if not isinstance(message, dict):
        return None, []
    role = _role(message.get("role"))
    parts = message.get("parts")
    if not isinstance(parts, (list, tuple)):
        content = message.get("content")
        calls = [(c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
                 for c in message.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("function"), dict)]
        return role, _message_turns(role, content, calls, message.get("name"))
    turns: list[Turn] = []
    texts: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type", "text")
        if kind == "text" and part.get("content") not in (None, ""):
            texts.append(_text(part["content"]))
        elif kind == "tool_call":
            arguments = part.get("arguments")
            turns.append(_turn("tool", _tool_text(arguments if arguments is not None else ""), _opt(part.get("name"))))
        elif kind == "tool_call_response":
            response = part.get("response", part.get("result"))
            if response not in (None, ""):
                turns.append(_turn("tool", _tool_text(response), _opt(part.get("name"))))  # an id names no tool
    if texts and role in ("customer", "agent", "tool"):
        name = _opt(message.get("name")) if role != "agent" else None
        turns.insert(0, _turn(role, "\n".join(texts), name))
    return role, turns


def _genai_messages(raw: Any) -> list[tuple[str | None, list[Turn]]]:
    value = _parsed(raw)
    return [_genai_message(m) for m in value] if isinstance(value, (list, tuple)) else []


def _new_in_call(inputs: list[tuple[str | None, list[Turn]]], outputs: list[tuple[str | None, list[Turn]]]) -> list[Turn]:
    """The input messages after the call's last assistant message (the rest is history), then the output."""
    last_agent = max((i for i, (role, _) in enumerate(inputs) if role == "agent"), default=-1)
    return [t for _, turns in inputs[last_agent + 1:] for t in turns] + [t for _, turns in outputs for t in turns]


def _has_prefix(attributes: Mapping[str, Any], prefixes: tuple[str, ...]) -> bool:
    return any(key.startswith(prefixes) for key in attributes)


def _own_turn(span_name: str, attributes: Mapping[str, Any]) -> list[Turn] | None:
    role = attributes.get(cv.TURN_ROLE)
    if span_name != cv.TURN_SPAN and role is None:
        return None
    text = attributes.get(cv.TURN_TEXT)
    # Any attribute value can arrive here (a list from a careless SDK): only a string is a role.
    mapped = (role if role in cv.TURN_ROLES else _role(role)) if isinstance(role, str) else None
    if mapped and text is not None:
        return [_turn(mapped, str(text), _opt(attributes.get(cv.TURN_NAME)))]
    return []


def _value_turns(attributes: Mapping[str, Any]) -> list[Turn]:
    """An AGENT/CHAIN span's ``input.value``/``output.value``, unless its mime type says JSON."""
    turns = []
    for key, role in (("input", "customer"), ("output", "agent")):
        value = attributes.get(f"{key}.value")
        mime = str(attributes.get(f"{key}.mime_type") or "").split(";")[0].strip().lower()
        if value not in (None, "") and mime != _JSON_MIME and not mime.endswith("+json"):
            turns.append(_turn(role, _text(value)))
    return turns


def extract_turns(span_name: str, attributes: Mapping[str, Any]) -> list[Turn]:
    """The conversation turns this span records, oldest first (often none): the module's table, in order."""
    own = _own_turn(span_name, attributes)
    if own is not None:
        return own
    if _has_prefix(attributes, ("llm.input_messages.", "llm.output_messages.")):
        return _new_in_call(_flattened(attributes, "llm.input_messages"),
                            _flattened(attributes, "llm.output_messages"))
    if _has_prefix(attributes, ("gen_ai.input.messages.", "gen_ai.output.messages.")):
        return _new_in_call(_flattened(attributes, "gen_ai.input.messages"),
                            _flattened(attributes, "gen_ai.output.messages"))
    if "gen_ai.input.messages" in attributes or "gen_ai.output.messages" in attributes:
        return _new_in_call(_genai_messages(attributes.get("gen_ai.input.messages")),
                            _genai_messages(attributes.get("gen_ai.output.messages")))
    if "gen_ai.tool.call.arguments" in attributes or "gen_ai.tool.call.result" in attributes:
        tool = _opt(attributes.get("gen_ai.tool.name"))
        return [_turn("tool", _tool_text(attributes[key]), tool)
                for key in ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result")
                if attributes.get(key) not in (None, "")]
    if str(attributes.get("openinference.span.kind", "")).upper() in FALLBACK_KINDS:
        return _value_turns(attributes)
    return []


def log_record_turns(event_name: str | None, attributes: Mapping[str, Any], body: Any) -> tuple[list[Turn], str] | None:
    """A log record's turns and the side of its call they are on; ``None`` for a record that is not GenAI's.

    ``event_name``: the record's ``event_name`` field, else its ``event.name`` attribute.
    """
    name = event_name or attributes.get("event.name")
    if not isinstance(name, str) or name not in GENAI_EVENTS:
        return None
    role, side = GENAI_EVENTS[name]
    if side == LOG_WHOLE:
        return _new_in_call(_genai_messages(attributes.get("gen_ai.input.messages")),
                            _genai_messages(attributes.get("gen_ai.output.messages"))), side
    if role is None:  # the system message: context
        return [], side
    if not isinstance(body, dict):
        return ([_turn(role, _text(body))] if body not in (None, "") else []), side
    message = body.get("message") if side == LOG_OUTPUT and isinstance(body.get("message"), dict) else body
    as_message = {"role": {"customer": "user", "agent": "assistant", "tool": "tool"}[role], **message}
    return _genai_message(as_message)[1], side

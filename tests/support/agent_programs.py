"""Small agents instrumented by third-party packages, each run in a process of its own by tests/test_interop.py.

``python agent_programs.py SCENARIO OTLP_URL JOURNEY_ID``: runs the scenario inside
``instrument.journey(JOURNEY_ID, ...)`` and exports its spans (and log records) over OTLP/HTTP protobuf to
``OTLP_URL`` (a ``journeyscope serve``). The model is the OpenAI-compatible stand-in on loopback
(support/openai_server.py): a hosted model cannot run here. A process per scenario, because the
instrumentors patch the OpenAI client globally and the official one reads its settings once per process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from journeyscope import instrument  # noqa: E402
from support.openai_server import completion, openai_server  # noqa: E402

SYSTEM = "You are a support agent for a parcel company."
FIRST, SECOND = "My parcel has not arrived", "It is order A17"
ORDER_QUESTION = "Where is my order A17?"
TOOL_RESULT = "order A17 shipped yesterday"


def reply(request: dict[str, Any]) -> tuple[int, Any]:
    """Echo the last user or tool message; ask for the ``order_status`` tool when tools are offered and
    no tool result is in the conversation yet."""
    messages = request.get("messages", [])
    if request.get("tools") and not any(m.get("role") == "tool" for m in messages):
        call = {"id": "call_1", "type": "function",
                "function": {"name": "order_status", "arguments": json.dumps({"order_id": "A17"})}}
        body = completion("")
        body["choices"][0].update(finish_reason="tool_calls",
                                  message={"role": "assistant", "content": None, "tool_calls": [call]})
        return 200, body
    last = [m for m in messages if m.get("role") in ("user", "tool")][-1]
    return 200, completion(f"You said: {last.get('content')}")


def two_calls(base_url: str) -> None:
    """A two-call conversation through the OpenAI client: the second call repeats the first as history."""
    client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for said in (FIRST, SECOND):
        messages.append({"role": "user", "content": said})
        answer = client.chat.completions.create(model="stand-in", messages=messages)
        messages.append({"role": "assistant", "content": answer.choices[0].message.content})


def openai_v2(base_url: str, provider: TracerProvider, logs: LoggerProvider) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider, logger_provider=logs)
    two_calls(base_url)


def traceai(base_url: str, provider: TracerProvider, logs: LoggerProvider) -> None:
    from traceai_openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    two_calls(base_url)


def langchain_chain(base_url: str, provider: TracerProvider, logs: LoggerProvider) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)
    llm = ChatOpenAI(base_url=base_url, api_key="test-key", model="stand-in", max_retries=0)
    chain = ChatPromptTemplate.from_messages([("system", SYSTEM), ("user", "{question}")]) | llm | StrOutputParser()
    chain.invoke({"question": FIRST})


def langchain_tool(base_url: str, provider: TracerProvider, logs: LoggerProvider) -> None:
    """A tool-calling agent loop: the model asks for a tool, the tool runs, the model answers."""
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().instrument(tracer_provider=provider)

    @tool
    def order_status(order_id: str) -> str:
        """The delivery status of an order."""
        return f"order {order_id} shipped yesterday"

    llm = ChatOpenAI(base_url=base_url, api_key="test-key", model="stand-in", max_retries=0).bind_tools([order_status])
    messages: list[Any] = [SystemMessage(SYSTEM), HumanMessage(ORDER_QUESTION)]
    while True:
        answer = llm.invoke(messages)
        messages.append(answer)
        if not answer.tool_calls:
            break
        messages += [order_status.invoke(call) for call in answer.tool_calls]


def openai_agents(base_url: str, provider: TracerProvider, logs: LoggerProvider) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)  # replaces the SDK's own trace export
    client = openai.AsyncOpenAI(base_url=base_url, api_key="test-key", max_retries=0)
    agent = Agent(name="support", instructions=SYSTEM,
                  model=OpenAIChatCompletionsModel(model="stand-in", openai_client=client))
    asyncio.run(Runner.run(agent, FIRST))


SCENARIOS: dict[str, Callable[[str, TracerProvider, LoggerProvider], None]] = {
    "openai-v2": openai_v2,
    "traceai": traceai,
    "langchain-chain": langchain_chain,
    "langchain-tool": langchain_tool,
    "openai-agents": openai_agents,
}


def main(scenario: str, otlp_url: str, journey_id: str) -> None:
    provider = TracerProvider()
    tracing = instrument.setup(endpoint=otlp_url, protocol="http/protobuf", provider=provider, set_global=False,
                               batch=False, instrument_threads=False)
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=otlp_url + "/v1/logs")))
    try:
        with openai_server(reply) as (base_url, _):
            with instrument.journey(journey_id, "c-interop", name="support", stage="diagnose", channel="chat"):
                SCENARIOS[scenario](base_url, provider, logs)
    finally:
        tracing.shutdown()
        logs.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])

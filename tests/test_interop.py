"""Mainstream agent instrumentations, as released, into a real ``journeyscope serve``: the exact turns of the journey.

Each agent runs in a process of its own (tests/support/agent_programs.py; a Node.js program for the
OpenTelemetry JS SDK) and exports over OTLP/HTTP to a ``journeyscope serve`` on loopback; the journey's
transcript is then read back through the API. The model is the OpenAI-compatible stand-in on loopback
(tests/support/openai_server.py), since a hosted model cannot run here. The packages are pinned in the
``test`` extra; the README's compatibility table says what each one turns into.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TESTS = Path(__file__).resolve().parent
PROGRAMS = TESTS / "support" / "agent_programs.py"
JS_PROGRAM = TESTS / "support" / "js" / "genai_agent.mjs"
#: The npm packages the JS program needs (installed into a temporary folder, beside the Python agents' runs).
JS_PACKAGES = ("@opentelemetry/api@1.9.1", "@opentelemetry/sdk-trace-base@2.12.1",
               "@opentelemetry/exporter-trace-otlp-proto@0.223.1")
SERVE = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"

FIRST, SECOND = "My parcel has not arrived", "It is order A17"
TWO_CALLS = [("customer", FIRST, None), ("agent", f"You said: {FIRST}", None),
             ("customer", SECOND, None), ("agent", f"You said: {SECOND}", None)]

pytestmark = pytest.mark.slow


class Serve:
    """A ``journeyscope serve`` process on free loopback ports."""

    def __init__(self, db: Path) -> None:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "serve", "--db", str(db), "--port", "0", "--grpc-port", "-1",
             "--no-evaluate"], stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1/traces", line)
        assert match, f"journeyscope serve did not start: {line!r}"
        self.url = f"http://127.0.0.1:{match.group(1)}"

    def transcript(self, journey_id: str, expected: list[tuple[str, str, str | None]]) -> list[tuple[str, str, str | None]]:
        """The journey's turns ``(role, text, name)`` once they, and each visit's turn count, match ``expected``,
        or as they are after a minute (stage visits are derived on the server's own thread after the
        acknowledgement, so the answer may take a moment on a loaded machine)."""
        deadline = time.monotonic() + 60
        while True:
            response = httpx.get(f"{self.url}/v1/journeys/{journey_id}/detail", timeout=30)
            visits = response.json().get("visits", []) if response.status_code == 200 else []
            turns = [(t["role"], t["text"], t["name"]) for v in visits for t in v["transcript"]]
            self.counted = [v["turns"] for v in visits]
            if (turns == expected and sum(self.counted) == len(expected)) or time.monotonic() > deadline:
                return turns
            time.sleep(0.2)

    def visit_turns(self, journey_id: str) -> list[int]:
        """Each visit's turn count (``stage_visits.turns``) as of the last :meth:`transcript`."""
        return self.counted

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(tmp_path_factory.mktemp("interop") / "interop.duckdb")
    try:
        yield server
    finally:
        server.stop()


#: The journeys the agent programs record: journey id -> (scenario of agent_programs.py, environment).
AGENTS: dict[str, tuple[str, dict[str, str]]] = {
    # message content in log records, one per message (gen_ai.user.message, gen_ai.choice, ...)
    "j-openai-v2-events": ("openai-v2", {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}),
    # the latest conventions, content on the span (gen_ai.input.messages / gen_ai.output.messages)
    "j-openai-v2-span_only": ("openai-v2", {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                                            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}),
    # the latest conventions, content in one gen_ai.client.inference.operation.details log record per call
    "j-openai-v2-event_only": ("openai-v2", {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                                             "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"}),
    "j-traceai": ("traceai", {}),
    "j-lc-chain": ("langchain-chain", {}),
    "j-lc-tool": ("langchain-tool", {}),
    "j-agents": ("openai-agents", {}),
}


class Agents:
    """Every agent program started at once, with the npm install for the JS one: they mostly wait on imports
    and I/O, so together they take about as long as the slowest."""

    def __init__(self, serve: Serve, folder: Path) -> None:
        self.folder = folder
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        npm = shutil.which("npm")
        self.npm = subprocess.Popen([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *JS_PACKAGES],
                                    cwd=folder, stdout=subprocess.DEVNULL, stderr=self._log("npm"), env=env) \
            if npm and shutil.which("node") else None
        self.runs = {
            journey: subprocess.Popen([sys.executable, str(PROGRAMS), scenario, serve.url, journey],
                                      stdout=subprocess.DEVNULL, stderr=self._log(journey), env={**env, **extra})
            for journey, (scenario, extra) in AGENTS.items()
        }

    def _log(self, name: str) -> object:
        return (self.folder / f"{name}.log").open("w")

    def finished(self, journey: str) -> None:
        """Wait for the program recording ``journey``; it must have succeeded."""
        code = self.runs[journey].wait(300)
        assert code == 0, (self.folder / f"{journey}.log").read_text()[-3000:]

    def node_modules(self) -> Path:
        if self.npm is None:
            pytest.fail("node and npm are needed for the OpenTelemetry JS test (Debian: apt-get install nodejs npm)")
        assert self.npm.wait(600) == 0, (self.folder / "npm.log").read_text()[-3000:]
        return self.folder / "node_modules"

    def stop(self) -> None:
        for process in [*self.runs.values(), *([self.npm] if self.npm else [])]:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def agents(serve: Serve, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    started = Agents(serve, tmp_path_factory.mktemp("agents"))
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("journey", ["j-openai-v2-events", "j-openai-v2-span_only", "j-openai-v2-event_only"])
def test_official_openai_instrumentation(serve: Serve, agents: Agents, journey: str) -> None:
    agents.finished(journey)
    # two calls, the second repeating the first as history: each turn once, the system prompt not a turn
    assert serve.transcript(journey, TWO_CALLS) == TWO_CALLS
    assert serve.visit_turns(journey) == [4]


def test_traceai_openai(serve: Serve, agents: Agents) -> None:
    agents.finished("j-traceai")
    # flattened gen_ai.input.messages.N.message.* keys; input.value (the system prompt) is not a turn
    assert serve.transcript("j-traceai", TWO_CALLS) == TWO_CALLS


def test_openinference_langchain_chain(serve: Serve, agents: Agents) -> None:
    agents.finished("j-lc-chain")
    # the LLM span carries the messages: the CHAIN spans' input.value/output.value (the parser's input is the
    # AI message as JSON) are not turns
    expected = [("customer", FIRST, None), ("agent", f"You said: {FIRST}", None)]
    assert serve.transcript("j-lc-chain", expected) == expected
    assert serve.visit_turns("j-lc-chain") == [2]


def test_openinference_langchain_tool_calling_agent(serve: Serve, agents: Agents) -> None:
    agents.finished("j-lc-tool")
    expected = [("customer", "Where is my order A17?", None),
                ("tool", '{"order_id":"A17"}', "order_status"),
                ("tool", "order A17 shipped yesterday", "order_status"),
                ("agent", "You said: order A17 shipped yesterday", None)]
    assert serve.transcript("j-lc-tool", expected) == expected


def test_openinference_openai_agents(serve: Serve, agents: Agents) -> None:
    agents.finished("j-agents")
    expected = [("customer", FIRST, None), ("agent", f"You said: {FIRST}", None)]
    assert serve.transcript("j-agents", expected) == expected


def test_opentelemetry_js_genai_latest_conventions(serve: Serve, agents: Agents) -> None:
    node_modules = agents.node_modules()
    program = node_modules.parent / JS_PROGRAM.name  # beside its node_modules, so its imports resolve
    shutil.copy(JS_PROGRAM, program)
    result = subprocess.run(["node", str(program), serve.url, "j-js-genai"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"})
    assert result.returncode == 0, result.stderr[-3000:]
    # gen_ai.conversation.id names the journey; system instructions are context; the tool call and its result
    # once each although the chat output, the execute_tool span and the next chat input all carry them; the
    # invoke_agent span's repeat of the conversation adds nothing
    expected = [("customer", "My order A17 has not arrived", None),
                ("tool", '{"order_id":"A17"}', "order_status"),
                ("tool", "shipped yesterday", "order_status"),
                ("agent", "It shipped yesterday and arrives today.", None)]
    assert serve.transcript("j-js-genai", expected) == expected
    assert serve.visit_turns("j-js-genai") == [4]

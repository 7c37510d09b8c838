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
#: The npm packages the JS program needs (installed once per test session into a temporary folder).
JS_PACKAGES = ("@opentelemetry/api@1.9.1", "@opentelemetry/sdk-trace-base@2.12.1",
               "@opentelemetry/exporter-trace-otlp-proto@0.223.1")
SERVE = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"

SYSTEM = "You are a support agent for a parcel company."
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
        """The journey's turns ``(role, text, name)`` once they, and each visit's turn count, match ``expected``
        or stop changing (stage visits are derived on the server's own thread after the acknowledgement)."""
        seen: tuple[list[tuple[str, str, str | None]], list[int]] = ([], [])
        stable_since, deadline = time.monotonic(), time.monotonic() + 60
        while time.monotonic() < deadline:
            response = httpx.get(f"{self.url}/v1/journeys/{journey_id}/detail", timeout=30)
            visits = response.json().get("visits", []) if response.status_code == 200 else []
            now = ([(t["role"], t["text"], t["name"]) for v in visits for t in v["transcript"]],
                   [v["turns"] for v in visits])
            if now[0] == expected and sum(now[1]) == len(expected):
                break
            if now != seen:
                seen, stable_since = now, time.monotonic()
            elif seen[0] and time.monotonic() - stable_since > 5:
                break
            time.sleep(0.2)
        self.counted = now[1]
        return now[0]

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


def run_agent(serve: Serve, scenario: str, journey_id: str, **env: str) -> None:
    result = subprocess.run([sys.executable, str(PROGRAMS), scenario, serve.url, journey_id],
                            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost", **env},
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("mode, env", [
    # message content in log records, one per message (gen_ai.user.message, gen_ai.choice, ...)
    ("events", {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}),
    # the latest conventions, content on the span (gen_ai.input.messages / gen_ai.output.messages)
    ("span_only", {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                   "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_only"}),
    # the latest conventions, content in one gen_ai.client.inference.operation.details log record per call
    ("event_only", {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
                    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only"}),
])
def test_official_openai_instrumentation(serve: Serve, mode: str, env: dict[str, str]) -> None:
    run_agent(serve, "openai-v2", f"j-openai-v2-{mode}", **env)
    # two calls, the second repeating the first as history: each turn once, the system prompt not a turn
    assert serve.transcript(f"j-openai-v2-{mode}", TWO_CALLS) == TWO_CALLS
    assert serve.visit_turns(f"j-openai-v2-{mode}") == [4]


def test_traceai_openai(serve: Serve) -> None:
    run_agent(serve, "traceai", "j-traceai")
    # flattened gen_ai.input.messages.N.message.* keys; input.value (the system prompt) is not a turn
    assert serve.transcript("j-traceai", TWO_CALLS) == TWO_CALLS


def test_openinference_langchain_chain(serve: Serve) -> None:
    run_agent(serve, "langchain-chain", "j-lc-chain")
    # the LLM span carries the messages: the CHAIN spans' input.value/output.value (the parser's input is the
    # AI message as JSON) are not turns
    expected = [("customer", FIRST, None), ("agent", f"You said: {FIRST}", None)]
    assert serve.transcript("j-lc-chain", expected) == expected
    assert serve.visit_turns("j-lc-chain") == [2]


def test_openinference_langchain_tool_calling_agent(serve: Serve) -> None:
    run_agent(serve, "langchain-tool", "j-lc-tool")
    expected = [("customer", "Where is my order A17?", None),
                ("tool", '{"order_id":"A17"}', "order_status"),
                ("tool", "order A17 shipped yesterday", "order_status"),
                ("agent", "You said: order A17 shipped yesterday", None)]
    assert serve.transcript("j-lc-tool", expected) == expected


def test_openinference_openai_agents(serve: Serve) -> None:
    run_agent(serve, "openai-agents", "j-agents")
    expected = [("customer", FIRST, None), ("agent", f"You said: {FIRST}", None)]
    assert serve.transcript("j-agents", expected) == expected


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The JS program's packages from npm, installed once per test session."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the OpenTelemetry JS test (Debian: apt-get install nodejs npm)")
    folder = tmp_path_factory.mktemp("npm")
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *JS_PACKAGES],
                            cwd=folder, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "node_modules"


def test_opentelemetry_js_genai_latest_conventions(serve: Serve, node_modules: Path) -> None:
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

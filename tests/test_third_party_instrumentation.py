"""Spans made by a third-party instrumentor (OpenInference for the OpenAI client) get the journey too.

The LLM is the stand-in OpenAI-compatible server on loopback (tests/support/openai_server.py):
a hosted model cannot run here, so a local server speaking the same HTTP protocol takes its place.
"""

from __future__ import annotations

import openai
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from journeyscope import instrument
from journeyscope.warehouse import Warehouse
from support.openai_server import openai_server


def test_openinference_llm_spans_are_journey_tagged_and_become_turns(tmp_path):
    db = tmp_path / "oi.duckdb"
    provider = TracerProvider()
    tracing = instrument.setup(db=str(db), provider=provider, batch=False, instrument_threads=False)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with openai_server() as (base_url, seen):
            client = openai.OpenAI(base_url=base_url, api_key="test-key", max_retries=0)
            with instrument.journey("j-llm", "c-llm", name="support", stage="diagnose", channel="chat"):
                reply = client.chat.completions.create(
                    model="stand-in",
                    messages=[
                        {"role": "system", "content": "You are a support agent."},
                        {"role": "user", "content": "My headphones are broken"},
                    ],
                )
    finally:
        instrumentor.uninstrument()
        tracing.shutdown()
        tracing.exporter.shutdown()
    assert reply.choices[0].message.content == "You said: My headphones are broken"
    assert len(seen) == 1
    with Warehouse(db, read_only=True) as wh:
        rows = wh.query("SELECT name, journey_id, customer_id, stage, channel, turns FROM spans")
    assert len(rows) == 1
    name, journey_id, customer_id, stage, channel, turns = rows[0]
    assert (journey_id, customer_id, stage, channel) == ("j-llm", "c-llm", "diagnose", "chat")
    # Only what is new in the call: the customer's message and the reply (not the system prompt).
    assert [(t["role"], t["text"]) for t in turns] == [
        ("customer", "My headphones are broken"),
        ("agent", "You said: My headphones are broken"),
    ]

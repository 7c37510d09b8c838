"""Redacting span batches (the ingest path) and spans in the agent's process (the exporter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from journeyscope import instrument
from journeyscope.instrument import JourneySpanProcessor
from journeyscope.privacy import (
    BUILTIN_TYPES,
    Action,
    PrivacyPolicy,
    RedactingSpanExporter,
    Redactor,
    redact_rows,
)
from journeyscope.privacy import detectors
from journeyscope.warehouse.exporter import rows_from_spans

KEY = b"test-key-0123456789abcdef"
HASH_ALL = PrivacyPolicy({t: Action.HASH for t in BUILTIN_TYPES}, key=KEY)


def _record(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")
    with instrument.journey("j-1", "jane@example.com", name="support", stage="identify", channel="chat"):
        instrument.record_turn("customer", "I'm jane@example.com, call +44 7700 900123", tracer=tracer)
        with tracer.start_as_current_span("crm.lookup") as span:
            span.set_attribute("crm.emails", ["jane@example.com", "jd@work.example"])
            span.set_attribute("card.pan", 4111111111111111)
            span.set_attribute("user.email", "jane@example.com")
            span.add_event("lookup", {"query": "iban GB82 WEST 1234 5698 7654 32"})
            span.set_status(Status(StatusCode.ERROR, "no account for 81.2.69.160"))
    with instrument.journey("j-1", "jane@example.com", name="support", stage="refund", channel="email"):
        instrument.record_turn("customer", "Again: jane@example.com", tracer=tracer)


@pytest.fixture
def batch(memory_tracing) -> pa.Table:
    provider, sink = memory_tracing
    _record(provider)
    return rows_from_spans(sink.get_finished_spans()).to_table()


def _text(table: pa.Table) -> str:
    return json.dumps(table.to_pylist(), default=str)


def test_every_field_is_redacted_and_join_keys_are_kept(batch):
    out, report = redact_rows(batch, PrivacyPolicy())
    assert out.schema == batch.schema and out.num_rows == batch.num_rows
    dumped = _text(out.drop_columns(["customer_id"]))
    for secret in ("7700 900123", "jd@work.example", "4111111111111111", "GB82 WEST", "81.2.69.160"):
        assert secret not in dumped
    # the join key stays as sent: customer.id attribute and column (choose pseudonymous ids)
    assert set(out.column("customer_id").to_pylist()) == {"jane@example.com"}
    attrs = [json.loads(a) for a in out.column("attributes").to_pylist()]
    assert all(a["customer.id"] == "jane@example.com" and a["journey.id"] == "j-1" for a in attrs)
    crm = next(a for a in attrs if "crm.emails" in a)
    assert crm["crm.emails"] == ["[EMAIL]", "[EMAIL]"] and crm["card.pan"] == "[CARD]"
    assert crm["user.email"] == "[USER.EMAIL]"
    lookup = out.column("name").to_pylist().index("crm.lookup")
    assert "[IBAN]" in out.column("events").to_pylist()[lookup]
    assert "no account for [IP]" in out.column("status_message").to_pylist()
    turns = [t["text"] for ts in out.column("turns").to_pylist() if ts for t in ts]
    assert turns == ["I'm [EMAIL], call [PHONE]", "Again: [EMAIL]"]
    by_type = report.by_type()
    assert by_type["email"] == 4 and by_type["phone"] == 1 and by_type["card"] == 1
    assert by_type["iban"] == 1 and by_type["ip"] == 1 and by_type["user.email"] == 1
    assert report.counts()[("j-1", "refund", "email", "mask")] == 1  # turn text and attribute: counted once
    assert "7700" not in repr(report.rows)  # counts only, never values


def test_hashed_tokens_join_across_stages(batch):
    out, _ = redact_rows(batch, HASH_ALL)
    turns = [t["text"] for ts in out.column("turns").to_pylist() if ts for t in ts]
    token = turns[0].split()[1].rstrip(",")
    assert token.startswith("[EMAIL:") and len(token) == len("[EMAIL:") + 13
    assert turns[1] == f"Again: {token}"


def test_unchanged_batches_pass_through_untouched(batch):
    clean = batch.filter(pa.compute.equal(batch.column("name"), "journey.turn")).slice(0, 0)
    out, report = redact_rows(clean, PrivacyPolicy())
    assert out is clean and not report
    off = PrivacyPolicy({t: Action.OFF for t in BUILTIN_TYPES}, attributes={})
    out, report = redact_rows(batch, off)
    assert out is batch and not report


def test_sliced_batches_keep_their_rows_aligned(batch):
    sliced = batch.slice(1)
    out, _ = redact_rows(sliced, PrivacyPolicy())
    assert out.column("span_id").to_pylist() == sliced.column("span_id").to_pylist()
    before = [len(t) if t else 0 for t in sliced.column("turns").to_pylist()]
    assert [len(t) if t else 0 for t in out.column("turns").to_pylist()] == before


def test_a_failure_fails_closed_and_keeps_the_batch(batch, monkeypatch):
    real = detectors.find_pii

    def flaky(text, *args, **kwargs):
        if "Again" in text:
            raise RuntimeError("boom")
        return real(text, *args, **kwargs)

    monkeypatch.setattr("journeyscope.privacy.redactor.find_pii", flaky)
    out, report = redact_rows(batch, Redactor(PrivacyPolicy()))
    dumped = _text(out)
    assert "Again" not in dumped and "[REDACTION_FAILED]" in dumped
    assert out.num_rows == batch.num_rows
    assert "[EMAIL], call [PHONE]" in dumped  # the rest of the batch was still redacted
    assert report.failures >= 1
    for value in out.column("attributes").to_pylist():
        json.loads(value)  # JSON columns stay valid JSON


def test_a_whole_column_failure_fails_closed(batch, monkeypatch):
    monkeypatch.setattr("journeyscope.privacy.columnar._redact_turns",
                        lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    out, report = redact_rows(batch, Redactor(PrivacyPolicy()))
    assert out.column("turns").null_count == out.num_rows
    assert report.failures == out.num_rows and out.num_rows == batch.num_rows


def test_exporter_redacts_before_spans_leave_the_process():
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(JourneySpanProcessor())
    exporter = RedactingSpanExporter(sink, HASH_ALL)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _record(provider)
    spans = sink.get_finished_spans()
    dumped = json.dumps([dict(s.attributes) for s in spans] + [s.status.description for s in spans]
                        + [dict(e.attributes) for s in spans for e in s.events])
    assert "7700" not in dumped and "GB82" not in dumped and "81.2.69.160" not in dumped
    assert "jd@work.example" not in dumped and "[EMAIL:" in dumped
    assert all(s.attributes["customer.id"] == "jane@example.com" for s in spans)
    assert exporter.redacted >= 7 and exporter.withheld == 0
    # the warehouse redacting again changes nothing
    table = rows_from_spans(spans).to_table()
    again, report = redact_rows(table, HASH_ALL)
    assert _text(again) == _text(table) and not report
    provider.shutdown()


def test_setup_redact_wraps_the_exporter():
    sink = InMemorySpanExporter()
    tracing = instrument.setup(exporter=sink, set_global=False, batch=False, redact=True,
                               instrument_threads=False)
    assert isinstance(tracing.exporter, RedactingSpanExporter)
    with instrument.journey("j-9", "c-9", stage="s", channel="chat"):
        instrument.record_turn("customer", "mail me at z@example.com", tracer=tracing.tracer)
    tracing.shutdown()
    assert sink.get_finished_spans()[0].attributes["journey.turn.text"] == "mail me at [EMAIL]"


def test_instrument_with_redaction_loads_no_duckdb():
    code = ("import sys; from journeyscope.privacy.exporter import RedactingSpanExporter; "
            "import journeyscope.instrument; "
            "assert 'duckdb' not in sys.modules and 'pyarrow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

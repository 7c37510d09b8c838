"""The embedded warehouse: lossless, columnar, deduplicated writes into a real DuckDB file."""

from __future__ import annotations

import json
import duckdb
import pytest
from opentelemetry.sdk.trace import TracerProvider

from journeyscope import instrument
from journeyscope.errors import WarehouseError
from journeyscope.warehouse import SpanRows, Warehouse
from journeyscope.warehouse.exporter import DuckDBSpanExporter, rows_from_spans


def _row(span_id: str, **attrs: object) -> SpanRows:
    rows = SpanRows()
    rows.add(
        trace_id="a" * 32,
        span_id=span_id,
        parent_span_id=None,
        name="step",
        start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_000_500_000_000,
        attributes=attrs,
    )
    return rows


def test_attributes_and_events_are_kept_losslessly(tmp_path, memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")
    attrs = {"n": 3, "ratio": 0.25, "whole": 2.0, "ok": True, "tags": ("a", "b"), "counts": (1, 2), "note": "é ✓"}
    with instrument.journey("j-l", "c-l", name="support", stage="diagnose", channel="chat", cohort="vip"):
        with tracer.start_as_current_span("step", attributes=attrs) as span:
            span.add_event("checked", {"result": "fine", "tries": 2})
            instrument.record_outcome("escalated")
    with Warehouse(tmp_path / "w.duckdb") as wh:
        wh.ingest(rows_from_spans(sink.get_finished_spans()))
        row = wh.query(
            "SELECT attributes, events, journey_id, customer_id, journey_name, stage, channel, cohort, outcome, kind, "
            "status_code FROM spans"
        )[0]
    stored = json.loads(row[0])
    for key, value in attrs.items():
        expected = list(value) if isinstance(value, tuple) else value
        assert stored[key] == expected and type(stored[key]) is type(expected), key
    events = json.loads(row[1])
    assert events[0]["name"] == "checked" and events[0]["attributes"] == {"result": "fine", "tries": 2}
    assert events[1]["attributes"] == {"journey.stage.outcome": "escalated"}
    assert row[2:] == ("j-l", "c-l", "support", "diagnose", "chat", "vip", "escalated", "internal", "unset")


def test_retried_batch_is_not_stored_twice(tmp_path):
    with Warehouse(tmp_path / "w.duckdb") as wh:
        first = wh.ingest(_row("1" * 16))
        again = wh.ingest(_row("1" * 16))
        both = wh.ingest(_merge(_row("1" * 16), _row("2" * 16)))
        assert (first.accepted, first.duplicates) == (1, 0)
        assert (again.accepted, again.duplicates) == (0, 1)
        assert (both.accepted, both.duplicates) == (1, 1)
        assert wh.query("SELECT count(*) FROM spans") == [(2,)]


def _merge(a: SpanRows, b: SpanRows) -> SpanRows:
    for name, values in b.columns.items():
        a.columns[name].extend(values)
    return a


def test_aliases_fill_journey_columns():
    with Warehouse() as wh:
        wh.ingest(_row("3" * 16, **{"session.id": "sess-9", "user.id": "u-1"}))
        wh.ingest(_row("4" * 16, **{"gen_ai.conversation.id": "conv-2"}))
        wh.ingest(_row("5" * 16, **{"journey.id": "j", "session.id": "ignored"}))
        assert wh.query("SELECT span_id, journey_id, customer_id FROM spans ORDER BY span_id") == [
            ("3" * 16, "sess-9", "u-1"),
            ("4" * 16, "conv-2", None),
            ("5" * 16, "j", None),
        ]


def test_data_survives_close_and_reopen(tmp_path):
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as wh:
        wh.ingest(_row("6" * 16, **{"journey.id": "j-6"}))
    with Warehouse(path, read_only=True) as wh:
        assert wh.query("SELECT journey_id FROM spans") == [("j-6",)]


def test_missing_database_for_reading_is_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match="no warehouse at .*missing.duckdb.*journeyscope demo"):
        Warehouse(tmp_path / "missing.duckdb", read_only=True)


def test_unwritable_path_is_a_clear_error(tmp_path):
    with pytest.raises(WarehouseError, match="folder .* does not exist"):
        Warehouse(tmp_path / "no" / "such" / "dir" / "w.duckdb")
    a_folder = tmp_path / "folder"
    a_folder.mkdir()
    with pytest.raises(WarehouseError, match="cannot open warehouse"):
        Warehouse(a_folder)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(WarehouseError, match="schema version 999, newer"):
        Warehouse(path)


def test_older_schema_is_refused_read_only_with_advice(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE spans (x INTEGER)")
    con.close()
    with pytest.raises(WarehouseError, match="schema version 0.*migrate"):
        Warehouse(path, read_only=True)


def test_exporter_reports_failure_instead_of_raising(tmp_path):
    exporter = DuckDBSpanExporter(tmp_path / "no" / "dir" / "w.duckdb")
    provider = TracerProvider()
    tracing = instrument.setup(exporter=exporter, provider=provider, batch=False, instrument_threads=False)
    with instrument.journey("j", "c"):
        provider.get_tracer("t").start_span("x").end()  # must not raise into the host
    tracing.shutdown()
    assert exporter.exported == 0


def test_the_exporter_leaves_out_spans_whose_id_is_too_long(memory_tracing, caplog):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")
    for session in ("s" * 256, "s" * 257):  # another instrumentation's session id, lifted as the journey id
        with tracer.start_as_current_span("llm", attributes={"session.id": session}):
            pass
    rows = rows_from_spans(sink.get_finished_spans())
    assert rows.columns["journey_id"] == ["s" * 256]
    assert "journey id longer than 256 characters" in caplog.text


def test_a_warehouse_is_not_a_path(tmp_path, monkeypatch):
    """A Warehouse passed where a path belongs is refused, not stored in a file named after its repr."""
    monkeypatch.chdir(tmp_path)
    with Warehouse() as wh:
        with pytest.raises(TypeError, match="file path or ':memory:', got Warehouse"):
            Warehouse(wh)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_the_exporter_takes_a_path_or_a_warehouse_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match="a file path or a Warehouse, got object"):
        DuckDBSpanExporter(object())  # type: ignore[arg-type]
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert DuckDBSpanExporter(wh).warehouse is wh
    assert [p.name for p in tmp_path.iterdir()] == ["w.duckdb"]

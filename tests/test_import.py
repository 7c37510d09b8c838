"""``journeyscope import``: the real STAR dev file, re-import, broken lines, the spans it writes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from journeyscope.cli import cli
from journeyscope.errors import InvalidInputError
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.importer import import_jsonl

STAR_DEV = Path(__file__).parent / "data" / "star" / "dev.jsonl.gz"


def _journey(journey_id: str = "j-1", **extra: object) -> dict[str, object]:
    return {
        "journey_id": journey_id, "customer_id": "c-1", "journey": "support", "channel": "chat", "cohort": "beta",
        "turns": [
            {"role": "customer", "text": "my card is blocked", "ts": "2024-05-01T10:00:00Z", "stage": "triage"},
            {"role": "agent", "text": "let me check", "ts": "2024-05-01T10:00:00Z", "stage": "triage"},
            {"role": "tool", "name": "card_api", "text": "{}", "ts": "2024-05-01T10:00:00Z", "stage": "triage",
             "channel": "web"},
            {"event": "outcome", "outcome": "escalated", "stage": "triage", "ts": "2024-05-01T10:01:00+00:00"},
            {"role": "agent", "text": "a colleague will call", "ts": "2024-05-01T10:02:00", "stage": "handoff"},
        ],
        **extra,
    }


@pytest.mark.slow
def test_star_dev_imports_and_reimport_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "star.duckdb"
    with Warehouse(db) as warehouse:
        summary = import_jsonl(warehouse, STAR_DEV)
        assert (summary.journeys, summary.skipped) == (1807, [])
        assert summary.new_spans == summary.spans == 37_799
        counts = warehouse.query("SELECT count(DISTINCT journey_id), count(*) FROM spans")[0]
        assert counts == (1807, 37_799)
        visits = warehouse.query("SELECT count(*), count(*) FILTER (WHERE outcome = 'open'), "
                                 "count(DISTINCT journey_id) FROM stage_visits")[0]
        assert visits[0] > 1807 and visits[1] == 0 and visits[2] == 1807  # 2020 data: nothing left open
        again = import_jsonl(warehouse, STAR_DEV)
        assert (again.new_spans, again.duplicates) == (0, 37_799)
        assert warehouse.query("SELECT count(*) FROM spans") == [(37_799,)]
    # visit numbering agrees with the dataset's own labels (position, visit per stage)
    labels = {
        (r["journey_id"], r["position"]): (r["stage"], r["visit"])
        for r in map(json.loads, gzip.open(STAR_DEV.with_name("dev-labels.jsonl.gz"), "rt"))
        if r.get("stage") is not None
    }
    with Warehouse(db, read_only=True) as warehouse:
        ours = {(j, p): (s, v) for j, p, s, v in warehouse.query(
            "SELECT journey_id, position, stage, visit FROM stage_visits")}
    assert ours == labels


def test_spans_as_the_instrumentation_writes_them(tmp_path: Path) -> None:
    source = tmp_path / "j.jsonl"
    source.write_text(json.dumps(_journey()) + "\n")
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        import_jsonl(warehouse, source)
        rows = warehouse.query(
            "SELECT name, stage, channel, cohort, journey_name, outcome, turns[1].role, turns[1].name, "
            "attributes->>'$.\"journey.turn.index\"' FROM spans ORDER BY start_time, seq"
        )
        visits = [(v["stage"], v["outcome"], v["turns"]) for v in warehouse.stage_visits()]
    assert [r[0] for r in rows] == ["journey.turn"] * 3 + ["journey.stage.outcome", "journey.turn"]
    assert [r[6] for r in rows] == ["customer", "agent", "tool", None, "agent"]  # tied timestamps keep file order
    assert rows[2][2] == "web" and rows[0][2] == "chat" and rows[2][7] == "card_api"
    assert rows[3][5] == "escalated" and rows[0][3] == "beta" and rows[0][4] == "support"
    assert [r[8] for r in rows] == ["0", "1", "2", "3", "4"]
    assert visits[0] == ("triage", "escalated", 3)


def test_broken_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    bad_role = _journey("j-3")
    bad_role["turns"][0]["role"] = "robot"  # type: ignore[index]
    bad_ts = _journey("j-4")
    bad_ts["turns"][1]["ts"] = "yesterday"  # type: ignore[index]
    bad_outcome = _journey("j-5")
    bad_outcome["turns"][3]["outcome"] = "won"  # type: ignore[index]
    lines = [
        json.dumps(_journey("j-1")),
        "{not json",
        json.dumps({"customer_id": "c", "turns": []}),
        json.dumps(bad_role),
        json.dumps(bad_ts),
        "",
        json.dumps(bad_outcome),
        json.dumps(_journey("j-2")),
        json.dumps(_journey("j" * 257)),  # an id the receiver and the API refuse
        json.dumps(_journey("k" * 256)),
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with Warehouse(tmp_path / "w.duckdb") as warehouse:
        summary = import_jsonl(warehouse, source)
        journeys = warehouse.query("SELECT DISTINCT journey_id FROM spans ORDER BY 1")
    assert summary.journeys == 3 and journeys == [("j-1",), ("j-2",), ("k" * 256,)]
    assert summary.skipped_lines == [2, 3, 4, 5, 7, 9]
    messages = [e.detail for e in summary.skipped]
    assert "not valid JSON" in messages[0] and "journey_id" in messages[1] and "robot" in messages[2]
    assert "ts" in messages[3] and "won" in messages[4]
    assert messages[5] == "journey: 'journey_id' is 257 characters long; at most 256"


def test_missing_file(tmp_path: Path) -> None:
    with Warehouse(":memory:") as warehouse, pytest.raises(InvalidInputError, match="no such file"):
        import_jsonl(warehouse, tmp_path / "nope.jsonl")


def test_cli_import_then_export_stage_visits(tmp_path: Path) -> None:
    source = tmp_path / "j.jsonl.gz"
    with gzip.open(source, "wt") as handle:
        handle.write(json.dumps(_journey()) + "\n{broken\n")
    db = str(tmp_path / "w.duckdb")
    runner = CliRunner()
    result = runner.invoke(cli, ["import", str(source), "--db", db])
    assert result.exit_code == 0, result.output
    assert "imported 1 journeys, 5 spans" in result.output and "skipped 1 lines: 2" in result.output
    out = tmp_path / "visits.jsonl"
    result = runner.invoke(cli, ["export", "stage-visits", "--db", db, "--output", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["stage"], r["visit"], r["outcome"], r["turns"]) for r in records] == [
        ("triage", 1, "escalated", 3), ("handoff", 1, "abandoned", 1)]

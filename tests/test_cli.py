"""The ``journeyscope`` console script, run as a user would: a real process, a real DuckDB file."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

EXE = shutil.which("journeyscope")
SPAN_FIELDS = [
    "trace_id", "span_id", "parent_span_id", "name", "start_time", "end_time", "customer_id",
    "journey_id", "journey_name", "stage", "channel", "cohort", "attributes",
]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert EXE, "the journeyscope console script is not installed"
    return subprocess.run([EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    result = run("demo", "--db", str(db), "--journeys", "300", "--no-dashboard")
    assert result.returncode == 0, result.stderr
    assert "300 journeys simulated" in result.stdout
    return db


def test_demo_writes_journeys_with_their_stages(demo_db):
    con = duckdb.connect(str(demo_db), read_only=True)
    journeys, untagged = con.execute(
        "SELECT count(DISTINCT journey_id), count(*) FILTER (WHERE journey_id IS NULL) FROM spans"
    ).fetchone()
    stages = {r[0] for r in con.execute("SELECT DISTINCT stage FROM spans WHERE journey_name = 'onboarding'").fetchall()}
    con.close()
    assert journeys == 300 and untagged == 0
    assert {"sign-up", "payment", "content-prefs", "app-install", "first-watch"} <= stages


def test_demo_rerun_with_same_seed_adds_nothing_and_fresh_starts_over(demo_db, tmp_path):
    copy = tmp_path / "copy.duckdb"
    shutil.copy(demo_db, copy)
    count = lambda: duckdb.connect(str(copy), read_only=True).execute("SELECT count(*) FROM spans").fetchone()[0]
    before = count()
    assert run("demo", "--db", str(copy), "--journeys", "300", "--no-dashboard").returncode == 0
    assert count() == before  # same seed, same ids: nothing stored twice
    assert run("demo", "--db", str(copy), "--journeys", "20", "--fresh", "--no-dashboard").returncode == 0
    assert 0 < count() < before


def test_export_spans_jsonl_has_the_documented_fields(demo_db, tmp_path):
    out = tmp_path / "spans.jsonl"
    result = run("export", "spans", "--db", str(demo_db), "--output", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    con = duckdb.connect(str(demo_db), read_only=True)
    assert len(records) == con.execute("SELECT count(*) FROM spans").fetchone()[0]
    con.close()
    first = records[0]
    assert list(first)[: len(SPAN_FIELDS)] == SPAN_FIELDS
    assert len(first["trace_id"]) == 32 and first["trace_id"] == first["trace_id"].lower()
    assert first["start_time"].endswith("Z") and "T" in first["start_time"]
    assert isinstance(first["attributes"], dict) and first["attributes"]["journey.id"] == first["journey_id"]


def test_export_spans_to_stdout_csv_and_parquet(demo_db, tmp_path):
    result = run("export", "spans", "--db", str(demo_db), "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert rows and set(SPAN_FIELDS) <= set(rows[0])
    assert json.loads(rows[0]["attributes"])["journey.id"] == rows[0]["journey_id"]
    parquet = tmp_path / "spans.parquet"
    assert run("export", "spans", "--db", str(demo_db), "--format", "parquet", "-o", str(parquet)).returncode == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{parquet}'").fetchone()[0] == len(rows)


def test_export_to_stdout_appends_to_a_redirected_file_and_streams_into_a_pipe(demo_db, tmp_path):
    """``>>`` keeps what the file held, ``>`` starts it afresh, a pipe gets every record; parquet too."""
    assert EXE
    spans = duckdb.connect(str(demo_db), read_only=True).execute("SELECT count(*) FROM spans").fetchone()[0]
    appended = tmp_path / "appended.jsonl"
    appended.write_text("kept line\n")
    with appended.open("ab") as sink:
        assert subprocess.run([EXE, "export", "spans", "--db", str(demo_db)], stdout=sink, timeout=300).returncode == 0
    lines = appended.read_text().splitlines()
    assert lines[0] == "kept line" and len(lines) == 1 + spans
    assert json.loads(lines[-1])["trace_id"]
    redirected = tmp_path / "redirected.csv"  # one redirection for a block: the export follows what came before
    block = f"{{ echo '# spans'; '{EXE}' export spans --db '{demo_db}' --format csv; }} > '{redirected}'"
    assert subprocess.run(block, shell=True, timeout=300).returncode == 0
    first, *records = redirected.read_text().splitlines()
    assert first == "# spans" and len(list(csv.DictReader(records))) == spans
    piped = subprocess.run(f"'{EXE}' export spans --db '{demo_db}' --format parquet | cat > '{tmp_path}/p.parquet'",
                           shell=True, timeout=300)
    assert piped.returncode == 0
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path}/p.parquet'").fetchone()[0] == spans


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--db", "/nonexistent-dir/x.duckdb", "--journeys", "5", "--no-dashboard"], "does not exist"),
        (["export", "spans", "--db", "missing.duckdb"], "no warehouse at missing.duckdb"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("demo", "export"):
        assert command in result.stdout


def test_serve_refuses_a_bad_memory_limit_in_one_line(tmp_path: Path) -> None:
    result = run("serve", "--db", str(tmp_path / "w.duckdb"), "--port", "0", "--grpc-port", "-1",
                 "--db-memory", "lots")
    assert result.returncode != 0
    assert "invalid memory limit 'lots'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "w.duckdb").exists()

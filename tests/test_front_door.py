"""The front door, as a newcomer meets it: the real console script in a real shell-like setting.

``journeyscope demo`` from a script (stdin from /dev/null, an empty HOME) serves the dashboard and
a headless chromium reads it; a taken port and a file that is not JSONL are one line and exit 1
with no file left behind; tables fit 80 columns; and a stage's figures are the same number in the
library, the journey graph, the CLI (table, JSON, CSV) and the API.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import CHROMIUM, CHROMIUM_ARGS, build_demo, chromium_available, wait_for_app

from journeyscope.demo import BRIDGE_MARKER, DEMO_MAP
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.flows import transitions
from journeyscope.warehouse.funnel import funnel
from journeyscope.warehouse.health import filter_values

EXE = shutil.which("journeyscope") or str(Path(sys.executable).with_name("journeyscope"))


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], capture_output=True, text=True, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL,
        env=env,
    )


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    """The dashboard tests' demo warehouse (300 journeys, derived with the demo's map), built once."""
    return build_demo(tmp_path_factory.getbasetemp() / "dashboard-demo" / "demo.duckdb")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port of 127.0.0.1 another program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


# -- the demo, served ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.browser
def test_demo_from_a_script_serves_the_dashboard_without_a_prompt(tmp_path):
    missing = chromium_available()
    if missing:
        pytest.fail(f"cannot run the browser check: {missing}", pytrace=False)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ours = ("JOURNEYSCOPE_", "STREAMLIT_", "DISPLAY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(HOME=str(home), WAYLAND_DISPLAY="")
    err_path = work / "stderr.txt"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [EXE, "demo", "--journeys", "120", "--port", str(port)],
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        announced = ""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("dashboard: "):
                announced = line.strip()
                break
        assert announced == f"dashboard: {url} (Ctrl-C to stop)", (announced, err_path.read_text())
        assert proc.poll() is None, "the demo stopped instead of serving"
        assert (work / "journeys.toml").read_text() == DEMO_MAP.read_text()

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{url}/overview")
            wait_for_app(page, timeout_ms=90_000)
            body = page.inner_text("body")
            assert "Where journeys stall" in body and "Page not found" not in body
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "onboarding · " in body  # the journey type's section
            page.goto(f"{url}/health")
            wait_for_app(page, timeout_ms=90_000)
            health = page.inner_text("body")
            assert "journeys.toml" in health and "none loaded" not in health
            browser.close()
        assert list(home.iterdir()) == [], "the demo wrote into the home directory"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, err_path.read_text()
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, timeout=2)
    stderr = err_path.read_text()
    assert "Email" not in stderr and "Traceback" not in stderr, stderr


# -- ports -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["serve", "serve-grpc", "dashboard", "demo"])
def test_a_taken_port_is_one_line_and_no_file(tmp_path, taken_port, command):
    db = tmp_path / "never.duckdb"
    args = {
        "serve": ["serve", "--port", str(taken_port), "--grpc-port", "-1"],
        "serve-grpc": ["serve", "--port", "0", "--grpc-port", str(taken_port)],
        "dashboard": ["dashboard", "--port", str(taken_port)],
        "demo": ["demo", "--journeys", "5", "--port", str(taken_port)],
    }[command]
    if command == "dashboard":
        db.write_bytes(b"")  # the dashboard reads an existing file; it must not be touched
    result = run(*args, "--db", str(db), cwd=tmp_path)
    assert result.returncode == 1, result
    where, option = (" for gRPC", "--grpc-port") if command == "serve-grpc" else ("", "--port")
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{taken_port}{where}: the port is already in use "
        f"(choose another with {option})\n"
    )
    assert result.stdout == ""
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == (["never.duckdb"] if command == "dashboard" else [])
    if command == "dashboard":
        assert db.read_bytes() == b""


# -- import --------------------------------------------------------------------------------------------
def test_importing_a_file_without_a_journey_is_one_unwrapped_line_and_writes_nothing(tmp_path):
    deep = tmp_path / ("a-folder-with-a-long-name-" * 3)
    deep.mkdir()
    notes = deep / "notes.md"
    notes.write_text("# Notes\n\nnot a journey\n" + "".join(f"- item {i}\n" for i in range(40)))
    db = deep / "w.duckdb"
    result = run("import", str(notes), "--db", str(db), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and len(result.stderr) > 100  # one line, however long
    assert result.stderr.startswith(f"error: no journeys in {notes}: line 1: not JSON (")
    assert result.stderr.endswith("; 41 more lines could not be read either\n")
    assert not db.exists() and not Path(str(db) + ".wal").exists()


def test_many_bad_lines_are_summarised_and_the_good_ones_kept(tmp_path):
    good = {"journey_id": "j-1", "customer_id": "c-1", "journey": "support",
            "turns": [{"role": "customer", "text": "hi", "ts": "2025-01-01T10:00:00Z", "stage": "contact"}]}
    source = tmp_path / "mixed.jsonl"
    source.write_text(json.dumps(good) + "\n" + "".join(f"broken {i}\n" for i in range(30)))
    result = run("import", str(source), "--db", str(tmp_path / "w.duckdb"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines[:5]] == [f"skipped {source}:{n}" for n in range(2, 7)]
    assert lines[5:] == ["skipped 25 more lines (lines 7–31)", "skipped 30 of 31 lines"]
    assert result.stdout.startswith("imported 1 journeys, 1 spans")


# -- tables ----------------------------------------------------------------------------------------------
def cli_run(*args: str, env: dict[str, str] | None = None) -> Any:
    """The command in this process (its output is not a terminal, like a pipe)."""
    from click.testing import CliRunner

    from journeyscope.cli import cli

    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def test_tables_fit_80_columns_with_every_name_whole(demo_db):
    env = {"COLUMNS": "80"}
    result = cli_run("funnel", "--db", str(demo_db), "--map", str(DEMO_MAP), env=env)
    lines = result.stdout.splitlines()
    table_lines = [line for line in lines if line.startswith(" ")]  # rows; prose lines (the legend) are not
    assert len(table_lines) > 20 and max(len(line) for line in table_lines) <= 80
    assert "…" not in result.stdout
    with Warehouse(demo_db, read_only=True, journey_map=load_journey_map(DEMO_MAP)) as wh:
        report = funnel(wh)
    cells = {cell for line in lines for cell in line.split()}
    for j in report.journeys:
        for s in j.stages:
            assert s.stage in cells
            for e in s.evaluators:
                assert e.evaluator.removeprefix("customer_agent_") in cells
    # every column the README names
    for header in ("entered", "completed", "completion", "conversion", "dropped", "re-entered", "re-entry",
                   "visits", "median", "p90", "mean", "fail", "unscored"):
        assert header in result.stdout, header
    scored = cli_run("evaluate", "--db", str(demo_db), "--map", str(DEMO_MAP), env=env)
    rows = [line for line in scored.stdout.splitlines() if line.startswith(" ")]
    assert len(rows) > 8 and max(len(line) for line in rows) <= 80
    assert "conversation_resolution" in scored.stdout and "…" not in scored.stdout


# -- one definition per figure ----------------------------------------------------------------------------
def test_a_stages_figures_are_one_number_everywhere(demo_db, tmp_path):
    from receiver_support import running_server

    from journeyscope.server.settings import ServerSettings

    journey_map = load_journey_map(DEMO_MAP)
    with Warehouse(demo_db, read_only=True, journey_map=journey_map) as wh:
        report = funnel(wh)
        edges = transitions(wh)
        marks = filter_values(wh)["dimensions"]["markers"]
    assert [m["name"] for m in marks] == [BRIDGE_MARKER]  # where the compare page splits by default
    expected = {
        (j.journey, s.stage): (s.entered, s.completed, s.dropped, s.reentered, s.visits)
        for j in report.journeys
        for s in j.stages
    }
    assert ("onboarding", "first-watch") in expected
    # the journey graph: its ends are the funnel's completed (last stage) and dropped
    for j in report.journeys:
        last = j.stages[-1].stage
        for s in j.stages:
            ends = {t.target: t.journeys for t in edges if t.journey == j.journey and t.source == s.stage}
            assert ends.get("(exit)", 0) == s.dropped
            assert ends.get("(completed)", 0) == (s.completed if s.stage == last else 0)
    # the CLI, as JSON and as CSV
    as_json = cli_run("funnel", "--db", str(demo_db), "--map", str(DEMO_MAP), "--format", "json")
    cli = {
        (j["journey"], s["stage"]): (s["entered"], s["completed"], s["dropped"], s["reentered"], s["visits"])
        for j in json.loads(as_json.stdout)["journeys"]
        for s in j["stages"]
    }
    assert cli == expected
    as_csv = cli_run("funnel", "--db", str(demo_db), "--map", str(DEMO_MAP), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {
        (r["journey"], r["stage"]): tuple(
            int(r[k]) for k in ("entered", "completed", "dropped", "reentered", "visits")
        )
        for r in rows
    } == expected
    # the API (a copy: the server is its file's one writer)
    copy = tmp_path / "api.duckdb"
    shutil.copy(demo_db, copy)
    settings = ServerSettings(db=str(copy), map_file=str(DEMO_MAP), evaluate_online=False)
    with running_server(settings) as server:
        body = httpx.get(f"{server.base_url}/v1/funnel", timeout=30).json()
    api = {
        (j["journey"], s["stage"]): (s["entered"], s["completed"], s["dropped"], s["reentered"], s["visits"])
        for j in body["journeys"]
        for s in j["stages"]
    }
    assert api == expected


def test_the_compliance_page_shows_words_not_json():
    from journeyscope.dashboard.views.compliance import _audit_rows, _consent_rows

    consent = _consent_rows([{"journey": "j", "stage": "s", "journeys": 4, "recorded": 4, "none": 0,
                              "scopes": {"analytics": 4, "ai_evaluation": 3},
                              "coverage": {"analytics": 1.0, "ai_evaluation": 0.75}}])
    assert consent == [{"journey": "j", "stage": "s", "journeys": 4, "recorded": 4, "none": 0,
                        "ai_evaluation": "3 of 4 (75%)", "analytics": "4 of 4 (100%)"}]
    audit = _audit_rows([{"id": 1, "action": "policy_change", "rows": 0,
                          "detail": {"from": None, "policy": {"source": "built-in defaults", "types": {}},
                                     "to": "16927023", "tables": ["spans", "evaluations"]}}])
    assert audit[0]["detail"] == "policy: built-in defaults; to: 16927023; tables: spans, evaluations"


def test_compare_splits_at_the_latest_marker_else_the_last_7_days():
    from datetime import date

    from journeyscope.dashboard.views.compare import _default_split

    first, last = date(2025, 5, 18), date(2025, 5, 31)
    marked = {"markers": [{"name": "old", "at": "2025-05-20T00:00:00Z"},
                          {"name": "context bridge ships (demo)", "at": "2025-05-28T13:05:00Z"}]}
    assert _default_split(marked, first, last)[0] == date(2025, 5, 29)  # the first whole day after it
    assert _default_split({"markers": [{"name": "m", "at": "2025-05-25T00:00:00Z"}]}, first, last)[0] == date(
        2025, 5, 25)
    outside = {"markers": [{"name": "later", "at": "2025-07-01T00:00:00Z"}]}
    assert _default_split(outside, first, last)[0] == _default_split({}, first, last)[0] == date(2025, 5, 25)

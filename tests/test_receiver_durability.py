"""Durability with real processes: a sender process loads the server, the server is SIGKILLed mid-load,
its worker processes end with it, and after a restart every span the server acknowledged is in the
warehouse."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from journeyscope.warehouse import Warehouse

SERVE = "import sys; from journeyscope.cli import main; main(sys.argv[1:])"

SENDER = textwrap.dedent('''
    import os, sys, httpx
    sys.path.insert(0, {tests!r})
    from receiver_support import journey_spans, make_request
    url, acked = sys.argv[1], sys.argv[2]
    with open(acked, "a") as log, httpx.Client(timeout=30) as client:
        for batch in range(100000):
            spans = journey_spans(f"j-{{batch % 50}}", 200, trace=batch + 1, stage=f"s{{batch % 3}}")
            try:
                r = client.post(url, content=make_request(spans).SerializeToString(),
                                headers={{"Content-Type": "application/x-protobuf"}})
            except httpx.HTTPError:
                break
            if r.status_code == 200:
                log.write(f"{{batch + 1}}\\n"); log.flush(); os.fsync(log.fileno())
''')


def _start_server(db: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--db", str(db), "--port", "0",
                             "--grpc-port", "-1"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r":(\d+)/v1/traces", line)
    assert match, f"server did not start: {line!r}"
    return proc, int(match.group(1))


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
    return found


@pytest.mark.slow
def test_sigkill_mid_load_loses_no_acknowledged_span(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    acked = tmp_path / "acked.txt"
    acked.touch()
    script = tmp_path / "sender.py"
    script.write_text(SENDER.format(tests=str(Path(__file__).parent)))
    server, port = _start_server(db)
    sender = subprocess.Popen([sys.executable, str(script), f"http://127.0.0.1:{port}/v1/traces", str(acked)])
    try:
        deadline = time.monotonic() + 60
        while len(acked.read_text().split()) < 25:
            assert time.monotonic() < deadline, "the sender made no progress"
            assert sender.poll() is None
            time.sleep(0.05)
        workers = _children(server.pid)
        assert workers, "the server runs worker processes (scoring, JSON bodies)"
        os.kill(server.pid, signal.SIGKILL)  # mid-load: the sender is still sending
        server.wait(10)
        sender.wait(60)
        # Its worker processes do not outlive it (orphans would wait on their queue forever).
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    finally:
        for proc in (sender, server):
            if proc.poll() is None:
                proc.kill()
    batches = [int(n) for n in acked.read_text().split()]
    assert len(batches) >= 25

    # Restart the server on the same file: it opens (WAL replayed) and serves again.
    server, port = _start_server(db)
    try:
        status = httpx.get(f"http://127.0.0.1:{port}/v1/ingest/status", timeout=30).json()
        assert status["spans_in_warehouse"] >= 200 * len(batches)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    with Warehouse(db, read_only=True) as warehouse:
        stored = dict(warehouse.query("SELECT trace_id, count(*) FROM spans GROUP BY trace_id"))
        pending = warehouse.visits_due()
        visit_journeys = warehouse.query("SELECT count(DISTINCT journey_id) FROM stage_visits")[0][0]
        span_journeys = warehouse.query("SELECT count(DISTINCT journey_id) FROM spans")[0][0]
    missing = [b for b in batches if stored.get(f"{b:032x}") != 200]
    assert missing == [], f"acknowledged batches missing after SIGKILL: {missing[:10]}"
    # the visit backlog left by the crash was worked off on restart
    assert pending == 0 and visit_journeys == span_journeys > 0

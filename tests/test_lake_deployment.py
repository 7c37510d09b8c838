"""docs/deployment.md played on loopback: one PostgreSQL, one object store, two receivers (``serve --no-derive``)
fed by the real OTel exporter through a fail-over (what a load balancer does), two derive workers (``journeyscope
derive --partition 1/2`` and ``2/2``) and an API reader (a ``serve --no-derive`` nobody sends spans to), each its own
process. Mid-load one receiver and one derive worker are SIGKILLed (the worker is started again). Every acknowledged
span is stored once, every visit derived and scored once, and the API reader's funnel, read while writes ran and at
the end, is exactly what the same spans give in an embedded file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.evaluations import evaluate_pending
from journeyscope.warehouse.reader import Reader
from support.services import ObjectStore, Postgres, object_store, postgres, services_folder  # noqa: F401
from test_lake_receivers import SENDER, _port, _start, _visits

JOURNEYS = 300


def _ready(proc: subprocess.Popen[str], partition: str) -> subprocess.Popen[str]:
    """A derive worker started by :func:`_start`, once it derives."""
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # DuckDB's progress bar may come first, on a loaded machine
        if f"partition {partition}" in line:
            return proc
        seen.append(line)
    raise AssertionError(f"derive worker did not start: {seen!r}")


def _scores(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query("SELECT journey_id, stage, visit, evaluator, score, label FROM evaluations ORDER BY ALL")


def _funnel(client: httpx.Client) -> dict[str, Any]:
    answer = client.get("/v1/funnel")
    assert answer.status_code == 200, answer.text
    return {k: v for k, v in answer.json().items() if k != "as_of_age_s"}


def _until(check: Any, timeout_s: float) -> None:
    """Wait for ``check()`` to hold (work still under way in other processes), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.mark.slow
def test_receivers_derive_workers_and_an_api_reader_on_one_lake(postgres: Postgres, object_store: ObjectStore,
                                                               tmp_path: Path) -> None:
    env = {**os.environ, **object_store.env(), "NO_PROXY": "127.0.0.1", "JOURNEYSCOPE_FEED_POLL": "0.05"}
    url = "ducklake:postgres:" + postgres.conninfo(postgres.new_database())
    prefix = object_store.new_prefix()
    os.environ.update(object_store.env())
    Warehouse(url, data_path=prefix).close()  # the lake made once, before the processes open it
    procs: list[subprocess.Popen[str]] = []
    acked = tmp_path / "acked.txt"
    try:
        receiving = ("serve", "--port", "0", "--grpc-port", "-1", "--no-derive", "--workers", "0")
        first, second, reader = (_start(url, prefix, env, *receiving) for _ in range(3))  # started side by side
        workers = {p: _start(url, prefix, env, "derive", "--partition", p) for p in ("1/2", "2/2")}
        procs += [first, second, reader, *workers.values()]
        first_port, second_port, reader_port = _port(first), _port(second), _port(reader)
        for partition, worker in workers.items():
            _ready(worker, partition)
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER,
             f"http://127.0.0.1:{first_port}/v1/traces,http://127.0.0.1:{second_port}/v1/traces",
             str(acked), str(JOURNEYS)], env=env, stderr=subprocess.PIPE, text=True)
        procs.append(sender)  # type: ignore[arg-type]
        api = httpx.Client(base_url=f"http://127.0.0.1:{reader_port}", timeout=30)
        answered_while_writing = 0
        killed = False
        deadline = time.monotonic() + 180
        while sender.poll() is None:
            assert time.monotonic() < deadline, "the sender did not finish"
            _funnel(api)  # the reader answers while the writers write
            answered_while_writing += 1
            if not killed and acked.exists() and len(acked.read_text().split()) >= 1000:
                first.send_signal(signal.SIGKILL)  # mid-load: the sender fails over to the second receiver
                workers["1/2"].send_signal(signal.SIGKILL)  # and a derive worker dies mid-derivation
                first.wait()
                workers["1/2"].wait()
                workers["1/2"] = _start(url, prefix, env, "derive", "--partition", "1/2")  # resumes where it was
                procs.append(workers["1/2"])
                _ready(workers["1/2"], "1/2")
                killed = True
            time.sleep(0.2)
        _, errors = sender.communicate(timeout=60)
        assert sender.returncode == 0, errors
        assert killed and answered_while_writing > 0
        second.send_signal(signal.SIGTERM)
        second.wait(60)

        acknowledged = acked.read_text().split()
        assert len(acknowledged) == len(set(acknowledged)) >= JOURNEYS * 2
        with Warehouse(url, read_only=True, journey_map=None) as lake:
            stored = lake.query("SELECT span_id, count(*) FROM spans GROUP BY span_id")
            # Every acknowledged span stored, once (a batch the killed receiver committed but never answered may be
            # stored without an acknowledgement, when the sender's exporter ran out of tries on a loaded machine).
            assert set(acknowledged) <= {span for span, _ in stored}
            assert max(n for _, n in stored) == 1
            spans = lake.cursor().execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans").to_arrow_table()
        with Warehouse(tmp_path / "same.duckdb", journey_map=None) as embedded:
            embedded.ingest(spans)
            evaluate_pending(embedded)
            visits, scores = _visits(embedded), _scores(embedded)
            expected_funnel = json.loads(json.dumps(
                {k: v for k, v in Reader(embedded).funnel().items() if k != "as_of_age_s"}))
        assert visits and scores

        def derived() -> bool:
            with Warehouse(url, read_only=True, journey_map=None) as lake:
                return _visits(lake) == visits and len(_scores(lake)) >= len(scores)

        _until(derived, 120)  # the derive workers catch up with the last commits
        with Warehouse(url, read_only=True, journey_map=None) as lake:
            assert _visits(lake) == visits  # every visit derived, by the two partitions' workers
            assert _scores(lake) == scores  # and scored once each (the restarted worker wrote nothing twice)
            assert lake.visits_due() == 0
        _until(lambda: _funnel(api) == expected_funnel, 60)  # the reader hears of the workers' commits
        assert _funnel(api) == expected_funnel  # the funnel exact
        api.close()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

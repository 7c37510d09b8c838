"""The lake's services going away under a running receiver, with real processes: ``journeyscope serve`` on a real
PostgreSQL catalog and a real SeaweedFS store, the real OTel exporters (OTLP/HTTP and gRPC) sending journeys, and
one of the two (a store or a PostgreSQL of the test's own) stopped mid-load and started again: the store stopped,
PostgreSQL crashed (``pg_ctl -m immediate``). While it is down the receiver answers 503 / ``UNAVAILABLE`` with a
retry hint and its readiness route names what is down; every span it acknowledged is stored once afterwards,
ingest resumes by itself, and the server log holds no traceback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from receiver_support import journey_spans, make_request

from journeyscope.warehouse import Warehouse
from support.services import (ObjectStore, Postgres, object_store, postgres, services_folder,  # noqa: F401
                              start_object_store, start_postgres)
from test_lake_receivers import SENDER, _serve


def _own_folder(services_folder: Path, tmp_path: Path, kind: str) -> Path:
    """A folder for a service of this test's own (the test stops it; the session's stays up)."""
    parent = services_folder / f"own-{kind}-{tmp_path.name}"
    parent.mkdir()
    return parent


@pytest.fixture
def own_store(services_folder: Path, tmp_path: Path) -> Iterator[ObjectStore]:  # noqa: F811
    store = start_object_store(_own_folder(services_folder, tmp_path, "store"))
    yield store
    store.stop()


@pytest.fixture
def own_postgres(services_folder: Path, tmp_path: Path) -> Iterator[Postgres]:  # noqa: F811
    server = start_postgres(_own_folder(services_folder, tmp_path, "pg"))
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):  # already down when the test failed during the outage
        server.stop()


def _ready(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=30)


def _export_grpc(port: int, body: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(body, timeout=60)


def _retry_delay(error: grpc.RpcError) -> float:
    """The ``google.rpc.RetryInfo`` delay in an error's trailers (what the OTel gRPC exporter waits)."""
    for key, value in error.trailing_metadata() or ():
        if key == "google.rpc.retryinfo-bin":
            return error_details_pb2.RetryInfo.FromString(value).retry_delay.ToTimedelta().total_seconds()
    return 0.0


@pytest.mark.slow
@pytest.mark.parametrize("away", ["object_store", "catalog"])
def test_a_service_going_away_mid_load_loses_nothing_acknowledged_and_ingest_resumes(
        away: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if away == "object_store":
        postgres: Postgres = request.getfixturevalue("postgres")
        store: ObjectStore = request.getfixturevalue("own_store")
        stop, start = store.stop, store.restart
    else:
        postgres = request.getfixturevalue("own_postgres")
        store = request.getfixturevalue("object_store")
        stop, start = (lambda: postgres.stop("immediate")), postgres.start
    other = "catalog" if away == "object_store" else "object_store"
    env = {**os.environ, **store.env(), "NO_PROXY": "127.0.0.1"}
    url = "ducklake:postgres:" + postgres.conninfo(postgres.new_database())
    prefix = store.new_prefix()
    log = tmp_path / "serve.log"
    grpc_ports: list[int] = []
    receiver, port = _serve(url, prefix, env, stderr=log, grpc=grpc_ports)
    # more spans than DuckLake inlines into its catalog (such a small commit needs no object store)
    by_http = make_request(journey_spans("j-outage-http", 60, trace=901)).SerializeToString()
    by_grpc = make_request(journey_spans("j-outage-grpc", 60, trace=902)).SerializeToString()
    acked = {transport: tmp_path / f"acked-{transport}.txt" for transport in ("http", "grpc")}
    senders: list[subprocess.Popen[str]] = []
    try:
        assert _ready(port).json()["ready"] is True
        for transport, target in (("http", f"http://127.0.0.1:{port}/v1/traces"),
                                  ("grpc", f"grpc://127.0.0.1:{grpc_ports[0]}")):
            # journeys spread over about 20 s: sent before, during and after the outage
            senders.append(subprocess.Popen([sys.executable, "-c", SENDER, target, str(acked[transport]), "200",
                                             "0.1"], env=env, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 120
        while not all(path.exists() and len(path.read_text().split()) >= 300 for path in acked.values()):
            assert time.monotonic() < deadline and all(s.poll() is None for s in senders), "no batch acknowledged"
            time.sleep(0.05)
        stop()  # mid-load
        down = _ready(port)
        assert down.status_code == 503 and int(down.headers["Retry-After"]) >= 1
        assert down.json()[away]["ok"] is False
        if away == "object_store":  # the catalog's check needs no object store (with PostgreSQL away, neither answers)
            assert down.json()[other]["ok"] is True
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=by_http, timeout=60,
                             headers={"Content-Type": "application/x-protobuf"})
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert away.replace("_", " ") in status_pb2.Status.FromString(refused.content).message
        with pytest.raises(grpc.RpcError) as unavailable:
            _export_grpc(grpc_ports[0], by_grpc)
        assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE and _retry_delay(unavailable.value) > 0
        during = {transport: len(path.read_text().split()) for transport, path in acked.items()}
        start()
        for sender in senders:
            _, errors = sender.communicate(timeout=300)
            assert sender.returncode == 0, errors
        assert _ready(port).json()["ready"] is True
        # the two requests refused during the outage, sent again: stored (once, below)
        assert httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=by_http, timeout=60,
                          headers={"Content-Type": "application/x-protobuf"}).status_code == 200
        _export_grpc(grpc_ports[0], by_grpc)
        _export_grpc(grpc_ports[0], by_grpc)
        receiver.terminate()
        receiver.wait(60)
    finally:
        for proc in (receiver, *senders):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    acknowledged = [span for path in acked.values() for span in path.read_text().split()]
    assert len(acknowledged) == len(set(acknowledged))
    for transport, path in acked.items():
        assert len(path.read_text().split()) > during[transport]  # ingest went on after the store came back
    os.environ.update(store.env())
    with Warehouse(url, journey_map=None) as lake:
        stored = lake.query("SELECT span_id, count(*) FROM spans WHERE journey_id NOT LIKE 'j-outage-%' "
                            "GROUP BY span_id")
        resent = lake.query("SELECT journey_id, count(*), count(DISTINCT span_id) FROM spans "
                            "WHERE journey_id LIKE 'j-outage-%' GROUP BY ALL ORDER BY 1")
    # every acknowledged span stored, each once (spans whose answer came after the exporter had given up on it are
    # stored too: an exporter that times out sends them again, and they are stored once)
    assert set(acknowledged) <= {span for span, _ in stored}
    assert max(n for _, n in stored) == 1
    assert resent == [("j-outage-grpc", 60, 60), ("j-outage-http", 60, 60)]
    server_log = log.read_text()
    assert "Traceback" not in server_log, server_log
    assert "storage unreachable" in server_log and "ingest resumed" in server_log  # the outage, logged

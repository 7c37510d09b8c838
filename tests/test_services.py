"""The services helper the lake tests and benchmarks share starts PostgreSQL and SeaweedFS even when another
process takes a port it picked before the server binds it (tests or benchmarks starting services beside it):
the race is forced by handing the helper a port a listening socket holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import services
from support.services import services_folder  # noqa: F401


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port a listening socket holds (and its gRPC port + 10000 free, as the helper asks)."""
    while True:
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        if port < 55536:
            break
        held.close()
    held.listen()
    try:
        yield port
    finally:
        held.close()


@pytest.fixture
def picks_taken_first(monkeypatch: pytest.MonkeyPatch, taken_port: int) -> list[int]:
    """The helper's first port pick is ``taken_port``; later picks are free ports. Returns every pick made."""
    picked: list[int] = []
    free = services.free_port

    def pick(below: int = 55536, grpc_offset: int | None = None) -> int:
        port = taken_port if not picked else free(below, grpc_offset)
        picked.append(port)
        return port

    monkeypatch.setattr(services, "free_port", pick)
    return picked


def _own_folder(services_folder: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A folder the ``postgres`` user can traverse, for this test's own server."""
    folder = services_folder / f"own-{tmp_path.name}"
    folder.mkdir()
    return folder


def test_an_object_store_whose_picked_port_was_taken_starts_on_other_ports(
        services_folder: Path, tmp_path: Path, picks_taken_first: list[int], taken_port: int) -> None:  # noqa: F811
    store = services.start_object_store(_own_folder(services_folder, tmp_path))
    try:
        assert taken_port not in (store.master_port, store.volume_port, store.filer_port, store.s3_port)
        assert len(picks_taken_first) == 8  # four ports, twice
        assert "already in use" in (store.folder / "log").read_text(errors="replace")
        answer = httpx.put(f"http://127.0.0.1:{store.filer_port}/buckets/{store.bucket}/probe", content=b"x")
        assert answer.status_code in (200, 201)
    finally:
        store.stop()


def test_a_postgres_whose_picked_port_was_taken_starts_on_another(
        services_folder: Path, tmp_path: Path, picks_taken_first: list[int], taken_port: int) -> None:  # noqa: F811
    server = services.start_postgres(_own_folder(services_folder, tmp_path))
    try:
        assert server.port != taken_port
        assert picks_taken_first == [taken_port, server.port]
        assert server.psql("SELECT 1").strip() == "1"
    finally:
        server.stop()

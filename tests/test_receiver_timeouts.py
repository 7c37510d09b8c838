"""Slow and stalled uploads are timed out, connections are limited, and a client that goes away
mid-upload costs one log line: real sockets on loopback against the real server."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from journeyscope.server.settings import ServerSettings
from receiver_support import journey_spans, make_request, no_proxy, running_server

STALLED_BODY = (b"POST /v1/traces HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-protobuf\r\n"
                b"Content-Length: 100000\r\n\r\nab")
STALLED_HEADERS = b"POST /v1/traces HTTP/1.1\r\nHost: test\r\nContent-Ty"


def _connect(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    if payload:
        sock.sendall(payload)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the recv timeout is only a backstop)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def _export(client: httpx.Client, base: str, trace: int) -> httpx.Response:
    body = make_request(journey_spans(f"j-{trace}", 3, trace=trace)).SerializeToString()
    return client.post(f"{base}/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})


@pytest.mark.slow
def test_stalled_uploads_time_out_while_others_are_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    no_proxy()
    caplog.set_level(logging.WARNING)
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), header_timeout_s=3.0, body_timeout_s=3.0,
                              max_connections=500)
    with running_server(settings) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        stalled = [_connect(port, STALLED_BODY if i % 3 else STALLED_HEADERS if i % 2 else b"")
                   for i in range(300)]
        with httpx.Client(timeout=30) as client:
            for trace in range(1, 6):  # served while 300 connections hang
                assert _export(client, server.base_url, trace).status_code == 200
            assert client.get(f"{server.base_url}/v1/ingest/status").status_code == 200
        answers = [_answer(sock) for sock in stalled]  # returns once the server closed each one
        with httpx.Client(timeout=30) as client:
            assert _export(client, server.base_url, 99).status_code == 200
        server.flush()
        assert server.query("SELECT count(*) FROM spans")[0][0] == 6 * 3
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408 ")]
    partial = [a for i, a in enumerate(answers) if i % 3 or i % 2]
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in partial), {a[:60] for a in partial}
    assert len(timed_out) >= len(partial)
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    disconnects = [r for r in caplog.records if "disconnected before sending all" in r.getMessage()]
    assert len(disconnects) == sum(1 for i in range(300) if i % 3)  # one line per cut body, none per header stall


def test_disconnect_mid_upload_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    no_proxy()
    caplog.set_level(logging.WARNING)
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"))) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        sock = _connect(port, STALLED_BODY)
        with httpx.Client(timeout=30) as client:  # a round trip after it: its headers are read by now
            assert client.get(f"{server.base_url}/v1/ingest/status").status_code == 200
        sock.close()
        with httpx.Client(timeout=30) as client:
            assert _export(client, server.base_url, 1).status_code == 200
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and "POST /v1/traces" in lines[0], lines


def test_connections_beyond_the_limit_are_closed(tmp_path: Path) -> None:
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "w.duckdb"), max_connections=20,
                                       header_timeout_s=30.0)) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        held = [_connect(port, STALLED_HEADERS) for _ in range(20)]
        extra = _connect(port, b"")
        assert _answer(extra) == b""  # closed at once, long before the header timeout
        for sock in held:
            sock.close()
        with httpx.Client(timeout=30) as client:  # slots free again once those are gone
            for _ in range(50):
                response = client.get(f"{server.base_url}/v1/ingest/status")
                if response.status_code == 200:
                    break
            assert response.status_code == 200

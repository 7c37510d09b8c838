"""Access details: snapshots need the admin scope, reveal no server path and run one at a time; a key-less
server bound to ``::`` serves this machine over IPv4 and IPv6, on HTTP and gRPC; ``keys new`` prints TOML that
reads back to the same key."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from journeyscope.cli import cli as main
from journeyscope.server.auth import is_loopback, new_token, parse_keys
from journeyscope.server.otlp_grpc import _peer_host
from journeyscope.server.settings import ServerSettings
from receiver_support import journey_spans, make_request, no_proxy, running_server

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _keys_file(tmp_path: Path, tokens: dict[str, tuple[str, str]]) -> Path:
    keys = tmp_path / "keys.toml"
    keys.write_text("".join(
        f'[[keys]]\nname = "{name}"\nscopes = ["{name}"]\nsha256 = "{digest}"\n' for name, (_, digest) in tokens.items()
    ))
    return keys


def test_snapshots_need_admin_name_no_path_and_run_one_at_a_time(tmp_path: Path) -> None:
    no_proxy()
    tokens = {scope: new_token() for scope in ("read", "admin")}
    db = tmp_path / "server-side" / "warehouse.duckdb"
    db.parent.mkdir()
    settings = ServerSettings(db=str(db), keys_file=str(_keys_file(tmp_path, tokens)), evaluate_online=False)
    with running_server(settings) as running:
        url = running.base_url + "/v1/ingest/snapshot"

        def post(scope: str) -> httpx.Response:
            return httpx.post(url, headers={"Authorization": f"Bearer {tokens[scope][0]}"}, timeout=60)

        assert post("read").status_code == 403
        made = post("admin")
        assert made.status_code == 200, made.text
        name = made.json()["snapshot"]
        assert "/" not in name and str(tmp_path) not in made.text and (db.parent / name).exists()

        answers: list[httpx.Response] = []
        with running.runtime.warehouse.writing():  # the first snapshot waits for the write lock meanwhile
            threads = [threading.Thread(target=lambda: answers.append(post("admin"))) for _ in range(3)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 60  # without the one-at-a-time rule all three would wait here
            while len(answers) < 2 and time.monotonic() < deadline:
                threads[0].join(0.05)
            refused = list(answers)
        for thread in threads:
            thread.join(60)
        assert [a.status_code for a in refused] == [429, 429] and all("Retry-After" in a.headers for a in refused)
        assert sorted(a.status_code for a in answers) == [200, 429, 429]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_a_keyless_server_on_the_dual_stack_address_serves_both_loopbacks(tmp_path: Path) -> None:
    no_proxy()
    with running_server(ServerSettings(db=str(tmp_path / "dual.duckdb"), evaluate_online=False), host="::") as running:
        http_port = running.base_url.rsplit(":", 1)[1]
        grpc_port = running.grpc_target.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "[::1]"):
            answer = httpx.get(f"http://{host}:{http_port}/v1/policies", timeout=10)
            assert answer.status_code == 200, (host, answer.text)
        for trace, host in enumerate(("127.0.0.1", "[::1]"), 2):
            body = make_request(journey_spans(f"dual-{trace}", 1, trace=trace)).SerializeToString()
            with grpc.insecure_channel(f"{host}:{grpc_port}") as channel:
                export = channel.unary_unary(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                    request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString,
                )
                export(body, timeout=30)  # raises PERMISSION_DENIED if the peer is not seen as loopback
        assert running.query("SELECT count(*) FROM spans WHERE journey_id LIKE 'dual-%'") == [(2,)]


@pytest.mark.parametrize("peer, host", [("ipv4:127.0.0.1:5000", "127.0.0.1"), ("ipv6:[::1]:5000", "::1"),
                                        ("ipv6:%5B::1%5D:5000", "::1"), ("ipv6:%5B::ffff:127.0.0.1%5D:7", "::ffff:127.0.0.1")])
def test_grpc_peers_are_read_as_addresses(peer: str, host: str) -> None:
    assert _peer_host(peer) == host and is_loopback(host)


@pytest.mark.parametrize("host, local", [("::ffff:127.0.0.1", True), ("::ffff:127.8.9.1", True), ("::1", True),
                                         ("::ffff:10.0.0.1", False), ("::", False), ("10.0.0.1", False)])
def test_mapped_ipv4_loopback_is_loopback(host: str, local: bool) -> None:
    assert is_loopback(host) is local


@settings(max_examples=60, deadline=None)
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: "\x00" not in s and not s.startswith("-")))
def test_keys_new_prints_toml_that_reads_back_to_the_same_key(name: str) -> None:
    printed = CliRunner().invoke(main, ["keys", "new", "--name", name, "--project", name, "--scopes", "read,admin"])
    assert printed.exit_code == 0, printed.output
    entry = tomllib.loads(printed.stdout[printed.stdout.index("[[keys]]"):])["keys"][0]
    assert entry["name"] == name and entry["project"] == name
    own = CliRunner().invoke(main, ["keys", "new", "--name", name, "--scopes", "read,admin"]).stdout
    ring = parse_keys(own[own.index("[[keys]]"):])
    assert ring.keys[0].name == name and ring.keys[0].scopes == {"read", "admin"}


def test_keys_new_with_a_quote_in_the_name() -> None:
    printed = CliRunner().invoke(main, ["keys", "new", "--name", 'x"y'])
    assert tomllib.loads(printed.stdout[printed.stdout.index("[[keys]]"):])["keys"][0]["name"] == 'x"y'


def test_readiness_answers_a_health_check_without_a_key_and_says_no_more(tmp_path: Path) -> None:
    """A load balancer's health check sends no key: it learns ready or not; a key's holder learns the details, a
    wrong key is refused as anywhere else."""
    no_proxy()
    tokens = {scope: new_token() for scope in ("read",)}
    settings = ServerSettings(db=str(tmp_path / "warehouse.duckdb"), keys_file=str(_keys_file(tmp_path, tokens)),
                              evaluate_online=False)
    with running_server(settings) as running:
        url = running.base_url + "/v1/ready"
        anonymous = httpx.get(url, timeout=30)
        assert anonymous.status_code == 200 and anonymous.json() == {"ready": True}
        keyed = httpx.get(url, headers={"Authorization": f"Bearer {tokens['read'][0]}"}, timeout=30)
        assert keyed.status_code == 200 and keyed.json() == {"ready": True, "storage": "file"}
        assert httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30).status_code == 401
        assert httpx.get(running.base_url + "/v1/ingest/status", timeout=30).status_code == 401  # the rest needs one

"""``serve --monitors``: alerts fire within seconds of data arriving, are stored, served, emitted as spans and
delivered to real webhook receivers on loopback (signed, retried, a receiver that is down never loses one)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

from journeyscope import instrument
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse.monitors.alerts import deliveries, record_delivery
from receiver_support import no_proxy, running_server

SECRET = "s3cret"


class Receiver:
    """A real HTTP server on 127.0.0.1 keeping every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    """A loopback port nothing listens on: the receiver that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.fixture
def receivers():
    up, slack = Receiver(), Receiver()
    yield up, slack
    up.close()
    slack.close()


def _send(url: str, prefix: str, count: int, outcome: str) -> None:
    tracing = instrument.setup(exporter=OTLPSpanExporter(endpoint=url), provider=TracerProvider(), batch=False,
                               instrument_threads=False)
    for i in range(count):
        with instrument.journey(f"{prefix}-{i}", f"c-{prefix}-{i}", name="support", stage="resolve", channel="chat"):
            instrument.record_turn("customer", "My headphones arrived broken.", tracer=tracing.tracer)
            instrument.record_turn("agent", "I can offer a voucher.", tracer=tracing.tracer)
            with tracing.tracer.start_as_current_span("stage resolve"):
                instrument.record_outcome(outcome)
    tracing.shutdown()


@pytest.mark.slow
def test_an_alert_fires_is_stored_served_emitted_and_delivered(tmp_path, receivers):
    no_proxy()
    up, slack = receivers
    down = f"http://127.0.0.1:{_closed_port()}/hook"
    monitors = tmp_path / "monitors.toml"
    monitors.write_text(f"""
version = "live-1"

[[monitors]]
name = "resolve-failing"
signal = "completion"
journey = "support"
stage = "*"
target = 0.3
min_window = 5
min_events = 4
threshold = 3.0
resolve_threshold = 3.0

[[webhooks]]
url = "{up.url}"
secret = "{SECRET}"

[[webhooks]]
url = "{slack.url}"
format = "slack"

[[webhooks]]
url = "{down}"
max_attempts = 3
""")
    settings = ServerSettings(db=str(tmp_path / "live.duckdb"), monitors_file=str(monitors), evaluate_online=False)
    with running_server(settings) as running, httpx.Client(base_url=running.base_url) as http:
        running.project.monitors.sender.backoff_s = 0.2  # retries within the test, same doubling
        _send(running.traces_url, "bad", 10, "failed")
        firing = _wait(lambda: http.get("/v1/alerts", params={"status": "firing"}).json()["alerts"])
        (alert,) = firing
        assert (alert["monitor"], alert["journey"], alert["stage"], alert["signal"]) == (
            "resolve-failing", "support", "resolve", "completion")
        assert alert["value"] == 1.0 and alert["baseline"] == 0.3 and alert["n"] >= 5
        evidence = alert["evidence"]
        assert evidence["baseline"]["of"] == "target 0.3" and evidence["run"]["ci_low"] > 0.3
        assert evidence["window"]["n"] >= 5 and evidence["rule"]["threshold"] == 3.0
        assert alert["failing_visits"] and all(v["reason"] == "visit failed" for v in alert["failing_visits"])

        # Delivered, signed over timestamp + body; the Slack one is a Slack message.
        headers, body = _wait(lambda: up.requests and up.requests[0])
        stamp = headers["x-journeyscope-timestamp"]
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["x-journeyscope-signature"] == f"sha256={expected}"
        payload = json.loads(body)
        assert payload["event"] == "fired" and payload["alert"]["id"] == alert["id"]
        slack_body = json.loads(_wait(lambda: slack.requests and slack.requests[0])[1])
        assert "resolve-failing" in slack_body["text"] and slack_body["blocks"][0]["type"] == "section"
        assert "x-journeyscope-signature" not in slack.requests[0][0]

        # The receiver that is down: retried with backoff, then marked failed; the alert stays recorded.
        warehouse = running.project.warehouse
        attempts = _wait(lambda: [d for d in deliveries(warehouse, alert["id"]) if d["url"] == down
                                  and d["status"] == "failed"] and
                         [d for d in deliveries(warehouse, alert["id"]) if d["url"] == down])
        assert [d["attempt"] for d in attempts] == [1, 2, 3]
        assert [d["status"] for d in attempts] == ["retrying", "retrying", "failed"]
        assert "ConnectError" in attempts[0]["error"]
        assert http.get("/v1/alerts").json()["alerts"][0]["id"] == alert["id"]

        # Emitted as a span, like routing decisions.
        spans = _wait(lambda: running.query(
            "SELECT attributes->>'alert.event', attributes->>'alert.monitor', journey_name FROM spans "
            "WHERE name = 'journey.alert'"))
        assert spans == [("fired", "resolve-failing", "support")]

        # Back to normal: the alert resolves and the resolution is delivered too.
        _send(running.traces_url, "good", 12, "completed")
        resolved = _wait(lambda: http.get("/v1/alerts", params={"status": "resolved"}).json()["alerts"])
        assert resolved[0]["id"] == alert["id"] and resolved[0]["resolved_at"] >= alert["fired_at"]
        assert _wait(lambda: any(json.loads(b)["event"] == "resolved" for _, b in up.requests))
        # Deliveries wait on the event loop: with monitors and webhooks the project still runs three threads.
        ours = sorted(t.name for t in threading.enumerate() if t.name.startswith("journeyscope-")
                      and not t.name.startswith(("journeyscope-grpc", "journeyscope-policies")))
        assert ours == ["journeyscope-derive-default", "journeyscope-timers-default", "journeyscope-writer"]
        # As if the Slack receiver had answered 503 to a second try just before the server stopped.
        record_delivery(warehouse, alert["id"], "fired", slack.url, 2, "retrying", 503, "HTTP 503")

    # A restarted server carries on with a delivery the previous one left waiting for a retry.
    before = len(slack.requests)
    with running_server(settings) as running:
        _wait(lambda: len(slack.requests) > before)
        resumed = _wait(lambda: [(d["attempt"], d["status"]) for d in deliveries(running.project.warehouse, alert["id"])
                                 if d["url"] == slack.url and d["event"] == "fired" and d["attempt"] == 3])
        assert resumed == [(3, "delivered")]
        assert "FIRING" in json.loads(slack.requests[-1][1])["text"]


def test_an_invalid_monitors_file_keeps_the_previous_set(tmp_path):
    no_proxy()
    monitors = tmp_path / "monitors.toml"
    monitors.write_text('version = "one"\n[[monitors]]\nname = "c"\nsignal = "completion"\nstage = "*"\n')
    settings = ServerSettings(db=str(tmp_path / "w.duckdb"), monitors_file=str(monitors), evaluate_online=False)
    with running_server(settings) as running, httpx.Client(base_url=running.base_url) as http:
        assert http.get("/v1/alerts").json()["monitors"]["version"] == "one"
        monitors.write_text('version = "two"\n[[monitors]]\nname = "c"\nsignal = "completion_rate"\n')
        service = running.project.monitors
        assert service.reload() is False
        described = http.get("/v1/alerts").json()["monitors"]
        assert described["version"] == "one"
        assert "line 4" in described["last_error"] and "unknown signal 'completion_rate'" in described["last_error"]

"""Delivering alerts to webhooks: signed, retried with exponential backoff, on a thread of their own.

A delivery never blocks ingest or the API: :meth:`WebhookSender.send` only
queues, and one worker thread posts. Every attempt is recorded in the
warehouse (``alert_deliveries``): ``delivered``, ``retrying`` (with the next
try after 1, 2, 4, ... seconds, capped) or, after the webhook's
``max_attempts``, ``failed``. The alert itself was stored before any delivery
is tried, so a receiver that is down never loses it.

Signature (when the webhook has a secret): ``X-Journeyscope-Timestamp`` is the
Unix time of the attempt, and ``X-Journeyscope-Signature`` is ``sha256=`` and
the hex HMAC-SHA256 of ``"{timestamp}.{body}"`` under the secret, so a
receiver can check both the sender and the freshness (replays) of a body.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from journeyscope.server.priority import lower_this_thread
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.monitors.alerts import AlertEvent, record_delivery
from journeyscope.warehouse.monitors.spec import Webhook

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Journeyscope-Signature"
TIMESTAMP_HEADER = "X-Journeyscope-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``timestamp.body`` under ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _scope(alert: dict[str, Any]) -> str:
    parts = [alert.get(k) for k in ("journey", "stage", "cohort", "channel", "evaluator")]
    return "/".join(p for p in parts if p) or "all journeys"


def body(event: AlertEvent, fmt: str) -> bytes:
    """The JSON body: the alert record itself (``json``) or a Slack incoming-webhook message (``slack``)."""
    a = event.alert
    if fmt == "json":
        return json.dumps({"event": event.event, "alert": a}, separators=(",", ":")).encode()
    run = a["evidence"].get("run", {})
    verb = "FIRING" if event.event == "fired" else "resolved"
    text = (f"[journeyscope] {verb}: {a['monitor']} on {_scope(a)}: {a['signal']} {a['value']:.3g} "
            f"against {a['evidence'].get('baseline', {}).get('of', 'baseline')} {a['baseline']:.3g} (n={a['n']})")
    lines = [f"*{verb}* `{a['monitor']}` on *{_scope(a)}*",
             f"{a['signal']}: {a['value']:.3g} (95% CI {run.get('ci_low', 0):.3g}–{run.get('ci_high', 0):.3g}, "
             f"n={a['n']}) vs baseline {a['baseline']:.3g}",
             f"fired {a['fired_at']}" + (f", resolved {a['resolved_at']}" if a.get("resolved_at") else "")]
    for v in a.get("failing_visits", [])[:3]:
        lines.append(f"• {v['journey_id']} visit {v['visit']}: {v['reason']}")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    return json.dumps({"text": text, "blocks": blocks}, separators=(",", ":")).encode()


@dataclass(order=True)
class _Delivery:
    due: float
    order: int
    event: AlertEvent = field(compare=False)
    webhook: Webhook = field(compare=False)
    attempt: int = field(default=1, compare=False)


class WebhookSender:
    """One worker thread posting queued alert events; ``backoff_s`` doubles per retry up to ``max_backoff_s``."""

    def __init__(self, warehouse: Warehouse, *, backoff_s: float = 1.0, max_backoff_s: float = 300.0,
                 timeout_s: float = 5.0) -> None:
        self.warehouse = warehouse
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._queue: list[_Delivery] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stop = False
        self._client = httpx.Client(timeout=timeout_s)
        self._thread = threading.Thread(target=self._loop, name="journeyscope-webhooks", daemon=True)
        self._thread.start()

    def send(self, event: AlertEvent, webhooks: tuple[Webhook, ...]) -> None:
        """Queue ``event`` for every webhook that wants its monitor; returns at once."""
        with self._wake:
            for webhook in webhooks:
                if webhook.wants(event.alert["monitor"]):
                    heapq.heappush(self._queue, _Delivery(time.monotonic(), next(self._order), event, webhook))
            self._wake.notify()

    def resume(self, event: AlertEvent, webhook: Webhook, attempts: int) -> None:
        """Queue a delivery a previous server began (``attempts`` already recorded); at once, as if due."""
        with self._wake:
            heapq.heappush(self._queue, _Delivery(time.monotonic(), next(self._order), event, webhook, attempts + 1))
            self._wake.notify()

    def pending(self) -> int:
        with self._wake:
            return len(self._queue)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker (deliveries still waiting for a retry are dropped; their attempts are on record)."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=timeout_s)
        self._client.close()

    def _loop(self) -> None:
        lower_this_thread()
        while True:
            with self._wake:
                while not self._stop and (not self._queue or self._queue[0].due > time.monotonic()):
                    self._wake.wait(timeout=(self._queue[0].due - time.monotonic()) if self._queue else None)
                if self._stop:
                    return
                delivery = heapq.heappop(self._queue)
            try:
                self._attempt(delivery)
            except Exception:  # noqa: BLE001 - a broken delivery must not stop the others
                logger.exception("journeyscope: webhook delivery to %s failed", delivery.webhook.url)

    def _attempt(self, d: _Delivery) -> None:
        payload = body(d.event, d.webhook.format)
        headers = {"Content-Type": "application/json", "User-Agent": "journeyscope-alerts"}
        if d.webhook.secret:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = signature(d.webhook.secret, stamp, payload)
        http_status: int | None = None
        error: str | None = None
        try:
            response = self._client.post(d.webhook.url, content=payload, headers=headers)
            http_status = response.status_code
            if response.is_success:
                record_delivery(self.warehouse, d.event.alert["id"], d.event.event, d.webhook.url, d.attempt,
                                "delivered", http_status)
                return
            error = f"HTTP {http_status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        last = d.attempt >= d.webhook.max_attempts
        record_delivery(self.warehouse, d.event.alert["id"], d.event.event, d.webhook.url, d.attempt,
                        "failed" if last else "retrying", http_status, error)
        if last:
            logger.error("journeyscope: alert %s not delivered to %s after %d attempts: %s",
                         d.event.alert["id"], d.webhook.url, d.attempt, error)
            return
        delay = min(self.backoff_s * 2 ** (d.attempt - 1), self.max_backoff_s)
        with self._wake:
            heapq.heappush(self._queue, _Delivery(time.monotonic() + delay, next(self._order), d.event, d.webhook,
                                                  d.attempt + 1))
            self._wake.notify()

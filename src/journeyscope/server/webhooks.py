"""Delivering alerts to webhooks: signed, retried with exponential backoff, on the server's event loop.

A delivery never blocks ingest, the derive loop or the API: :meth:`WebhookSender.send`
(called from the derive loop) only hands the delivery to the event loop, where it
waits on the receiver as a task (an HTTP wait costs the loop nothing; a slow
receiver holds up no other work and needs no thread of its own), and the record of
each attempt is written from the loop's thread pool. Every attempt is recorded in the
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

import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx

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


@dataclass
class _Delivery:
    event: AlertEvent
    webhook: Webhook
    attempt: int = 1


class WebhookSender:
    """Posts alert events on ``loop`` (the server's event loop, running in another thread); ``backoff_s``
    doubles per retry up to ``max_backoff_s``."""

    def __init__(self, warehouse: Warehouse, loop: asyncio.AbstractEventLoop, *, backoff_s: float = 1.0,
                 max_backoff_s: float = 300.0, timeout_s: float = 5.0) -> None:
        self.warehouse = warehouse
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._loop = loop
        self._client: httpx.AsyncClient | None = None  # made on the loop, at the first delivery
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def send(self, event: AlertEvent, webhooks: tuple[Webhook, ...]) -> None:
        """Deliver ``event`` to every webhook that wants its monitor; returns at once (any thread)."""
        for webhook in webhooks:
            if webhook.wants(event.alert["monitor"]):
                self._submit(_Delivery(event, webhook))

    def resume(self, event: AlertEvent, webhook: Webhook, attempts: int) -> None:
        """Carry on with a delivery a previous server began (``attempts`` already recorded); at once, as if due."""
        self._submit(_Delivery(event, webhook, attempts + 1))

    def pending(self) -> int:
        """Deliveries posting or waiting for a retry."""
        return len(self._tasks)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop delivering (deliveries still waiting for a retry are dropped; their attempts are on record).
        Called from another thread than the loop's, as the server stops its projects."""
        self._closed = True
        if not self._loop.is_running():  # nothing was delivered on it, or it stopped with its tasks
            return
        with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):  # the loop already stopped
            asyncio.run_coroutine_threadsafe(self._aclose(), self._loop).result(timeout_s)

    def _submit(self, delivery: _Delivery) -> None:
        if not self._closed:
            self._loop.call_soon_threadsafe(self._start, delivery)

    def _start(self, delivery: _Delivery) -> None:
        if self._closed:
            return
        task = self._loop.create_task(self._deliver(delivery), name=f"webhook {delivery.webhook.url}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _deliver(self, d: _Delivery) -> None:
        try:
            while (delay := await self._attempt(d)) is not None:
                await asyncio.sleep(delay)
                d.attempt += 1
        except Exception:  # noqa: BLE001 - a broken delivery must not stop the others
            logger.exception("journeyscope: webhook delivery to %s failed", d.webhook.url)

    async def _attempt(self, d: _Delivery) -> float | None:
        """Post once and record it; the seconds until the next try, or ``None`` when delivered or given up."""
        payload = body(d.event, d.webhook.format)
        headers = {"Content-Type": "application/json", "User-Agent": "journeyscope-alerts"}
        if d.webhook.secret:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = signature(d.webhook.secret, stamp, payload)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        http_status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(d.webhook.url, content=payload, headers=headers)
            http_status = response.status_code
            if response.is_success:
                await self._record(d, "delivered", http_status, None)
                return None
            error = f"HTTP {http_status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        last = d.attempt >= d.webhook.max_attempts
        await self._record(d, "failed" if last else "retrying", http_status, error)
        if last:
            logger.error("journeyscope: alert %s not delivered to %s after %d attempts: %s",
                         d.event.alert["id"], d.webhook.url, d.attempt, error)
            return None
        return min(self.backoff_s * 2 ** (d.attempt - 1), self.max_backoff_s)

    async def _record(self, d: _Delivery, status: str, http_status: int | None, error: str | None) -> None:
        """The attempt, written to the warehouse from the loop's thread pool (a write must not block the loop)."""
        await asyncio.to_thread(record_delivery, self.warehouse, d.event.alert["id"], d.event.event, d.webhook.url,
                                d.attempt, status, http_status, error)

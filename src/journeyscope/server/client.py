"""A small typed client for orchestrators.

>>> from journeyscope.server.client import Client
>>> js = Client("http://127.0.0.1:4318", api_key=os.environ.get("JOURNEYSCOPE_API_KEY"))
>>> decision = js.route("j-42")                  # -> Decision(action="human_handoff", ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from journeyscope.errors import InvalidInputError, JourneyscopeError
from journeyscope.server.paths import path_segment


class ApiError(JourneyscopeError):
    """The API answered with an error; ``status`` is the HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Decision:
    """A routing recommendation (``POST /v1/route``)."""

    decision_id: str
    journey_id: str
    stage: str | None
    action: str
    mode: str
    confidence: float
    reason: str
    policy_version: str
    fired: list[dict[str, Any]] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)
    logged: bool = True

    @property
    def needs_human(self) -> bool:
        """Hand to a person: a hand-off or escalation, or any action on a recommend-only stage."""
        return self.action in ("human_handoff", "escalate") or self.mode == "recommend"


@dataclass(frozen=True)
class StageSignals:
    """One stage's signals (``GET /v1/stages``): each ``{value, n, ci_low, ci_high}``."""

    journey: str
    stage: str
    entered: int
    signals: dict[str, dict[str, Any]]

    def value(self, name: str) -> float | None:
        return (self.signals.get(name) or {}).get("value")


class Client:
    """Talks to ``journeyscope serve``; every method raises :class:`ApiError` on an error answer."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach journeyscope at {self._http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, str(detail))
        return response.json()

    def route(self, journey_id: str, stage: str | None = None, requested_by: str | None = None) -> Decision:
        """The recommended next action for a journey (logged by the server)."""
        if not journey_id:
            raise InvalidInputError("journey_id must not be empty")
        body = {"journey_id": journey_id, "stage": stage, "requested_by": requested_by}
        data = self._call("POST", "/v1/route", json={k: v for k, v in body.items() if v is not None})
        return Decision(**{k: data[k] for k in Decision.__dataclass_fields__ if k in data})

    def stages(self, journey: str | None = None, cohort: str | None = None, channel: str | None = None,
               since: datetime | None = None, window: str | None = None) -> list[StageSignals]:
        """Per-stage signals with sample sizes and 95% intervals."""
        params = {"journey": journey, "cohort": cohort, "channel": channel,
                  "since": since.isoformat() if since else None, "window": window}
        data = self._call("GET", "/v1/stages", params={k: v for k, v in params.items() if v is not None})
        return [
            StageSignals(j["journey"], s["stage"], s["entered"], s["signals"])
            for j in data["journeys"]
            for s in j["stages"]
        ]

    def journey(self, journey_id: str) -> dict[str, Any]:
        """The live state of one journey."""
        return self._call("GET", f"/v1/journeys/{path_segment(journey_id)}")

    def funnel(self, **filters: Any) -> dict[str, Any]:
        """The docs/contracts.md funnel."""
        return self._call("GET", "/v1/funnel", params={k: v for k, v in filters.items() if v is not None})

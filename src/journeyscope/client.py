"""The client of ``journeyscope serve``, for orchestrators and the dashboard alike.

>>> from journeyscope.client import Client
>>> js = Client("http://127.0.0.1:4318", api_key=os.environ.get("JOURNEYSCOPE_API_KEY"))
>>> decision = js.route("j-42")                  # -> Decision(action="human_handoff", ...)
>>> js.stages(Filters(journey="onboarding"))     # the same dict as Reader(warehouse).stages(...)

Every read declared in :class:`journeyscope.warehouse.reads.Reads` is a method here
with the same name, parameters and answer, asked over HTTP: the methods are
made from the declarations, not written out again. Beside them, the calls
that only a server answers: routing, the policies in force, and the writes
(reviews, thresholds, erasure). Any error answer raises :class:`ApiError`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from journeyscope.errors import InvalidInputError, JourneyscopeError
from journeyscope.warehouse.decisions import Decision
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.reads import Read, Reads, filter_query, read_methods

__all__ = ["ApiError", "Client", "path_segment"]


class ApiError(JourneyscopeError):
    """The API answered with an error (``status``), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


def path_segment(value: str) -> str:
    """``value`` as one path segment: every reserved character encoded, and the segments ``.`` and ``..`` too
    (clients and proxies would fold them away). The server decodes it back (:mod:`journeyscope.server.paths`)."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if value in (".", "..") else encoded


@read_methods
class Client(Reads):
    """Talks to ``journeyscope serve`` over one keep-alive HTTP connection pool.

    ``transport``: an ``httpx`` transport (tests pass an ``httpx.MockTransport``).
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:  # noqa: PYI034 - the subclass (the dashboard's source) is one too
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              missing_ok: bool = False, accept: tuple[int, ...] = ()) -> Any:
        """The JSON answer; ``None`` for a 404 when ``missing_ok``; an error status in ``accept`` answers too."""
        try:
            response = self._http.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(path, exc) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400 and response.status_code not in accept:
            raise self._refused(path, response)
        try:
            return response.json()
        except ValueError:
            raise self._refused(path, response) from None

    def _unreachable(self, path: str, exc: httpx.HTTPError) -> Exception:
        """The error for a request that got no answer (subclasses add hints)."""
        return ApiError(0, f"cannot reach journeyscope at {self.base_url}: {exc}")

    def _refused(self, path: str, response: httpx.Response) -> Exception:
        """The error for an error answer, or one that is not JSON (subclasses add hints)."""
        return ApiError(response.status_code, detail(response))

    def _answer(self, spec: Read, arguments: dict[str, Any]) -> Any:
        """A declared read asked over HTTP: path parameters in the path, the rest as query parameters."""
        path, params = spec.path, {}
        for param in spec.params:
            value = arguments[param.name]
            if param.in_path:
                path = path.replace(f"{{{param.name}}}", path_segment(value))
            elif param.is_filters:
                params.update(filter_query(value or Filters(), param.prefix))
            elif isinstance(value, bool):
                params[param.name] = "true" if value else "false"
            elif value is not None:
                params[param.name] = value
        found = self._call("GET", path, params=params, missing_ok=_may_be_missing(spec))
        return found if spec.part is None or found is None else found[spec.part]

    # -- routing ------------------------------------------------------------------------------------------
    def route(self, journey_id: str, stage: str | None = None, requested_by: str | None = None) -> Decision:
        """The recommended next action for a journey (logged by the server)."""
        if not journey_id:
            raise InvalidInputError("journey_id must not be empty")
        body = {"journey_id": journey_id, "stage": stage, "requested_by": requested_by}
        return Decision.from_dict(self._call("POST", "/v1/route", body={k: v for k, v in body.items() if v is not None}))

    def policies(self) -> dict[str, Any]:
        """The routing policies in force, and the last reload error if a file was rejected."""
        return dict(self._call("GET", "/v1/policies"))

    def reload_policies(self) -> dict[str, Any]:
        """Re-read the server's policy file now (admin scope)."""
        return dict(self._call("POST", "/v1/policies/reload"))

    # -- writes -------------------------------------------------------------------------------------------
    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str | None = None) -> dict[str, Any]:
        """Store reviews (write scope; ``reviewer`` defaults to the API key's name): ``ReviewResult.as_dict()``,
        also when none could be stored (then each is listed with why)."""
        body = [{"reviewer": reviewer, **r} if reviewer else r for r in reviews]
        return dict(self._call("POST", "/v1/reviews", body=body, accept=(422,)))

    def score_reviewed(self) -> list[dict[str, Any]]:
        """Score the reviewed visits with each engine the server has that has not (write scope)."""
        return list(self._call("POST", "/v1/evaluators/agreement/score")["engines"])

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None) -> dict[str, Any]:
        """Adopt a threshold (admin scope; the server records the API key as who adopted it)."""
        return dict(self._call("POST", "/v1/evaluators/thresholds", body={
            "evaluator": evaluator, "threshold": threshold, "reason": reason, "engine": engine,
            "journey": journey, "stage": stage}))

    def forget(self, customer_id: str, reference: str | None = None) -> dict[str, Any]:
        """Erase a customer's rows now (admin scope, audited)."""
        params = {"reference": reference} if reference else None
        return dict(self._call("POST", f"/v1/customers/{path_segment(customer_id)}/forget", params=params))


def _may_be_missing(spec: Read) -> bool:
    """Whether the read answers ``None`` for something unknown (the API's 404)."""
    return any(p.in_path for p in spec.params)


def detail(response: httpx.Response) -> str:
    """The reason an error answer gives (FastAPI's ``detail``), in at most 200 characters."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or f"{response.status_code} with a body that is not JSON"
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or body)[:200]
    return str(body)[:200]

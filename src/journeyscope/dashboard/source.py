"""Where the dashboard's numbers come from: the warehouse file, or the eval API of a running server.

DuckDB lets one process write a file; while ``journeyscope serve`` holds it, a
dashboard cannot open it and reads through the server's API instead. Both
sources answer the reads declared once in
:class:`journeyscope.warehouse.reads.Reads`, by the same names and with the
same JSON (the API serves exactly the reader's answers): :class:`WarehouseSource`
asks a :class:`~journeyscope.warehouse.reader.Reader` over the file,
:class:`ApiSource` is the project's :class:`~journeyscope.client.Client`. Neither
lists the reads again; every page is written once against :class:`Source`.

Every failure a user can cause or fix (missing file, empty or older database,
file locked by a server, server down, bad journey map) surfaces as a
:class:`SourceError` with one clear sentence and, where there is one, a hint;
the app shows it with ``st.error``, never as a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import duckdb
import httpx

from journeyscope.client import Client, detail
from journeyscope.errors import ConfigError, InvalidInputError, JourneyscopeError, WarehouseError, WarehouseUnavailable
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.db_errors import first_line
from journeyscope.warehouse.filters import Filters
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.lake import describe, is_lake
from journeyscope.warehouse.reader import Reader
from journeyscope.warehouse.reads import Read, Reads, read_methods
from journeyscope.warehouse.review_scoring import llm_configured, score_reviewed
from journeyscope.warehouse.reviews import add_reviews
from journeyscope.warehouse.schema import SCHEMA_VERSION, file_version
from journeyscope.warehouse.thresholds import adopt

__all__ = ["ApiSource", "FilterParams", "Source", "SourceError", "WarehouseSource"]

class SourceError(JourneyscopeError):
    """The dashboard cannot read its data; ``hint`` says what to do about it."""

    def __init__(self, message: str, hint: str | None = None, kind: str = "error") -> None:
        super().__init__(message)
        self.message = str(self)  # secrets taken out (JourneyscopeError)
        self.hint = hint
        #: ``error`` (something is wrong) or ``empty`` (nothing recorded yet: an info, not an alarm).
        self.kind = kind


@dataclass(frozen=True)
class FilterParams:
    """The sidebar's filters as plain strings (hashable for caching, and the API's query parameters).

    ``since``/``until`` are ISO 8601 UTC; ``until`` is exclusive, like :class:`Filters`.
    """

    journey: str | None = None
    cohort: str | None = None
    channel: str | None = None
    since: str | None = None
    until: str | None = None

    def to_filters(self) -> Filters:
        return Filters(
            journey=self.journey,
            cohort=self.cohort,
            channel=self.channel,
            since=_parse_time(self.since),
            until=_parse_time(self.until),
        )

    def query(self, prefix: str = "") -> dict[str, str]:
        """Query parameters for the API (unset filters left out)."""
        return {prefix + k: v for k, v in asdict(self).items() if v is not None}

    def replace(self, **changes: str | None) -> FilterParams:
        values = asdict(self)
        values.update(changes)
        return FilterParams(**values)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"not an ISO 8601 time: {value!r}") from None


class Source(Protocol):
    """What the pages need: every read of :class:`~journeyscope.warehouse.reads.Reads` (JSON-shaped answers),
    and the review page's writes. Every method raises only :class:`SourceError`."""

    def describe(self) -> str:
        """One line for the sidebar: where the data comes from."""

    def held(self) -> AbstractContextManager[None]:
        """Answer the questions asked inside (in this thread) from one open source, then let it go."""

    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str) -> dict[str, Any]:
        """Store reviews (:func:`journeyscope.warehouse.reviews.add_reviews`); ``ReviewResult.as_dict()``."""

    def score_reviewed(self) -> list[dict[str, Any]]:
        """Score the reviewed visits with each engine that has not (:func:`journeyscope.warehouse.review_scoring.
        score_reviewed`: local, and llm where configured); what each engine did."""

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        """Adopt a threshold (:func:`journeyscope.warehouse.thresholds.adopt`); the version as a dict."""


# -- the warehouse file ---------------------------------------------------------------------------
@read_methods
class WarehouseSource(Reads):
    """Reads a warehouse file directly, opening it read-only for each question, or once per page run.

    A connection is not kept open between page runs: DuckDB refuses a writer
    while any reader holds the file, and a dashboard left open must not stop
    ``journeyscope evaluate`` or ``serve`` from starting. Answers are cached by
    the app (``st.cache_data``), so the opens are few. Inside :meth:`held` (the
    app holds the file while one page script runs) the questions share one
    open file.
    """

    def __init__(self, path: str | Path, map_file: str | None = None) -> None:
        self.path = str(path)
        self.map_file = map_file
        try:
            self.journey_map = load_journey_map(map_file)
        except ConfigError as exc:
            raise SourceError(str(exc), "fix the journey map or start the dashboard without --map") from None
        # Per thread (each Streamlit session runs its page in a thread of its own): whether a page run
        # holds the file, and the warehouse it opened for that run.
        self._run = threading.local()

    def describe(self) -> str:
        where = f"lake {describe(self.path)}" if is_lake(self.path) else f"warehouse file {self.path}"
        return where + (f", journey map {self.map_file}" if self.map_file else "")

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open across the questions asked inside (in this thread), and close it on the way out.

        A new DuckDB connection starts with an empty buffer pool, so each question opened on its own reads
        the score columns from the file again; a page asks four or five questions of the same tables (at
        15.7 M scores the stage page's questions took 2.5 s opened one by one, 1.9 s on one connection). The file is
        opened at the first question that misses the cache (a page answered from the cache opens nothing),
        and it is held only while the page runs, during most of which a question holds it anyway.
        """
        if getattr(self._run, "holding", False):  # nested: the outer hold closes
            yield
            return
        self._run.holding, self._run.warehouse = True, None
        try:
            yield
        finally:
            warehouse, self._run.holding, self._run.warehouse = self._run.warehouse, False, None
            if warehouse is not None:
                warehouse.close()

    @contextmanager
    def _open(self) -> Iterator[Any]:
        holding = getattr(self._run, "holding", False)
        warehouse = self._run.warehouse if holding else None
        if warehouse is None:
            try:
                warehouse = Warehouse(self.path, read_only=True, journey_map=self.journey_map)
            except WarehouseError as exc:
                raise self._explain(exc) from None
            if holding:
                self._run.warehouse = warehouse
        try:
            yield warehouse
        except SourceError:
            raise
        except JourneyscopeError as exc:
            raise SourceError(str(exc)) from None
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {describe(self.path)}: {first_line(exc)}") from None
        finally:
            if not holding:
                warehouse.close()

    def _explain(self, exc: WarehouseError) -> SourceError:
        """Turn an open failure into what the user should do about it."""
        text = str(exc)
        if is_lake(self.path):  # no file to look at: the error says what is wrong (secrets taken out)
            return SourceError(text, "Start the dashboard again once the lake's catalog and object store answer, "
                               "or check --db and --data-path." if isinstance(exc, WarehouseUnavailable) else None)
        if not Path(self.path).exists():
            return SourceError(
                f"No warehouse at {self.path}.",
                "Create one with 'journeyscope demo' or 'journeyscope import FILE.jsonl', or pass --db PATH.",
            )
        if "open for writing" in text or "lock" in text.lower():
            return SourceError(
                f"{self.path} is held by another process that writes to it (is 'journeyscope serve' running?).",
                "Read through the server instead: journeyscope dashboard --api http://127.0.0.1:4318",
            )
        version = file_version(self.path)
        if version == 0:
            return SourceError(
                f"{self.path} is not a journeyscope warehouse yet (it has no journeyscope tables).",
                "Fill it with 'journeyscope demo --db PATH' or 'journeyscope import FILE.jsonl --db PATH'.",
                kind="empty",
            )
        if version is not None:
            if version < SCHEMA_VERSION:
                return SourceError(
                    f"{self.path} was written by an older journeyscope (schema version {version}; this one reads "
                    f"{SCHEMA_VERSION}).",
                    "Open it once for writing to migrate it, e.g. 'journeyscope evaluate --db PATH' or "
                    "'journeyscope serve --db PATH', then reload this page.",
                )
            if version > SCHEMA_VERSION:
                return SourceError(
                    f"{self.path} was written by a newer journeyscope (schema version {version}; this one reads "
                    f"{SCHEMA_VERSION}).",
                    "Upgrade journeyscope: pip install -U journeyscope",
                )
        return SourceError(text)

    def _answer(self, spec: Read, arguments: dict[str, Any]) -> Any:
        """A declared read asked of the file (opened for it, or held by the page run)."""
        with self._open() as wh:
            return getattr(Reader(wh), spec.name)(**arguments)

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """The file opened for writing for one write (the page's reads hold it read-only: let go of that first).

        Fails with a hint when another process (``journeyscope serve``) holds the file: then the dashboard
        reads and writes through the API.
        """
        held = getattr(self._run, "warehouse", None)
        if held is not None:
            held.close()
            self._run.warehouse = None
        try:
            warehouse = Warehouse(self.path, journey_map=self.journey_map)
        except WarehouseError as exc:
            raise self._explain(exc) from None
        try:
            yield warehouse
        except JourneyscopeError as exc:
            raise SourceError(str(exc)) from None
        finally:
            warehouse.close()

    def add_reviews(self, reviews: list[dict[str, Any]], reviewer: str) -> dict[str, Any]:
        with self._writing() as wh:
            return add_reviews(wh, enumerate(reviews, 1), reviewer=reviewer, source="dashboard").as_dict()

    def score_reviewed(self) -> list[dict[str, Any]]:
        with self._writing() as wh:
            return [asdict(score_reviewed(wh, name)) for name in (("local", "llm") if llm_configured() else ("local",))]

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        with self._writing() as wh:
            adopted, decided = adopt(wh, evaluator, threshold, reason=reason, engine=engine, journey=journey,
                                     stage=stage, actor=actor)
        return {**adopted.as_dict(), "decided": decided}


# -- the eval API ---------------------------------------------------------------------------------
class ApiSource(Client):
    """Reads the eval API of a running ``journeyscope serve``: the client, with errors said for a dashboard."""

    def describe(self) -> str:
        return f"eval API {self.base_url}"

    def held(self) -> AbstractContextManager[None]:
        """Nothing to hold: the HTTP client keeps its connections between questions anyway."""
        return nullcontext()

    def _unreachable(self, path: str, exc: httpx.HTTPError) -> Exception:
        if isinstance(exc, httpx.ConnectError):
            return SourceError(
                f"Cannot reach the journeyscope API at {self.base_url} (connection refused).",
                "Start it with 'journeyscope serve', or read the file directly: journeyscope dashboard --db PATH",
            )
        if isinstance(exc, httpx.TimeoutException):
            return SourceError(
                f"The journeyscope API at {self.base_url} did not answer in time ({path}).",
                "The server may be overloaded; reload in a moment.",
            )
        return SourceError(f"Cannot talk to the journeyscope API at {self.base_url}: {exc}")

    def _refused(self, path: str, response: httpx.Response) -> Exception:
        status = response.status_code
        if status in (401, 403):
            return SourceError(
                f"The API at {self.base_url} refused the request ({status}: {detail(response)}).",
                "Pass an API key with the scope it needs ('read'; 'write' to review, 'admin' to adopt a threshold): "
                "JOURNEYSCOPE_API_KEY=... journeyscope dashboard --api URL",
            )
        if status == 404:
            return SourceError(
                f"The API at {self.base_url} has no {path} (404).",
                "Is it a journeyscope server of the same version as this dashboard?",
            )
        if status < 400:
            return SourceError(f"The API at {self.base_url} sent something that is not JSON for {path}.")
        return SourceError(f"The API at {self.base_url} answered {status} to {path}: {detail(response)}")

    def filter_values(self) -> dict[str, Any]:
        """``/v1/filters``; from ``/v1/health`` on a server older than that route (the same keys)."""
        found = self._call("GET", "/v1/filters", missing_ok=True)
        if found is not None:
            return dict(found)
        counts = (h := self.health()).get("counts", {})
        return {
            "counts": {k: counts.get(k, 0) for k in ("stage_visits", "evaluations")},
            "dimensions": dict(h.get("dimensions") or {}),
        }

    def adopt_threshold(self, evaluator: str, threshold: float, reason: str, *, engine: str = "local",
                        journey: str | None = None, stage: str | None = None,
                        actor: str | None = None) -> dict[str, Any]:
        """The server records the API key as who adopted it (``actor`` is the file's)."""
        return super().adopt_threshold(evaluator, threshold, reason, engine=engine, journey=journey, stage=stage)

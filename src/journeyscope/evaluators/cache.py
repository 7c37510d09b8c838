"""Where LLM verdicts are remembered, so the same visit is never paid for twice.

A cache is anything with ``get(key)`` and ``put(key, verdict)`` (:class:`VerdictCache`). The default is
an in-memory dict; the warehouse can plug in a DuckDB table with the same two methods. Keys hash
everything that could change a verdict: evaluator, rubric version, model and the exact prompt input.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class VerdictCache(Protocol):
    """Stores parsed LLM verdicts (plain JSON-able dicts) by key. Implementations must not raise on a miss."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The verdict stored under ``key``, or ``None``."""
        ...

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        """Store ``verdict`` under ``key``."""
        ...


class MemoryCache:
    """A bounded, thread-safe in-memory :class:`VerdictCache` (least recently used entries go first)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return dict(hit) if hit is not None else None

    def put(self, key: str, verdict: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = dict(verdict)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def cache_key(evaluator: str, version: str, model: str, payload: Any) -> str:
    """A stable hex digest of (evaluator, version, model, input)."""
    blob = json.dumps([evaluator, version, model, payload], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()

"""Each public package says what it offers: a curated ``__all__``, sorted, every name real, nothing private.

Sorted the way ruff's RUF022 sorts (isort style): CONSTANTS, then Classes, then functions, each alphabetically.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import journeyscope

PACKAGES = sorted(
    ["journeyscope"]
    + [m.name for m in pkgutil.walk_packages(journeyscope.__path__, "journeyscope.") if m.ispkg]
)
#: What a user of the instrumentation, the warehouse library and the evaluators reaches for (README).
EXPECTED = {
    "journeyscope": {"__version__"},
    "journeyscope.instrument": {"setup", "journey", "stage", "record_turn", "record_outcome", "record_feedback",
                                "continue_journey", "inject_headers", "register_channel", "JourneySpanProcessor"},
    "journeyscope.warehouse": {"Warehouse", "load_journey_map", "JourneyMap"},
    "journeyscope.evaluators": {"evaluate_visit", "register", "registered", "VisitContext", "EvalResult"},
    "journeyscope.privacy": {"load_policy", "Redactor", "RedactingSpanExporter", "find_pii", "redact_rows"},
}


def _isort_key(name: str) -> tuple[int, str]:
    if re.fullmatch(r"_*[A-Z0-9_]+", name) and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_the_packages_are_the_expected_ones() -> None:
    assert set(EXPECTED) <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_real_and_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{name} has no __all__"
    assert exported == sorted(exported, key=_isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    assert all(hasattr(module, n) for n in exported), [n for n in exported if not hasattr(module, n)]
    private = [n for n in exported if n.startswith("_") and not (n.startswith("__") and n.endswith("__"))]
    assert not private, private
    assert EXPECTED.get(name, set()) <= set(exported), EXPECTED[name] - set(exported)


def test_the_sort_key_orders_like_isort() -> None:
    names = ["setup", "Warehouse", "SPAN_SCHEMA", "JourneyMap", "load_journey_map", "BUILTIN_TYPES"]
    assert sorted(names, key=_isort_key) == [
        "BUILTIN_TYPES", "SPAN_SCHEMA", "JourneyMap", "Warehouse", "load_journey_map", "setup"]

"""Cached questions to the source: what every page calls instead of the source itself.

Answers are small dicts aggregated in DuckDB (or by the API), cached per
source and filter for :data:`~journeyscope.dashboard.settings.DEFAULT_TTL_S`
seconds with ``st.cache_data``, so moving between pages and widgets does not
re-run a funnel over a million journeys. Errors are not cached: a server that
was down is asked again on the next rerun. "Refresh data" clears the cache.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
from journeyscope.dashboard.settings import DEFAULT_TTL_S, DashboardSettings
from journeyscope.dashboard.source import ApiSource, FilterParams, Source, WarehouseSource

__all__ = [
    "activity",
    "agreement",
    "clear",
    "compare",
    "distribution",
    "failing",
    "filter_values",
    "funnel",
    "health",
    "journey",
    "make_source",
    "outcomes",
    "retention",
    "search",
    "thresholds",
    "transitions",
]


@st.cache_resource(show_spinner=False)
def _cached_source(db: str, api: str | None, api_key: str | None, map_file: str | None) -> Source:
    if api:
        return ApiSource(api, api_key)
    return WarehouseSource(db, map_file)


def make_source(settings: DashboardSettings) -> Source:
    """One source object per settings for the whole server (it holds no open file, only an HTTP pool)."""
    return _cached_source(settings.db, settings.api, settings.api_key, settings.map_file)


def clear() -> None:
    """Forget every cached answer (the "Refresh data" button)."""
    st.cache_data.clear()


_cache = st.cache_data(ttl=DEFAULT_TTL_S, show_spinner="Reading the warehouse…", max_entries=512)

# Arguments starting with "_" are not hashed: ``key`` (the source's identity) stands for ``_source``.


@_cache
def health(_source: Source, key: str) -> dict[str, Any]:
    return _source.health()


@_cache
def filter_values(_source: Source, key: str) -> dict[str, Any]:
    return _source.filter_values()


@_cache
def compliance(_source: Source, key: str) -> dict[str, Any]:
    return _source.compliance()


@_cache
def alerts(_source: Source, key: str) -> list[dict[str, Any]]:
    return _source.alerts()


@_cache
def activity(_source: Source, key: str, params: FilterParams) -> dict[str, Any]:
    return _source.activity(params)


@_cache
def funnel(_source: Source, key: str, params: FilterParams, evaluators: bool = True) -> dict[str, Any]:
    return _source.funnel(params, evaluators)


@_cache
def transitions(_source: Source, key: str, params: FilterParams) -> list[dict[str, Any]]:
    return _source.transitions(params)


@_cache
def outcomes(_source: Source, key: str, params: FilterParams) -> dict[str, Any]:
    return _source.outcomes(params)


@_cache
def retention(_source: Source, key: str, params: FilterParams) -> list[dict[str, Any]]:
    return _source.retention(params)


@_cache
def compare(_source: Source, key: str, a: FilterParams, b: FilterParams) -> dict[str, Any]:
    return _source.compare(a, b)


@_cache
def journey(_source: Source, key: str, journey_id: str) -> dict[str, Any] | None:
    return _source.journey(journey_id)


@_cache
def search(
    _source: Source, key: str, query: str, params: FilterParams, limit: int = 20
) -> list[dict[str, Any]]:
    return _source.search(query, params, limit)


@_cache
def failing(
    _source: Source,
    key: str,
    params: FilterParams,
    stage: str | None,
    evaluator: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    return _source.failing(params, stage, evaluator, limit)


@_cache
def distribution(
    _source: Source, key: str, params: FilterParams, stage: str | None, evaluator: str | None = None
) -> dict[str, Any]:
    return _source.distribution(params, stage, evaluator)


@_cache
def feedback_agreement(_source: Source, key: str, params: FilterParams) -> list[dict[str, Any]]:
    return _source.feedback_agreement(params)


@_cache
def agreement(_source: Source, key: str, evaluator: str | None = None) -> dict[str, Any]:
    return _source.agreement(evaluator)


@_cache
def thresholds(_source: Source, key: str, evaluator: str | None = None) -> list[dict[str, Any]]:
    return _source.thresholds(evaluator)

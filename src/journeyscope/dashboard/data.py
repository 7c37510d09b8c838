"""Cached questions to the source: what every page calls instead of the source itself.

Answers are small dicts aggregated in DuckDB (or by the API), cached per
source and filter for :data:`~journeyscope.dashboard.settings.DEFAULT_TTL_S`
seconds with ``st.cache_data``, so moving between pages and widgets does not
re-run a funnel over a million journeys. Errors are not cached: a server that
was down is asked again on the next rerun. "Refresh data" clears the cache.

One cached function serves every read: :func:`ask` names the read (a method
of :class:`journeyscope.warehouse.reads.Reads`) and its arguments, so a read
declared there needs nothing here.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from journeyscope.dashboard.settings import DEFAULT_TTL_S, DashboardSettings
from journeyscope.dashboard.source import ApiSource, FilterParams, Source, WarehouseSource
from journeyscope.warehouse.reads import reading

__all__ = ["ask", "clear", "make_source"]


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


# Arguments starting with "_" are not hashed: ``key`` (the source's identity) stands for ``_source``.
@st.cache_data(ttl=DEFAULT_TTL_S, show_spinner="Reading the warehouse…", max_entries=512)
def _read(_source: Source, key: str, name: str, arguments: tuple[tuple[str, Any], ...]) -> Any:
    values = {k: v.to_filters() if isinstance(v, FilterParams) else v for k, v in arguments}
    return getattr(_source, name)(**values)


def ask(source: Source, key: str, name: str, **arguments: Any) -> Any:
    """The read ``name`` of ``source`` with ``arguments`` (filters as :class:`FilterParams`), cached."""
    reading(name)  # a read that is not declared fails here, before the cache
    return _read(source, key, name, tuple(sorted(arguments.items())))

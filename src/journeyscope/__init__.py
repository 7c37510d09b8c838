"""journeyscope: trace and evaluate AI-run customer journeys, stage by stage.

The root package stays import-light on purpose: an agent that only needs
``journeyscope.instrument`` must not pay for DuckDB, Streamlit or FastAPI.
The parts live in their own subpackages (``instrument``, ``warehouse``,
``evaluators``, ``server``, ``dashboard``). Even ``__version__`` is looked up on
first use: reading the installed metadata costs a command tens of milliseconds.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("journeyscope")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        found = "0.0.0"
    globals()["__version__"] = found
    return found

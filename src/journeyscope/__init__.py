"""journeyscope: trace and evaluate AI-run customer journeys, stage by stage.

The root package stays import-light on purpose: an agent that only needs
``journeyscope.instrument`` must not pay for DuckDB, Streamlit or FastAPI.
The parts live in their own subpackages (``instrument``, ``warehouse``,
``evaluators``, ``server``, ``dashboard``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("journeyscope")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = ["__version__"]

"""The server: OTLP receiver (HTTP, gRPC) and eval API for one warehouse, started by ``journeyscope serve``.

An application rather than a library: its one public piece is the settings object it runs with; the
modules behind it (receivers, routes, workers) are its own.
"""

from journeyscope.server.settings import ServerSettings

__all__ = ["ServerSettings"]

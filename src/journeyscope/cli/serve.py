"""``journeyscope serve``: the OTLP receiver (HTTP and gRPC) and, later, the HTTP API."""

from __future__ import annotations

import click

from journeyscope.cli.common import db_option
from journeyscope.errors import ConfigError


@click.command()
@db_option
@click.option("--map", "map_file", type=click.Path(dir_okay=False), envvar="JOURNEYSCOPE_MAP",
              help="Journey map (TOML). Default: ./journeys.toml when present. Env: JOURNEYSCOPE_MAP.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept other machines).")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535),
              help="OTLP/HTTP (and API) port; 0 picks a free one.")
@click.option("--grpc-port", default=4317, show_default=True, type=click.IntRange(-1, 65535),
              help="OTLP/gRPC port; 0 picks a free one, -1 turns gRPC off.")
@click.option("--queue-spans", default=200_000, show_default=True, type=click.IntRange(1),
              help="Spans waiting to be written before senders are told to retry (503/UNAVAILABLE).")
def serve(db: str, map_file: str | None, host: str, port: int, grpc_port: int, queue_spans: int) -> None:
    """Receive OTLP traces over HTTP and gRPC and write them to the warehouse (this process is its one writer)."""
    try:
        from journeyscope.server.run import serve as run_server
        from journeyscope.server.settings import ServerSettings
    except ImportError as exc:
        raise ConfigError(f"'journeyscope serve' needs the server extra: pip install 'journeyscope[server]' ({exc})")
    from journeyscope.warehouse import load_journey_map

    load_journey_map(map_file)  # a bad map is one clear line now, not an error inside the server's startup
    settings = ServerSettings(
        db=db, map_file=map_file, host=host, port=port, grpc_port=None if grpc_port < 0 else grpc_port,
        queue_max_spans=queue_spans,
    )
    try:
        run_server(settings)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None

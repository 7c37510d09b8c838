"""``journeyscope serve``: the OTLP receiver (HTTP and gRPC) and the eval API, in one process."""

from __future__ import annotations

import click

from journeyscope.cli.common import db_option, db_threads_option, map_option
from journeyscope.errors import ConfigError
from journeyscope.ports import ensure_free
from journeyscope.settings import load as load_settings
from journeyscope.warehouse.lake import is_lake
from journeyscope.warehouse.writer import COMMIT_WAIT_SPANS, LAKE_COMMIT_WAIT_S


@click.command()
@db_option
@map_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 to accept other machines; configure --keys then).")
@click.option("--port", default=4318, show_default=True, type=click.IntRange(0, 65535),
              help="OTLP/HTTP and API port; 0 picks a free one.")
@click.option("--grpc-port", default=4317, show_default=True, type=click.IntRange(-1, 65535),
              help="OTLP/gRPC port; 0 picks a free one, -1 turns gRPC off.")
@click.option("--queue-spans", default=200_000, show_default=True, type=click.IntRange(1),
              help="Spans waiting to be written before senders are told to retry (503/UNAVAILABLE).")
@click.option("--commit-wait", type=click.FloatRange(0, 10), metavar="SECONDS",
              help=f"How long a short queue (under {COMMIT_WAIT_SPANS:,} spans) waits for more requests to commit "
              "with, from its oldest request's arrival or the last commit's end, whichever is later. Longer: fewer "
              "commits and less CPU under a steady load, later acknowledgements. "
              f"Default: {LAKE_COMMIT_WAIT_S} on a lake, 0 on the file.")
@click.option("--keys", "keys_file", type=click.Path(dir_okay=False, exists=True),
              default=lambda: load_settings().keys_file,
              help="API keys and projects (TOML). Without it the server accepts local requests only. "
              "Env: JOURNEYSCOPE_KEYS.")
@click.option("--policies", "policies_file", type=click.Path(dir_okay=False, exists=True),
              default=lambda: load_settings().policies_file,
              help="Routing policies (TOML), reloaded when the file changes. Env: JOURNEYSCOPE_POLICIES.")
@click.option("--monitors", "monitors_file", type=click.Path(dir_okay=False, exists=True),
              default=lambda: load_settings().monitors_file,
              help="Monitors (TOML): evaluated as data arrives, alerts stored and sent; reloaded when it "
              "changes. Env: JOURNEYSCOPE_MONITORS.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 64),
              help="Processes that decode OTLP bodies and score visits, off the API's event loop (0: none).")
@db_threads_option
@click.option("--db-memory", default="1GB", show_default=True,
              help="DuckDB's memory limit (e.g. 512MB, 4GB; 'none': 80%% of the machine's memory).")
@click.option("--state-journeys", default=10_000, show_default=True, type=click.IntRange(1),
              help="Journeys whose state the API holds in memory (10-20 KB each; others are read when asked).")
@click.option("--max-connections", default=1000, show_default=True, type=click.IntRange(1),
              help="HTTP connections open at once (keep below 'ulimit -n'); gRPC calls handled at once.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a request may take to send its headers before a 408 and close.")
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a request may take to send its body before a 408 and close.")
@click.option("--no-evaluate", is_flag=True, help="Do not score stage visits online as they close.")
@click.option("--no-derive", is_flag=True,
              help="A receiver and API only: on a lake, leave stage visits and scores to 'journeyscope derive' "
              "workers (docs/deployment.md).")
def serve(
    db: str,
    map_file: str | None,
    host: str,
    port: int,
    grpc_port: int,
    queue_spans: int,
    commit_wait: float | None,
    keys_file: str | None,
    policies_file: str | None,
    monitors_file: str | None,
    workers: int,
    db_threads: int | None,
    db_memory: str,
    state_journeys: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    no_evaluate: bool,
    no_derive: bool,
) -> None:
    """Receive OTLP traces (HTTP and gRPC), serve the eval API; this process is the warehouse's one writer."""
    from journeyscope.server.auth import load_keys
    from journeyscope.server.routing import load_policies
    from journeyscope.server.run import serve as run_server
    from journeyscope.server.settings import ServerSettings
    from journeyscope.warehouse import Warehouse, load_journey_map

    # Bad config is one clear line now, not an error inside the server's start-up; a taken port too,
    # before the warehouse file is created.
    if no_derive and not is_lake(db):
        raise ConfigError(f"--no-derive needs a lake (--db ducklake:postgres:...) with 'journeyscope derive' workers: "
                          f"nothing else derives {db}")
    ensure_free(host, port)
    if grpc_port > 0:
        ensure_free(host, grpc_port, "for gRPC", option="--grpc-port")
    load_journey_map(map_file)
    load_keys(keys_file)
    load_policies(policies_file)
    if monitors_file is not None:
        _check_monitors(monitors_file, db, map_file)
    memory = None if db_memory.strip().lower() == "none" else db_memory
    if memory is not None:
        with Warehouse(":memory:") as probe:
            probe.set_memory_limit(memory)
    settings = ServerSettings(
        db=db, map_file=map_file, host=host, port=port, grpc_port=None if grpc_port < 0 else grpc_port,
        queue_max_spans=queue_spans, commit_wait_s=commit_wait, keys_file=keys_file, policies_file=policies_file,
        monitors_file=monitors_file, derive=not no_derive, evaluate_online=not no_evaluate, workers=workers, db_threads=db_threads,
        db_memory_limit=memory, max_connections=max_connections, header_timeout_s=header_timeout,
        body_timeout_s=body_timeout, state_journeys=state_journeys,
    )
    try:
        run_server(settings)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _check_monitors(monitors_file: str, db: str, map_file: str | None) -> None:
    """A bad monitors file, or one naming a journey, stage or evaluator the warehouse lacks, stops here."""
    from pathlib import Path

    from journeyscope.errors import WarehouseError
    from journeyscope.warehouse import Warehouse, load_journey_map
    from journeyscope.warehouse.monitors import load_monitors
    from journeyscope.warehouse.monitors.engine import validate

    monitors = load_monitors(monitors_file)
    if not Path(db).exists():
        return
    try:
        warehouse = Warehouse(db, read_only=True, journey_map=load_journey_map(map_file))
    except WarehouseError:
        return  # older schema or held by another process: the server checks again once it has the file
    with warehouse:
        validate(warehouse, monitors)


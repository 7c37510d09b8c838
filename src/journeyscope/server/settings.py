"""The one settings object of the server process (docs/contracts.md: an app factory takes one settings object).

It reads no environment: ``journeyscope serve`` fills it from its options, whose defaults are the
``JOURNEYSCOPE_*`` variables of :mod:`journeyscope.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeyscope import settings


@dataclass(frozen=True)
class ServerSettings:
    """Where the warehouse is, where to listen, and the limits that keep the receiver's memory bounded.

    ``port``/``grpc_port`` 0 pick a free port (tests); ``grpc_port`` None turns gRPC off.
    ``queue_max_spans`` bounds the spans decoded but not yet written (and, again, those
    waiting for room up to ``queue_wait_s``): beyond it the receiver answers 503 /
    UNAVAILABLE with a retry hint (the OTLP exporters retry), so memory stays bounded
    and nothing is dropped silently; a sender that runs out of retries loses its batch
    (its exporter logs it).
    """

    db: str = settings.DEFAULT_DB
    map_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 4318
    grpc_port: int | None = 4317
    #: Largest accepted request body, after gzip decompression (the OTel Collector's default is 20 MiB).
    max_body_bytes: int = 32 * 1024 * 1024
    #: Spans waiting for the writer before new requests are refused.
    queue_max_spans: int = 200_000
    #: Spans the writer commits in one transaction at most (group commit of queued requests).
    write_batch_spans: int = 100_000
    #: Seconds a short queue waits for more requests to commit with (``Writer(commit_wait_s=...)``); ``None``: the
    #: storage's default, :data:`~journeyscope.warehouse.writer.LAKE_COMMIT_WAIT_S` on a lake and none on the file.
    commit_wait_s: float | None = None
    #: Seconds a request waits for room in a full queue (in line, first come first) before it is refused;
    #: the line holds another ``queue_max_spans`` at most. The wait and the retry hint together are what
    #: one refused attempt costs a sender: keep them near a sixth of the exporters' 10 s, so all six fit.
    queue_wait_s: float = 1.0
    #: Seconds a refused client is told to wait (HTTP ``Retry-After``, gRPC ``RetryInfo``): at random
    #: between these two. The OTel exporters give up when a hint exceeds what is left of their export
    #: timeout (10 s by default, six attempts at most), so keep the sum of a few waits well under it.
    retry_after_s: float = 1.0
    retry_after_max_s: float = 2.0
    #: Seconds a connection may take to send a request's headers (from its first byte) before a 408 and close.
    header_timeout_s: float = 10.0
    #: Seconds a request may take to send its whole body (after its headers) before a 408 and close.
    body_timeout_s: float = 30.0
    #: HTTP connections open at once; one more is closed when accepted (keep it below ``ulimit -n``).
    #: gRPC: calls handled at once, beyond it RESOURCE_EXHAUSTED.
    max_connections: int = 1000
    #: Seconds a gRPC connection lives before it is asked to reconnect (GOAWAY); a call still sending then
    #: gets ``body_timeout_s`` more, then the connection is closed: what bounds a stalled gRPC upload.
    grpc_max_connection_age_s: float = 300.0
    #: How long a request waits for its batch to be committed before answering 503.
    ack_timeout_s: float = 60.0
    #: Seconds between sweeps that mark idle journeys' open visits ``abandoned``.
    idle_sweep_s: float = 30.0
    grpc_workers: int = 8
    #: Processes that decode OTLP bodies and score visits (0: in the server process; journeyscope.server.workers).
    workers: int = 1
    #: Threads DuckDB runs each query on; ``None``: one fewer than the machine's cores (at least one), so a
    #: query never takes every core from the API's event loop (journeyscope.server.priority).
    db_threads: int | None = None
    #: DuckDB's memory limit (``SET memory_limit``; beyond it DuckDB evicts cached blocks and spills to
    #: disk): with the queue, the largest share of the server's memory, and what keeps it from growing
    #: with the volume stored. ``None``: DuckDB's default, 80% of the machine's memory.
    db_memory_limit: str | None = "1GB"
    #: Journeys whose state the API holds in memory for ``/v1/route`` and ``/v1/journeys/{id}`` (the least
    #: recently asked are let go past it; closed journeys nobody asked about are pruned): with
    #: ``db_memory_limit`` and the queue, what bounds the server's memory. A journey not held is read when
    #: asked (same answer).
    state_journeys: int = 10_000
    #: Journeys one stage-visit upkeep transaction derives again at most (a backlog is worked off in parts).
    upkeep_journeys: int = 20_000
    #: API keys and projects (TOML, see journeyscope.server.auth); None: local-only, one project.
    keys_file: str | None = None
    #: Routing policies (TOML, see journeyscope.server.routing.policy); None: the built-in defaults.
    policies_file: str | None = None
    #: Monitors (TOML, see journeyscope.warehouse.monitors.spec); None: no live monitoring.
    monitors_file: str | None = None
    #: Derive stage visits and scores in this process (its derive loop). Off (``serve --no-derive``): a receiver
    #: and API only, on a lake whose ``journeyscope derive`` workers do it (docs/deployment.md).
    derive: bool = True
    #: Score stage visits with the local evaluators as they close (online scoring in the derive loop).
    evaluate_online: bool = True
    #: The largest share of a core's CPU time online scoring takes in the derive loop (it rests in between).
    evaluate_share: float = 0.5
    #: Seconds between retention runs (when the privacy policy sets ``[retention] max_age``).
    retention_interval_s: float = 3600.0
    #: Seconds between refreshes of the stage signals the API serves from memory.
    signals_refresh_s: float = 1.0

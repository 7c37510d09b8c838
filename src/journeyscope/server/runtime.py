"""What the server process owns for one warehouse file while it runs: the file and its write door.

The warehouse file has one writer (DuckDB allows one writing process): this
process. Readers in other processes either ask the HTTP API, or read a
snapshot the writer made (:meth:`journeyscope.warehouse.Warehouse.snapshot`,
``POST /v1/ingest/snapshot``), which is an ordinary DuckDB file they may open
read-only while the server keeps writing.
"""

from __future__ import annotations

import logging

from journeyscope.server.priority import lower_database_threads, lower_this_thread
from journeyscope.server.settings import ServerSettings
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.writer import LAKE_COMMIT_WAIT_S, Writer

logger = logging.getLogger(__name__)


class Runtime:
    """Opens and closes, in order, a warehouse file and its single writer."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.warehouse: Warehouse | None = None
        self.writer: Writer | None = None

    def start(self) -> Runtime:
        """Open the warehouse (migrating it) and start its writer."""
        settings = self.settings
        self.warehouse = Warehouse(settings.db, journey_map=load_journey_map(settings.map_file),
                                   upkeep_journeys=settings.upkeep_journeys)
        lower_database_threads(self.warehouse, settings.db_threads)  # before the writer starts querying
        if settings.db_memory_limit is not None:
            self.warehouse.set_memory_limit(settings.db_memory_limit)
        self.writer = Writer(
            self.warehouse,
            max_queue_spans=settings.queue_max_spans,
            max_batch_spans=settings.write_batch_spans,
            retry_after_s=settings.retry_after_s,
            max_retry_after_s=settings.retry_after_max_s,
            commit_wait_s=(settings.commit_wait_s if settings.commit_wait_s is not None
                           else LAKE_COMMIT_WAIT_S if self.warehouse.lake is not None else 0.0),
            thread_init=lower_this_thread,
        )
        return self

    def stop(self) -> None:
        """Commit what was accepted, checkpoint and close the file."""
        if self.writer is not None:
            if not self.writer.shutdown(timeout_s=60):
                logger.error("journeyscope: the writer did not finish within 60 s")
            self.writer = None
        if self.warehouse is not None:
            self.warehouse.close()
            self.warehouse = None

"""CPU priority for the server's background work, so the API's event loop runs first.

On two cores, the writer's inserts, visit upkeep, online scoring and signal
refreshes are all runnable at once while an orchestrator waits for
``/v1/route``. The operating system shares the cores evenly between runnable
threads, so a request could wait several milliseconds for a core although it
needs only a fraction of one. Background threads and worker processes therefore
lower their own priority (``nice``); the event loop keeps the default, and takes a
core as soon as it has work. Ingest loses nothing but the cores the API uses.

Linux keeps a nice value per thread, so :func:`lower_this_thread` affects only
the calling thread. Elsewhere it lowers nothing (the call is a no-op), because
there ``setpriority`` would lower the whole process, event loop included.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TYPE_CHECKING

from journeyscope import settings

if TYPE_CHECKING:
    from journeyscope.warehouse import Warehouse

__all__ = [
    "BACKGROUND_NICE", "database_threads", "lower_database_threads", "lower_this_process", "lower_this_thread",
]

logger = logging.getLogger(__name__)

#: How much lower than the event loop background work runs (a nice increment):
#: ``$JOURNEYSCOPE_BACKGROUND_NICE``.
BACKGROUND_NICE = settings.load().background_nice


def lower_this_thread(increment: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's priority by ``increment`` (Linux only; a no-op elsewhere)."""
    if increment <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except OSError as exc:  # a sandbox that forbids it: run at the default priority
        logger.debug("journeyscope: cannot lower thread priority: %s", exc)


def lower_this_process(increment: int = BACKGROUND_NICE) -> None:
    """Lower a whole worker process (every thread it starts after this inherits it)."""
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as exc:
        logger.debug("journeyscope: cannot lower process priority: %s", exc)


def database_threads(configured: int | None = None) -> int:
    """Threads per DuckDB query in the server: ``configured``, else one fewer than the cores (at least one).

    On two cores, a query on both starves the event loop of a core however low its priority: the
    API's tail latency under ingest was lower with one (measured with ``benchmarks/bench_api.py``).
    """
    return configured if configured is not None else max(1, (os.cpu_count() or 1) - 1)


def lower_database_threads(warehouse: Warehouse, threads: int | None = None) -> None:
    """Give the database :func:`database_threads` threads, started by a lowered thread (they inherit it).

    DuckDB runs every query on the calling thread plus ``threads - 1`` workers
    of its own, started when the database opens, at the opener's priority. A
    new thread inherits its creator's nice value, so asking for one thread and
    then for the number wanted, from a lowered thread, replaces them with
    lowered ones. Queries the API runs itself still use the caller's thread at
    full priority.
    """
    wanted = database_threads(threads)

    def relaunch() -> None:
        lower_this_thread()
        warehouse.set_threads(1)
        warehouse.set_threads(wanted)

    thread = threading.Thread(target=relaunch, name="journeyscope-lower-db-threads")
    thread.start()
    thread.join()

"""Worker processes for the server's CPU-bound Python: decoding OTLP bodies and scoring stage visits.

Walking a protobuf request into columns in Python is work of about 30 µs a
span, and the local evaluators about a millisecond a visit: a 500-span batch
decoded on the event loop would stall every API request behind it for ~15 ms,
and in a thread the work would still hold the GIL that the event loop and the
writer need. So both go to a small process pool (``--workers``). A decoding
worker returns the batch as Arrow IPC bytes, which the server maps back to a
table without copying. Small bodies (a few spans, under ``inline_below`` bytes)
are decoded in place: the round trip would cost more.

With the compiled OTLP decoder built (``otlp.ACCELERATED``), protobuf bodies
stay in this process: decoding costs about 2 µs a span, less than shipping the
body to a worker and the table back, and the decoder gives back the GIL while
it works, so a body decoded in a thread (``asyncio.to_thread`` for HTTP, the
gRPC handler's own thread) runs alongside the event loop and the writer.
OTLP/JSON bodies, and everything without the compiled decoder, go to the pool.

The pool is started with ``spawn``: the server process holds DuckDB and threads,
which ``fork`` must not copy. A spawned process imports the parent's ``__main__``
again, so a program that embeds the server must guard its entry point with
``if __name__ == "__main__":`` (``journeyscope serve`` and ``python -m
journeyscope`` do). If workers keep dying at start anyway, the pool is given up
and everything is decoded in place, with an error in the log.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import pyarrow as pa

from journeyscope.server.priority import lower_this_process
from journeyscope.warehouse.otlp import ACCELERATED, batch_table, decode_json, decode_protobuf_table

__all__ = ["Decoded", "WorkerPool", "decode_body"]

logger = logging.getLogger(__name__)

#: Pools started again before the server stops using worker processes.
MAX_RESTARTS = 5


@dataclass
class Decoded:
    """The valid spans of one request as a table, and how many spans were refused (with the first reason)."""

    table: pa.Table
    rejected: int = 0
    error_message: str = ""


def decode_body(body: bytes, as_json: bool) -> Decoded:
    """Decode one OTLP request body in this process (raises :class:`InvalidInputError` for a bad one)."""
    decoded = batch_table(decode_json(body)) if as_json else decode_protobuf_table(body)
    return Decoded(decoded.table, decoded.rejected, decoded.error_message)


def _decode_to_ipc(body: bytes, as_json: bool) -> tuple[bytes, int, str]:
    """The worker's side: decode, then hand the table back as one Arrow IPC stream."""
    decoded = decode_body(body, as_json)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, decoded.table.schema) as writer:
        writer.write_table(decoded.table)
    return sink.getvalue().to_pybytes(), decoded.rejected, decoded.error_message


def _follow_parent(parent: int, every_s: float = 1.0) -> None:
    """End this worker once the server that started it is gone (killed with SIGKILL, say): an orphaned
    worker would otherwise wait on its call queue forever, holding its memory."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _start_worker(parent: int) -> None:
    """Each worker process's initializer: below the API in CPU priority, and gone when its server is."""
    lower_this_process()
    threading.Thread(target=_follow_parent, args=(parent,), name="journeyscope-parent-watch", daemon=True).start()


def _warm() -> None:
    """Imports done at pool start, not on the first request."""
    import journeyscope.evaluators  # noqa: F401 - registers the built-in evaluators


class WorkerPool:
    """``workers`` processes for decoding and scoring (0: everything in place, on the caller's thread)."""

    def __init__(self, workers: int, *, inline_below: int = 16 * 1024) -> None:
        self.workers = workers
        self.inline_below = inline_below
        self.offloaded = 0  #: bodies decoded in a worker process
        self.restarts = 0  #: pools started again after a worker died
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = self._start() if workers > 0 else None

    @property
    def executor(self) -> ProcessPoolExecutor | None:
        """The process pool, for other CPU-bound work (scoring); ``None`` when there are no workers."""
        return self._pool

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(os.getpid(),))
        for _ in range(self.workers):
            pool.submit(_warm)
        return pool

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        """A worker died (killed from outside, out of memory): start a new pool, once; after
        ``MAX_RESTARTS`` give up on workers (they cannot start here) and work in place."""
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self.restarts += 1
                if self.restarts > MAX_RESTARTS:
                    logger.error("journeyscope: worker processes died %d times; decoding and scoring in the server "
                                 "process from now on (see the workers' error output above)", self.restarts)
                    self._pool = None
                else:
                    self._pool = self._start()

    async def decode(self, body: bytes, as_json: bool) -> Decoded:
        """Decode ``body``; raises :class:`InvalidInputError` when it is not a valid OTLP request."""
        if ACCELERATED and not as_json:
            if len(body) < self.inline_below:
                return decode_body(body, False)
            return await asyncio.to_thread(decode_body, body, False)
        pool = self._pool_for(body)
        if pool is None:
            return decode_body(body, as_json)
        try:
            answer = await asyncio.get_running_loop().run_in_executor(pool, _decode_to_ipc, body, as_json)
        except BrokenProcessPool:
            self._restart(pool)
            return decode_body(body, as_json)  # this one here, rather than fail the batch
        return self._received(answer)

    def decode_sync(self, body: bytes, as_json: bool = False) -> Decoded:
        """The same for a caller on a plain thread (the gRPC receiver)."""
        if ACCELERATED and not as_json:
            return decode_body(body, False)
        pool = self._pool_for(body)
        if pool is None:
            return decode_body(body, as_json)
        try:
            answer = pool.submit(_decode_to_ipc, body, as_json).result()
        except BrokenProcessPool:
            self._restart(pool)
            return decode_body(body, as_json)
        return self._received(answer)

    def _pool_for(self, body: bytes) -> ProcessPoolExecutor | None:
        """The pool to decode ``body`` in, or ``None`` to decode it here (no workers, or a small body)."""
        pool = self._pool
        return None if pool is None or len(body) < self.inline_below else pool

    def _received(self, answer: tuple[bytes, int, str]) -> Decoded:
        ipc, rejected, message = answer
        self.offloaded += 1
        return Decoded(pa.ipc.open_stream(ipc).read_all(), rejected, message)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

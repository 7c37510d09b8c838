"""One thread per project for the work that runs on the clock: handing buffered routing decisions to the
write door (every ~0.1 s) and retention (hourly). Each job runs to its end before the next starts;
a job that raises is logged and runs again at its next time."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

__all__ = ["Timers"]


class Timers:
    """Jobs run every so often on one thread (``journeyscope-timers``)."""

    def __init__(self, name: str = "journeyscope-timers", thread_init: Callable[[], None] | None = None) -> None:
        self._thread_init = thread_init
        self._jobs: list[tuple[float, int, float, str, Callable[[], object]]] = []  # (due, order, every, what, job)
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def every(self, interval_s: float, what: str, job: Callable[[], object], *, at_once: bool = False) -> None:
        """Run ``job`` every ``interval_s`` (the first time now with ``at_once``, else after one interval)."""
        with self._wake:
            due = time.monotonic() + (0.0 if at_once else interval_s)
            heapq.heappush(self._jobs, (due, next(self._order), interval_s, what, job))
            self._wake.notify()

    def start(self) -> Timers:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        while True:
            with self._wake:
                while not self._stopping and (not self._jobs or self._jobs[0][0] > time.monotonic()):
                    self._wake.wait(self._jobs[0][0] - time.monotonic() if self._jobs else None)
                if self._stopping:
                    return
                _, order, every, what, job = heapq.heappop(self._jobs)
            try:
                job()
            except Exception:  # noqa: BLE001 - one failed run; the job runs again at its next time
                logger.exception("journeyscope: %s failed", what)
            with self._wake:
                heapq.heappush(self._jobs, (time.monotonic() + every, order, every, what, job))

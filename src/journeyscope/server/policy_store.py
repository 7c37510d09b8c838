"""The routing policies in force, reloaded from their file without a restart.

A background check looks at the file's modification time every second; a
changed file is parsed and, if valid, replaces the policies in force (the
hysteresis memory starts over, since thresholds may have moved). An invalid
file is rejected with its error kept for ``GET /v1/policies`` and the log, and
the previous policies stay in force.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from journeyscope.errors import ConfigError
from journeyscope.server.priority import lower_this_thread
from journeyscope.tomlconfig import FileWatch
from journeyscope.server.routing.decide import HysteresisMemory
from journeyscope.server.routing.policy import PolicySet, load_policies

logger = logging.getLogger(__name__)


@dataclass
class PolicyStore:
    """Holds the active :class:`PolicySet`, its hysteresis memory, and the last reload error."""

    path: str | None
    active: PolicySet = field(init=False)
    memory: HysteresisMemory = field(default_factory=dict)
    last_error: str | None = None
    _watch: FileWatch | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.active = load_policies(self.path)  # an invalid file at start is a start-up error
        self._watch = FileWatch(self.path) if self.path is not None else None

    def reload(self) -> bool:
        """Re-read the file; ``True`` when new policies took effect."""
        if self.path is None:
            return False
        try:
            candidate = load_policies(self.path)
        except ConfigError as exc:
            self.last_error = str(exc)
            logger.error("journeyscope: policy file rejected, previous policies stay in force: %s", exc)
            return False
        with self._lock:
            changed = candidate.digest != self.active.digest
            self.active = candidate
            if changed:
                self.memory.clear()
            self.last_error = None
        logger.warning("journeyscope: routing policies %s loaded from %s", candidate.version, self.path)
        return changed

    def watch(self, interval_s: float = 1.0) -> None:
        """Start the background check for a changed file (loaded once it has settled: :class:`FileWatch`)."""
        watch = self._watch
        if watch is None:
            return

        def loop() -> None:
            lower_this_thread()
            while not self._stop.wait(interval_s):
                if watch.changed():
                    self.reload()

        threading.Thread(target=loop, name="journeyscope-policies", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def describe(self) -> dict[str, Any]:
        p = self.active
        return {
            "version": p.version,
            "source": p.source,
            "digest": p.digest,
            "stage_rules": [vars(r) for r in p.stage_rules],
            "journey_rules": [vars(r) for r in p.journey_rules],
            "recommend_only": sorted(p.recommend_only),
            "last_error": self.last_error,
        }

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
from pathlib import Path
from typing import Any

from journeyscope.errors import ConfigError
from journeyscope.server.priority import lower_this_thread
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
    _mtime: tuple[int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.active = load_policies(self.path)  # an invalid file at start is a start-up error
        self._mtime = self._current_mtime()

    def _current_mtime(self) -> tuple[int, int] | None:
        """The file's modification time and size: a change to either is a new file."""
        if self.path is None:
            return None
        try:
            stat = Path(self.path).stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

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
        """Start the background check for a changed file.

        A change is loaded once the file has stood still for a check: an editor or a script that truncates and
        then writes the file would otherwise be read in between, as an empty (valid, rule-less) policy file.
        """

        def loop() -> None:
            lower_this_thread()
            seen = self._mtime
            while not self._stop.wait(interval_s):
                mtime = self._current_mtime()
                if mtime is not None and mtime != self._mtime and mtime == seen:
                    self._mtime = mtime
                    self.reload()
                seen = mtime

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

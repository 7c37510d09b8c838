"""Reading a TOML configuration file so that every problem names the file and the line.

The journey map, the privacy policy, monitors, routing policies and API keys are all TOML files a
person edits by hand; each reader parses with :func:`parse_toml` (or :func:`read_toml` for a path)
and names the line of a bad value with :meth:`TomlText.where`. A file that cannot be read, or is
not TOML, is one :class:`~journeyscope.errors.ConfigError` saying where.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journeyscope.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml
    except ImportError:
        _toml = None

__all__ = ["FileWatch", "TomlText", "parse_toml", "read_config_text", "read_toml"]


@dataclass(frozen=True)
class TomlText:
    """A parsed TOML file: its name, its text and its document, able to say which line holds what."""

    source: str
    text: str
    document: dict[str, Any]

    def line(self, needle: str, occurrence: int = 0, after: str | None = None) -> str:
        """``"line N"`` of the ``occurrence``-th line holding ``needle`` outside a comment (at or below the
        first line holding ``after``, when given), else ``"the file"``."""
        seen = -1
        anchored = after is None
        for number, text in enumerate(self.text.splitlines(), 1):
            anchored = anchored or (after is not None and after in text)
            if anchored and needle in text.split("#", 1)[0]:
                seen += 1
                if seen == occurrence:
                    return f"line {number}"
        return "the file"

    def where(self, needle: str, occurrence: int = 0, after: str | None = None) -> str:
        """``"SOURCE, line N"``: the prefix of a message about the value at ``needle``."""
        return f"{self.source}, {self.line(needle, occurrence, after)}"


def _error_line(exc: Exception, text: str) -> str:
    lineno = getattr(exc, "lineno", None)
    if lineno is None:
        match = re.search(r"line (\d+)", str(exc))
        lineno = int(match.group(1)) if match else None
        if lineno is None and "end of document" in str(exc):
            lineno = max(1, len(text.splitlines()))
    return f"line {lineno}" if lineno else "somewhere"


def parse_toml(text: str, source: str) -> TomlText:
    """``text`` parsed; ConfigError ``"SOURCE, line N: not valid TOML (...)"`` when it is not TOML."""
    if _toml is None:  # pragma: no cover - Python 3.10 without tomli
        raise ConfigError(f"{source}: reading TOML on Python 3.10 needs 'pip install tomli'")
    try:
        document = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"{source}, {_error_line(exc, text)}: not valid TOML ({exc})") from None
    return TomlText(source, text, document)


def read_config_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of the ``what`` file at ``path`` (e.g. ``"key file"``); ConfigError when it cannot be read."""
    target = Path(path)
    try:
        return target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {target}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {what} {target}: not UTF-8 text") from None


def read_toml(path: str | Path, what: str) -> TomlText:
    """The TOML ``what`` file at ``path``, read and parsed (see :func:`read_config_text`, :func:`parse_toml`)."""
    return parse_toml(read_config_text(path, what), str(path))


class FileWatch:
    """Tells when a config file has changed and settled, for servers that reload it while running.

    A change (modification time or size) is reported once the file has stood still for one check: an editor or a
    script that truncates and then writes the file would otherwise be read in between, as an empty file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._loaded = self._seen = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def changed(self) -> bool:
        """Check once; ``True`` when the file differs from what was last reported and is unchanged since the
        previous check (then the caller reloads it)."""
        current = self._stat()
        settled = current is not None and current != self._loaded and current == self._seen
        self._seen = current
        if settled:
            self._loaded = current
        return settled

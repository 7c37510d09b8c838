"""API keys: who may send spans to, or read from, which project.

Keys live in a TOML file (``journeyscope serve --keys FILE`` or
``$JOURNEYSCOPE_KEYS``) as SHA-256 digests, never in clear text::

    [projects.acme]
    db = "acme.duckdb"                # each project has its own warehouse file

    [[keys]]
    name = "acme-agents"              # shown in logs and the decision log, never the token
    project = "acme"
    scopes = ["ingest"]               # ingest | read | write | admin
    sha256 = "9f86d081884c7d65..."    # journeyscope keys new --project acme --scopes ingest

A project's data sits in its own DuckDB file, so a key can only ever reach
the warehouse of its project: isolation by construction rather than by a
``WHERE project = ?`` that one forgotten query could miss. Without a key file
the server is local-only: it accepts requests from loopback addresses only and
says so at start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from journeyscope.errors import ConfigError
from journeyscope.tomlconfig import parse_toml, read_config_text

#: ``write``: data people give through the API that is not telemetry (reviews of evaluator results).
SCOPES = frozenset({"ingest", "read", "write", "admin"})
DEFAULT_PROJECT = "default"


@dataclass(frozen=True)
class ApiKey:
    """One key: its name, project and scopes (the token itself is only ever a digest here)."""

    name: str
    project: str
    scopes: frozenset[str]
    sha256: str


@dataclass(frozen=True)
class KeyRing:
    """The keys and projects of a key file."""

    keys: tuple[ApiKey, ...]
    projects: dict[str, str | None]  # project -> warehouse path (None: the server's --db)

    def identify(self, token: str) -> ApiKey | None:
        """The key whose digest matches ``token`` (constant-time comparison), or ``None``."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def new_token() -> tuple[str, str]:
    """A fresh random token and its SHA-256 digest (what goes in the key file)."""
    token = "js_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _toml_string(value: str) -> str:
    """``value`` as a TOML basic string: JSON's escapes are TOML's, and TOML also wants DEL escaped."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def key_entry(name: str, project: str, scopes: list[str], digest: str) -> str:
    """The ``[[keys]]`` table of a key file for one key, every value escaped (:func:`parse_keys` reads it back)."""
    return "\n".join([
        "[[keys]]",
        f"name = {_toml_string(name)}",
        f"project = {_toml_string(project)}",
        f"scopes = [{', '.join(_toml_string(s) for s in scopes)}]",
        f"sha256 = {_toml_string(digest)}",
    ])


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if there is one."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine (the only clients a key-less server accepts).

    On a dual-stack socket (bound to ``::``) an IPv4 client shows as ``::ffff:127.0.0.1``: the address
    it maps is what counts.
    """
    if host in (None, "localhost", "testclient"):
        return host is not None
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def parse_keys(text: str, source: str = "keys.toml") -> KeyRing:
    """Validate a key file; problems are :class:`ConfigError` naming the line."""
    toml = parse_toml(text, source)
    doc = toml.document
    projects: dict[str, str | None] = {DEFAULT_PROJECT: None}
    for name, spec in (doc.get("projects") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("db", ""), str):
            raise ConfigError(f"{source}, {toml.line(f'projects.{name}')}: [projects.{name}] needs db = \"FILE\"")
        projects[name] = spec.get("db")
    keys = []
    for i, raw in enumerate(doc.get("keys") or []):
        where = f"{source}, {toml.line('[[keys]]', i)} (key {i + 1})"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table")
        name, project, scopes, digest = raw.get("name"), raw.get("project", DEFAULT_PROJECT), raw.get("scopes"), raw.get("sha256")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: needs a name")
        if project not in projects:
            raise ConfigError(f"{where}: project {project!r} is not declared under [projects]")
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
            raise ConfigError(f"{where}: scopes must be a non-empty list of {', '.join(sorted(SCOPES))}")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}: sha256 must be the 64-character hex digest of the token")
        keys.append(ApiKey(name, project, frozenset(scopes), digest))
    if len({k.sha256 for k in keys}) != len(keys):
        raise ConfigError(f"{source}: two keys share a token")
    return KeyRing(tuple(keys), projects)


def load_keys(path: str | Path | None) -> KeyRing | None:
    """The key file at ``path`` (``None``: no keys, local-only server)."""
    if path is None:
        return None
    target = Path(path)
    return parse_keys(read_config_text(target, "key file"), str(target))

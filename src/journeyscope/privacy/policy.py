"""The privacy policy: what counts as PII and what happens to it, on by default.

A fresh install masks every built-in type (:data:`~journeyscope.privacy.detectors.BUILTIN_TYPES`)
and the values of a few standard personal attributes. Anything weaker is an
explicit setting that the compliance view shows: a ``privacy.toml`` file, or
``JOURNEYSCOPE_PRIVACY`` (a path to such a file, or an inline ``email=hash,ip=off``)::

    [types]                 # per built-in type: mask | hash | drop | off
    email = "hash"
    ip = "off"

    [attributes]            # attribute keys whose whole value is personal
    "user.email" = "hash"

    [[patterns]]            # your own identifiers
    name = "order_number"
    regex = 'ORD-\\d{6}'
    action = "hash"

    [retention]
    max_age = "90d"

``hash`` needs a secret in ``JOURNEYSCOPE_PII_KEY`` (at least 16 characters). Without
one it fails closed: the type is masked, and the policy says so. The journey keys
(:data:`PROTECTED_KEYS`) are join keys and are never redacted, whatever the policy says.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

from journeyscope import conventions as cv
from journeyscope import settings
from journeyscope.errors import ConfigError
from journeyscope.privacy.detectors import BUILTIN_TYPES
from journeyscope.tomlconfig import TomlText, parse_toml, read_config_text

DEFAULT_POLICY_FILE: Final = "privacy.toml"
POLICY_ENV: Final = "JOURNEYSCOPE_PRIVACY"
KEY_ENV: Final = "JOURNEYSCOPE_PII_KEY"
MIN_KEY_LENGTH: Final = 16

#: Join keys: stored as-is so journeys, stages and customers still join (and can be erased by id).
#: Use pseudonymous ids for them; an e-mail address as ``customer.id`` stays an e-mail address.
PROTECTED_KEYS: Final = frozenset(
    (*cv.JOURNEY_KEYS, "session.id", "gen_ai.conversation.id", "user.id", cv.TURN_ROLE, cv.OUTCOME_ATTRIBUTE)
)

#: Values the server generates itself (a routing decision's signals, rules and reason: numbers and
#: policy names, no customer text): not scanned, which would cost more than deciding did.
GENERATED_KEYS: Final = cv.ROUTE_GENERATED

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Action(str, Enum):
    """What happens to a detected value."""

    MASK = "mask"  #: replaced by ``[EMAIL]``
    HASH = "hash"  #: replaced by ``[EMAIL:3fa9c1d2e4b5]``, a keyed HMAC: equal values, equal tokens
    DROP = "drop"  #: an attribute is removed; inside text the value becomes ``[REDACTED]``
    OFF = "off"  #: not redacted (an explicit, visible choice)


#: Standard attributes (OTel ``user.*``, ``enduser.id``) whose whole value is personal by default.
DEFAULT_KEYS: Final = {k: Action.MASK for k in ("user.email", "user.full_name", "user.name", "enduser.id")}


@dataclass(frozen=True)
class CustomPattern:
    """A user-configured identifier: ``name`` labels its tokens (``[ORDER_NUMBER]``)."""

    name: str
    regex: re.Pattern[str]
    action: Action


@dataclass(frozen=True)
class PrivacyPolicy:
    """The redaction settings in force; build it with :func:`load_policy` or :func:`parse_policy`."""

    types: dict[str, Action] = field(default_factory=lambda: {t: Action.MASK for t in BUILTIN_TYPES})
    attributes: dict[str, Action] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    patterns: tuple[CustomPattern, ...] = ()
    retention_s: float | None = None
    source: str = "built-in defaults"
    key: bytes | None = field(default=None, repr=False, compare=False)

    def effective(self, action: Action) -> Action:
        """``hash`` without a key fails closed to ``mask``: never clear text."""
        return Action.MASK if action is Action.HASH and self.key is None else action

    @property
    def active(self) -> bool:
        """Whether anything at all is redacted."""
        rules = [*self.types.values(), *self.attributes.values(), *(p.action for p in self.patterns)]
        return any(a is not Action.OFF for a in rules)

    def notes(self) -> list[str]:
        """Warnings the compliance view and the CLI show: types off, hashing without a key."""
        out = [f"{t}: redaction turned off ({self.source})" for t, a in self.types.items() if a is Action.OFF]
        wanted_hash = [t for t, a in self.types.items() if a is Action.HASH]
        wanted_hash += [p.name for p in self.patterns if p.action is Action.HASH]
        wanted_hash += [k for k, a in self.attributes.items() if a is Action.HASH]
        if wanted_hash and self.key is None:
            names = ", ".join(wanted_hash)
            out.append(f"hash configured for {names} but {KEY_ENV} is not set: masked instead")
        return out

    def describe(self) -> dict[str, Any]:
        """The policy as plain data for the compliance view and the audit log (never the key)."""

        def rule(action: Action) -> dict[str, str]:
            return {"configured": action.value, "effective": self.effective(action).value}

        return {
            "source": self.source,
            "active": self.active,
            "types": {t: rule(a) for t, a in self.types.items()},
            "types_off": sorted(t for t, a in self.types.items() if a is Action.OFF),
            "attributes": {k: rule(a) for k, a in sorted(self.attributes.items())},
            "patterns": [{"name": p.name, "regex": p.regex.pattern, **rule(p.action)} for p in self.patterns],
            "protected_keys": sorted(PROTECTED_KEYS),
            "generated_keys": sorted(GENERATED_KEYS),
            "hash_key_set": self.key is not None,
            "retention_days": None if self.retention_s is None else round(self.retention_s / 86400, 3),
            "notes": self.notes(),
        }

    def digest(self) -> str:
        """A fingerprint of what the policy does (changes when any rule or the key's presence does)."""
        data = {k: v for k, v in self.describe().items() if k != "source"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_AGE_UNITS = {None: 86400, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(value: object, where: str = "max age") -> float:
    """``"90d"``, ``"12h"``, ``"2w"`` (a bare number is days) as seconds; used by retention too."""
    match = _AGE.match(str(value)) if not isinstance(value, bool) else None
    seconds = float(match.group(1)) * _AGE_UNITS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise ConfigError(f"{where}: expected a positive age like \"90d\", \"12h\" or \"2w\", got {value!r}")
    return seconds


def _action(value: Any, where: str) -> Action:
    try:
        return Action(str(value).strip().lower())
    except ValueError:
        raise ConfigError(f"{where}: unknown action {value!r}; use one of mask, hash, drop, off") from None


def _type(name: str, where: str) -> str:
    if name not in BUILTIN_TYPES:
        raise ConfigError(f"{where}: unknown PII type {name!r}; known types: {', '.join(BUILTIN_TYPES)}")
    return name


def _key_from_env() -> bytes | None:
    raw = settings.load().pii_key
    if not raw:
        return None
    if len(raw) < MIN_KEY_LENGTH:
        raise ConfigError(f"{KEY_ENV} is {len(raw)} characters long; use a random secret of at least "
                          f"{MIN_KEY_LENGTH} (e.g. 'openssl rand -hex 32')")
    return raw.encode()


def parse_policy(text: str, source: str = DEFAULT_POLICY_FILE, *, key: bytes | None = None) -> PrivacyPolicy:
    """Parse ``privacy.toml`` text; any problem is a :class:`ConfigError` naming the file and line."""
    toml = parse_toml(text, source)
    doc = toml.document
    for section in doc:
        if section not in ("types", "attributes", "patterns", "retention"):
            raise ConfigError(f"{source}, {toml.line(section)}: unknown section {section!r}; "
                              "expected [types], [attributes], [[patterns]] or [retention]")
    types = {t: Action.MASK for t in BUILTIN_TYPES}
    for name, value in _table(toml, "types").items():
        where = f"{source}, {toml.line(name, after='[types]')}"
        types[_type(name, where)] = _action(value, where)
    attributes = dict(DEFAULT_KEYS)
    for name, value in _table(toml, "attributes").items():
        where = f"{source}, {toml.line(name, after='[attributes]')}"
        if name in PROTECTED_KEYS:
            raise ConfigError(f"{where}: {name!r} is a journey join key and is never redacted "
                              "(use a pseudonymous id there instead)")
        attributes[name] = _action(value, where)
    patterns = _patterns(doc.get("patterns", []), toml)
    retention_s = None
    if "retention" in doc:
        spec = _table(toml, "retention")
        unknown = set(spec) - {"max_age"}
        if unknown:
            name = sorted(unknown)[0]
            where = f"{source}, {toml.line(name, after='[retention]')}"
            raise ConfigError(f"{where}: unknown setting {name!r}; expected max_age")
        if "max_age" in spec:
            where = f"{source}, {toml.line('max_age', after='[retention]')}: max_age"
            retention_s = parse_age(spec["max_age"], where)
    return PrivacyPolicy(types, attributes, patterns, retention_s, source, key)


def _table(toml: TomlText, name: str) -> dict[str, Any]:
    value = toml.document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{toml.where(name)}: '{name}' must be a table ([{name}])")
    return value


def _patterns(raw: Any, toml: TomlText) -> tuple[CustomPattern, ...]:
    if not isinstance(raw, list):
        where = f"{toml.source}, {toml.line('patterns')}"
        raise ConfigError(f"{where}: use [[patterns]] tables for custom patterns")
    out: list[CustomPattern] = []
    seen: set[str] = set()
    for spec in raw:
        name = spec.get("name") if isinstance(spec, dict) else None
        anchor = "[[patterns]]"
        line = toml.line(repr(name)[1:-1], after=anchor) if name else toml.line(anchor)
        where = f"{toml.source}, {line}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: a pattern needs a name of lower-case letters, digits and '_' "
                              f"(it labels the tokens), got {name!r}")
        if name in BUILTIN_TYPES or name in seen:
            raise ConfigError(f"{where}: pattern name {name!r} is already taken")
        seen.add(name)
        regex = spec.get("regex")
        if not isinstance(regex, str) or not regex:
            raise ConfigError(f"{where}: pattern {name!r} needs a 'regex' string")
        rwhere = f"{toml.source}, {toml.line('regex', after=repr(name)[1:-1])}"
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"{rwhere}: pattern {name!r} is not a valid regular expression ({exc})") \
                from None
        if compiled.search(""):
            raise ConfigError(f"{rwhere}: pattern {name!r} matches the empty string")
        unknown = set(spec) - {"name", "regex", "action"}
        if unknown:
            raise ConfigError(f"{where}: pattern {name!r} has unknown setting {sorted(unknown)[0]!r}")
        out.append(CustomPattern(name, compiled, _action(spec.get("action", "mask"), where)))
    return tuple(out)


def parse_inline(spec: str, source: str = POLICY_ENV, *, key: bytes | None = None) -> PrivacyPolicy:
    """``"email=hash,ip=off"``, ``"off"`` (every built-in type off) or ``"on"`` (the defaults)."""
    text = spec.strip()
    if text.lower() in ("on", "default", "defaults", ""):
        return PrivacyPolicy(source=source, key=key)
    if text.lower() == "off":
        return PrivacyPolicy(types={t: Action.OFF for t in BUILTIN_TYPES},
                             attributes={k: Action.OFF for k in DEFAULT_KEYS}, source=source, key=key)
    types = {t: Action.MASK for t in BUILTIN_TYPES}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        where = f"{source} item {item.strip()!r}"
        if not sep:
            raise ConfigError(f"{where}: expected TYPE=ACTION (e.g. email=hash), 'on', 'off' or a .toml path")
        types[_type(name.strip(), where)] = _action(value, where)
    return PrivacyPolicy(types=types, source=source, key=key)


def load_policy(path: str | Path | None = None) -> PrivacyPolicy:
    """The policy in force: ``path``, else ``$JOURNEYSCOPE_PRIVACY``, else ``./privacy.toml``, else defaults.

    Read once when a process starts writing (the warehouse, the exporter); a bad file is
    a :class:`ConfigError` then, not a silent fallback to weaker settings.
    """
    key = _key_from_env()
    env = settings.load().privacy
    if path is None and env is not None:
        if not (env.strip().endswith(".toml") or Path(env).is_file()):
            return parse_inline(env, key=key)
        path = env
    if path is None:
        if not Path(DEFAULT_POLICY_FILE).is_file():
            return PrivacyPolicy(key=key)
        path = DEFAULT_POLICY_FILE
    return parse_policy(read_config_text(path, "privacy policy"), str(path), key=key)

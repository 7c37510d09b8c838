"""Apply a policy to one text or one attribute map: the value-level engine.

:class:`Redactor` is shared by the columnar batch redaction (warehouse ingest) and
the in-process span exporter, so a value is redacted the same way wherever it is
seen and a hashed token joins across stages, processes and write paths.

Fail closed: any error while redacting a value turns that value into
``[REDACTION_FAILED]`` (counted as ``redaction_failed``), never into clear text, and
never stops the rest of the batch.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from journeyscope.privacy.detectors import (
    BUILTIN_TYPES,
    CARD,
    EMAIL,
    IBAN,
    IP,
    NATIONAL_ID,
    PHONE,
    TOKEN_RE,
    find_pii,
)
from journeyscope.privacy.policy import GENERATED_KEYS, PROTECTED_KEYS, Action, PrivacyPolicy

logger = logging.getLogger(__name__)

FAILED: Final = "[REDACTION_FAILED]"
DROPPED: Final = "[REDACTED]"
FAILED_TYPE: Final = "redaction_failed"
#: Integers this long may be a card or phone number stored as a number.
_LONG_INT: Final = 10**7

#: Counts of (pii_type, action) in one value; never the values themselves.
Counts = Counter[tuple[str, str]]
_Frozen = tuple[tuple[tuple[str, str], int], ...]  #: Counts as a cacheable tuple


def _normal(pii_type: str, value: str) -> str:
    """The form that is hashed, so that spellings of one value give one token."""
    if pii_type == EMAIL:
        return value.strip().lower()
    if pii_type == PHONE:
        digits = "".join(c for c in value if c.isdigit())
        return digits[2:] if value.lstrip().startswith("00") else digits
    if pii_type in (CARD, IBAN, NATIONAL_ID):
        return "".join(c for c in value if c.isalnum()).upper()
    if pii_type == IP:
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value
    return value.strip()


class Redactor:
    """A compiled :class:`PrivacyPolicy`: redacts texts and attribute maps, counting what it did.

    Texts are memoised (bounded): a turn's text is stored both as ``journey.turn.text``
    and in the ``turns`` column, and resource maps repeat on every span of a process.
    """

    def __init__(self, policy: PrivacyPolicy, cache_size: int = 32768) -> None:
        self.policy = policy
        self._actions: dict[str, Action] = {}
        for name, action in policy.types.items():
            self._actions[name] = policy.effective(action)
        for pattern in policy.patterns:
            self._actions[pattern.name] = policy.effective(pattern.action)
        on = {name for name, action in self._actions.items() if action is not Action.OFF}
        self._types = frozenset(t for t in BUILTIN_TYPES if t in on)
        self._custom = tuple((p.name, p.regex) for p in policy.patterns if p.name in on)
        self._keys = {k: policy.effective(a) for k, a in policy.attributes.items() if a is not Action.OFF}
        self.active = bool(self._types or self._custom or self._keys)
        self.text_active = bool(self._types or self._custom)
        self.keys = frozenset(self._keys)
        self._cached: Callable[[str], tuple[str, _Frozen]] = lru_cache(cache_size)(self._text_uncached)

    # -- tokens ----------------------------------------------------------------------------
    def token(self, pii_type: str, value: str, action: Action) -> str:
        """What replaces a value: ``[EMAIL]``, ``[EMAIL:3fa9c1d2e4b5]`` or ``[REDACTED]``."""
        if action is Action.DROP:
            return DROPPED
        label = pii_type.upper()
        if action is Action.HASH and self.policy.key is not None:
            message = f"{pii_type}\x00{_normal(pii_type, value)}".encode()
            return f"[{label}:{hmac.new(self.policy.key, message, hashlib.sha256).hexdigest()[:12]}]"
        return f"[{label}]"

    # -- text --------------------------------------------------------------------------------
    def text(self, value: str) -> tuple[str, Counts | None]:
        """``value`` with every enabled PII type replaced, and what was replaced (``None``: nothing)."""
        if not self.text_active:
            return value, None
        try:
            out, counts = self._cached(value)
        except Exception:  # noqa: BLE001 - fail closed, keep the batch
            logger.exception("journeyscope: redacting a text failed; it is stored as %s", FAILED)
            return FAILED, Counter({(FAILED_TYPE, "failed"): 1})
        return out, (Counter(dict(counts)) if counts else None)

    def _text_uncached(self, value: str) -> tuple[str, _Frozen]:
        counts: Counts = Counter()
        # Replacing a value can expose its neighbour ("a@b.com+44 7700 900123": the phone only stands
        # alone once the e-mail is a token), so passes repeat until nothing more is found.
        for _ in range(4):
            found = find_pii(value, self._types, self._custom)
            if not found:
                break
            parts: list[str] = []
            last = 0
            for f in found:
                action = self._actions[f.pii_type]
                parts.append(value[last:f.start])
                parts.append(self.token(f.pii_type, value[f.start:f.end], action))
                counts[(f.pii_type, action.value)] += 1
                last = f.end
            parts.append(value[last:])
            value = "".join(parts)
        else:
            raise ValueError("redaction did not settle")  # fail closed: the caller stores FAILED
        return value, tuple(counts.items())

    # -- attribute maps ----------------------------------------------------------------------
    def attributes(self, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], Counts | None]:
        """An attribute map redacted key by key; journey keys untouched; ``drop`` removes the key.

        A string value is redacted as text (array items one by one); a value that
        was nothing but one dropped PII value is removed with its key. A long
        integer is read as its digits (a card number sent as a number).
        """
        out: dict[str, Any] = {}
        counts: Counts = Counter()
        for key, value in attrs.items():
            if key in PROTECTED_KEYS or key in GENERATED_KEYS:
                out[key] = value
                continue
            try:
                rule = self._keys.get(key)
                if rule is not None and isinstance(value, str) and TOKEN_RE.fullmatch(value):
                    out[key] = value  # redacted already (in the agent's process): never twice
                    continue
                if rule is not None:
                    counts[(key, rule.value)] += 1
                    if rule is not Action.DROP:
                        out[key] = self.token(key, value if isinstance(value, str) else repr(value), rule)
                    continue
                new, drop = self._value(value, counts)
                if not drop:
                    out[key] = new
            except Exception:  # noqa: BLE001 - fail closed for this attribute only
                logger.exception("journeyscope: redacting attribute %r failed; stored as %s", key, FAILED)
                out[key] = FAILED
                counts[(FAILED_TYPE, "failed")] += 1
        return out, (counts or None)

    def _value(self, value: Any, counts: Counts) -> tuple[Any, bool]:
        """(redacted value, whether the attribute is to be dropped)."""
        if isinstance(value, str):
            new, c = self.text(value)
            if c:
                counts.update(c)
            return new, new == DROPPED
        if isinstance(value, (list, tuple)):
            return [self._value(v, counts)[0] for v in value], False
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _LONG_INT:
            new, c = self.text(str(value))
            if c:
                counts.update(c)
                return new, new == DROPPED
        if isinstance(value, dict):
            inner, c = self.attributes(value)
            if c:
                counts.update(c)
            return inner, False
        return value, False

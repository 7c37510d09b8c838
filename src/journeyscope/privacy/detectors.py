"""Where PII sits in a piece of text: the built-in detectors and their validators.

Each built-in type is a regular expression that proposes candidates and, where a
checksum or a numbering rule exists, a validator that throws out look-alikes
(a card number must pass Luhn, an IBAN mod-97, an SSN must not use an area the
SSA never issues). Context-free text is ambiguous, so every rule below says
which formats it accepts and, as importantly, which it refuses on purpose:

``email``        local@domain.tld (ASCII; a TLD of letters, so ``pkg@1.2.3`` is not one; an SSH
                 remote ``git@github.com:org/repo`` is not one either).
``phone``        international ``+CC ...`` / ``00CC ...`` (8-15 digits); North American
                 ``(415) 555-0134`` / ``415-555-0134`` (separators required); national
                 trunk-prefixed ``020 7946 0958`` / ``07700 900123`` (10-11 digits from 0, bare
                 11-digit ``07...``/``01...``/``02...`` too). Bare digit runs otherwise are not
                 phones: they are order ids, tracking and account numbers.
``card``         13-19 digits, plain or in groups of four (Amex 4-6-5), Luhn-valid, a length that
                 fits the issuer its leading digits name (Visa 13/16/19, Amex 15, Mastercard 16,
                 ...), so a 15-digit IMEI (also Luhn) is not taken for a Visa card.
``iban``         upper-case country code + check digits + BBAN, length per country, mod-97 = 1.
``national_id``  US SSN written ``123-45-6789`` or ``123 45 6789`` (areas 000, 666 and
                 9xx, group 00 and serial 0000 refused; bare 9 digits are not taken);
                 UK National Insurance number ``QQ 12 34 56 C`` (official prefix letters,
                 upper case; the prefixes HMRC never issues, e.g. ``QQ`` of its examples, refused).
``ip``           IPv4 (octets <= 255; not after ``v``/``version``, not inside a longer
                 dotted number) and IPv6 (validated by :mod:`ipaddress`); loopback and
                 unspecified addresses are not personal and are left alone.

Redaction tokens already in a text (``[EMAIL]``, ``[PHONE:3fa9c1d2e4b5]``) are never
matched again, so redacting twice changes nothing.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Final

EMAIL: Final = "email"
PHONE: Final = "phone"
CARD: Final = "card"
IBAN: Final = "iban"
NATIONAL_ID: Final = "national_id"
IP: Final = "ip"

#: Built-in types in the order overlaps are settled (earlier wins at equal length).
BUILTIN_TYPES: Final = (EMAIL, IBAN, CARD, NATIONAL_ID, PHONE, IP)

#: A token left by a previous redaction: never redacted again.
TOKEN_RE: Final = re.compile(r"\[[A-Z][A-Z0-9_.]*(?::[0-9a-f]{12})?\]")

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![A-Za-z_-]|:[\w/~])"  # not an SSH remote (git@github.com:org/repo)
)
_PHONE_INTL = re.compile(r"(?<![\w+])(?:\+|\b00)[1-9][\d \t().-]{6,22}\d(?![\w-])")
_PHONE_NANP = re.compile(
    r"(?<![\w+.-])(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}(?![\w-])"
)
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+.,-])(?:\(0\d{2,4}\)|0\d{2,4})[ -]?\d{3,4}[ -]?\d{3,4}(?![\w-]|[.,]\d)"
)
_CARD = re.compile(r"(?<![\w.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")
_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
_NINO = re.compile(
    r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])"
)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])"
)
_DOUBLE_SEP = re.compile(r"[ \t.()-]{2,}")
_VERSIONISH = re.compile(r"\b(?:version|ver|build|release|firmware|v)\s*$", re.IGNORECASE)

#: IBAN length per country (ISO 13616 registry, SWIFT release 2024).
IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


@dataclass(frozen=True, slots=True)
class Found:
    """One detected PII value: its type and where it sits in the text (``text[start:end]``)."""

    pii_type: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """ISO 7064 mod-97: move the first four characters to the end, letters to numbers, remainder 1."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def card_length_ok(digits: str) -> bool:
    """Whether the length fits the issuer the leading digits name (Visa 13/16/19, Amex 15, ...)."""
    n = len(digits)
    if digits[0] == "4":
        return n in (13, 16, 19)
    if digits[:2] in ("34", "37"):
        return n == 15
    if "51" <= digits[:2] <= "55" or "2221" <= digits[:4] <= "2720":
        return n == 16
    if digits[:2] in ("36", "38", "39") or "300" <= digits[:3] <= "305":
        return 14 <= n <= 19
    return 16 <= n <= 19  # Discover, JCB, UnionPay, Maestro


def _group_ends(raw: str, start: int) -> list[tuple[int, int]]:
    """(end offset in the text, digits so far) after each digit group of ``raw``, longest first.

    A greedy candidate may run on into the next number ("+44 7700 900123 4111 1111 ...");
    trying its prefixes at group boundaries recovers the value instead of losing both.
    """
    ends, digits = [], 0
    for g in re.finditer(r"\d+", raw):
        digits += len(g.group(0))
        ends.append((start + g.end(), digits))
    return ends[::-1]


def _card_ok(raw: str) -> bool:
    digits = _digits(raw)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456" or len(set(digits)) == 1:
        return False
    if not card_length_ok(digits):
        return False
    groups = re.split(r"[ -]", raw)
    if len(groups) > 1 and not (all(len(g) == 4 for g in groups[:-1]) and 1 <= len(groups[-1]) <= 4
                                or [len(g) for g in groups] in ([4, 6, 5], [4, 6, 4])):
        return False
    return luhn_ok(digits)


def _card(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    for end, digits in _group_ends(m.group(0), m.start()):
        if digits < 13:
            break
        if _card_ok(text[m.start():end]):
            return m.start(), end
    return None


def _iban(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    want = IBAN_LENGTHS.get(m.group(0)[:2])
    if want is None:
        return None
    taken, end = 0, m.start()
    for end in range(m.start(), m.end()):
        if text[end] != " ":
            taken += 1
            if taken == want:
                break
    end += 1
    if taken != want or (end < len(text) and text[end].isalnum()):
        return None
    compact = text[m.start():end].replace(" ", "")
    return (m.start(), end) if iban_ok(compact) else None


def _phone_intl(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0)
    skip = 2 if raw.startswith("00") else 0
    for end, digits in _group_ends(raw, m.start()):
        digits -= skip
        if digits < 8:
            break
        if digits > 15:
            continue
        part = text[m.start():end]
        if _DOUBLE_SEP.search(part.replace(") ", ")").replace(" (", "(")):
            continue  # "+1 -- 2": separators in a row are arithmetic or a list, not a number
        return m.start(), end
    return None


def _phone_national(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0)
    digits = _digits(raw)
    if not 10 <= len(digits) <= 11:
        return None
    if raw.isdigit() and not (len(digits) == 11 and digits[1] in "1237"):
        return None  # a bare 10-digit run from 0 is as often an order id as a phone
    return m.span()


def _accept(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    return m.span()


def _ipv4(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    if _VERSIONISH.search(text[max(0, m.start() - 12):m.start()]):
        return None
    if m.group(0).startswith(("127.", "0.")) or m.group(0) == "255.255.255.255":
        return None
    return m.span()


def _ipv6(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    raw = m.group(0)
    if raw.count(":") < 2 or not any(c.isalnum() for c in raw):
        return None
    try:
        address = ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return None if address.is_loopback or address.is_unspecified else m.span()


Validator = Callable[[str, "re.Match[str]"], "tuple[int, int] | None"]

#: (type, pattern, validator, needs): ``needs`` is a character the text must contain for the rule to run.
_RULES: tuple[tuple[str, re.Pattern[str], Validator, str], ...] = (
    (EMAIL, _EMAIL, _accept, "@"),
    (IBAN, _IBAN, _iban, ""),
    (CARD, _CARD, _card, ""),
    (NATIONAL_ID, _SSN, _accept, ""),
    (NATIONAL_ID, _NINO, _accept, ""),
    (PHONE, _PHONE_INTL, _phone_intl, ""),
    (PHONE, _PHONE_NANP, _accept, ""),
    (PHONE, _PHONE_NATIONAL, _phone_national, ""),
    (IP, _IPV4, _ipv4, "."),
    (IP, _IPV6, _ipv6, ":"),
)
_ANY_DIGIT = re.compile(r"\d")


def _scan(pattern: re.Pattern[str], check: Validator, text: str) -> list[tuple[int, int]]:
    """Validated matches; after a rejected candidate the search resumes one character on, not after
    it, so a look-alike cannot swallow a real value that starts inside it."""
    out = []
    pos = 0
    while True:
        m = pattern.search(text, pos)
        if m is None:
            return out
        span = check(text, m)
        if span is not None:
            out.append(span)
            pos = max(span[1], m.start() + 1)
        else:
            pos = m.start() + 1


def find_pii(
    text: str,
    types: frozenset[str] | set[str] | None = None,
    custom: Sequence[tuple[str, re.Pattern[str]]] = (),
) -> list[Found]:
    """Every PII value in ``text``, non-overlapping, in text order.

    ``types`` limits the built-in rules that run (``None``: all); ``custom`` are
    ``(name, pattern)`` pairs of user-configured patterns, which win over the
    built-ins where they overlap (the operator knows their own identifiers).
    Overlaps are settled by position, then longest first, then by rule order
    (custom patterns before the built-ins).
    """
    found: list[tuple[int, int, int, str]] = []  # (start, -length, priority, type)
    for priority, (name, pattern) in enumerate(custom):
        for m in pattern.finditer(text):
            if m.end() > m.start():
                found.append((m.start(), m.start() - m.end(), priority, name))
    if _ANY_DIGIT.search(text) or "@" in text:
        base = len(custom)
        for priority, (name, pattern, check, needs) in enumerate(_RULES, start=base):
            if (types is not None and name not in types) or (needs and needs not in text):
                continue
            for span in _scan(pattern, check, text):
                found.append((span[0], span[0] - span[1], priority, name))
    if not found:
        return []
    tokens = [t.span() for t in TOKEN_RE.finditer(text)] if "[" in text else []
    found.sort()
    out: list[Found] = []
    last_end = -1
    for start, neg_len, _, name in found:
        end = start - neg_len
        if start < last_end or any(s < end and start < e for s, e in tokens):
            continue
        out.append(Found(name, start, end))
        last_end = end
    return out

"""Shared text utilities for the local evaluators: normalising, truncating, splitting, language check.

Everything here is a pure function of strings and is memoised, because one journey's turns are read
by several evaluators and by every later visit's retention check; caching by text keeps the local
engine above 1,000 visits/s without the evaluators sharing state with each other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from journeyscope.evaluators.transcript import StageVisit, Turn

#: Longest turn text the local engine reads. Longer turns are cut to this many characters (head kept)
#: and every result says so in its reason: outcome language sits near the start of a support reply,
#: and an unbounded turn (a pasted log, a runaway generation) must not make one visit cost seconds.
MAX_TURN_CHARS = 2000

#: Roles whose text is conversation. Tool and system turns are context that no party said.
CUSTOMER = "customer"
AGENT = "agent"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

#: Frequent English words; a turn set with enough letters but almost none of these is not English.
_ENGLISH_COMMON = frozenset(
    """the a an and or but to of in on at for with from by is are was were be been am i you we he she it they
    my your our me us this that these those what when where which who how why can could would will should
    do does did have has had not no yes please thanks thank hello hi ok okay sorry want like need get go
    there here some any all just so if then than about also as up out one two time day name""".split()
)


class Cue:
    """A pattern that is looked for only in text containing one of ``needles`` (or starting with one of ``starts``).

    Every match of the pattern contains one of the needles (or, anchored at the start, begins with one of
    ``starts``), so text without any cannot match, and a plain substring test, many times cheaper than a scan
    by ``re`` of a long alternation, settles most turns. The answers are the pattern's own: only the needles
    must be kept true to it (``tests/test_evaluator_cues.py`` checks them on real transcripts).
    """

    __slots__ = ("regex", "needles", "starts")

    def __init__(self, regex: str | re.Pattern[str], needles: tuple[str, ...], starts: tuple[str, ...] = ()) -> None:
        self.regex = re.compile(regex) if isinstance(regex, str) else regex
        self.needles = needles
        self.starts = starts

    @property
    def pattern(self) -> str:
        return self.regex.pattern

    def possible(self, text: str) -> bool:
        """Whether ``text`` may match: it contains a needle or starts with one of ``starts``."""
        for needle in self.needles:
            if needle in text:
                return True
        return bool(self.starts) and text.startswith(self.starts)

    def search(self, text: str) -> re.Match[str] | None:
        for needle in self.needles:  # possible(), inlined: most turns of most calls end here
            if needle in text:
                return self.regex.search(text)
        return self.regex.search(text) if self.starts and text.startswith(self.starts) else None

    def match(self, text: str) -> re.Match[str] | None:
        return self.regex.match(text) if self.possible(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.regex.finditer(text) if self.possible(text) else iter(())


@lru_cache(maxsize=65536)
def words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens (letters, digits, simple contractions)."""
    return tuple(_WORD.findall(text.lower()))


@lru_cache(maxsize=65536)
def sentences(text: str) -> tuple[str, ...]:
    """The text split into sentences (on ., !, ? and line breaks), blanks dropped."""
    return tuple(s.strip() for s in _SENTENCE.split(text) if s and s.strip())


def clip(text: str) -> tuple[str, bool]:
    """``text`` cut to :data:`MAX_TURN_CHARS`, and whether it was cut."""
    if len(text) <= MAX_TURN_CHARS:
        return text, False
    return text[:MAX_TURN_CHARS], True


def quote(text: str, limit: int = 60) -> str:
    """A short quotation of a turn for a human-readable reason."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def looks_english(texts: list[str]) -> bool:
    """Whether a set of turns is plausibly English, the only language the local lexicons cover.

    Short or mostly numeric texts ("639431", "Han") say nothing, so they count as English; a
    verdict of "not English" needs enough letters, mostly outside ASCII or almost no common
    English words.
    """
    joined = " ".join(texts)
    if not joined.isascii():
        letters = _LETTER.findall(joined)
        if len(letters) < 20:
            return True
        if sum(1 for c in letters if not c.isascii()) / len(letters) > 0.3:
            return False
    toks = [w for t in texts for w in words(t)]  # per turn: the evaluators tokenise the same turns again
    n = len(toks) - sum(map(str.isdigit, toks))
    if n < 6:
        return True
    return sum(map(_ENGLISH_COMMON.__contains__, toks)) / n >= 0.08  # no digit string is a common word


class Line(NamedTuple):
    """One conversational turn as the local evaluators read it: role, clipped text, position.

    A named tuple, not a frozen dataclass: every turn of every visit becomes one, and a tuple is made at a
    third of the cost (the fields are the same, immutable, compared by value).
    """

    index: int  #: index of the turn in its visit (tool/system turns included, as stored)
    role: str
    text: str
    low: str  #: lower-cased text
    turn: Turn


@dataclass(frozen=True, slots=True)
class VisitText:
    """A visit's customer and agent turns, clipped, with the facts every local evaluator needs first."""

    lines: tuple[Line, ...]
    truncated: tuple[int, ...]  #: indexes of turns cut to MAX_TURN_CHARS
    english: bool
    customer: tuple[Line, ...]
    agent: tuple[Line, ...]

    def note(self) -> str:
        """A sentence for the reason when input was truncated, else empty."""
        if not self.truncated:
            return ""
        where = ", ".join(str(i) for i in self.truncated[:5])
        return f" (turn(s) {where} truncated to {MAX_TURN_CHARS} characters)"


_READ: dict[int, tuple[StageVisit, VisitText]] = {}
_READ_MAX = 4096


def read_visit(visit: StageVisit) -> VisitText:
    """Clip and index a visit's customer and agent turns; tool, system and blank turns are left out.

    Memoised by object identity (a history visit is re-read for every later visit of its journey, and
    hashing a whole transcript would cost more than reading it); the entry keeps the visit alive, so
    an id is never reused while cached.
    """
    hit = _READ.get(id(visit))
    if hit is not None and hit[0] is visit:
        return hit[1]
    vt = _read_visit(visit)
    if len(_READ) >= _READ_MAX:
        _READ.pop(next(iter(_READ)))
    _READ[id(visit)] = (visit, vt)
    return vt


def _read_visit(visit: StageVisit) -> VisitText:
    lines: list[Line] = []
    cut: list[int] = []
    for i, t in enumerate(visit.turns):
        role = (t.role or "").lower()
        if role not in (CUSTOMER, AGENT) or not t.text or not t.text.strip():
            continue
        text, was_cut = clip(t.text)
        if was_cut:
            cut.append(i)
        lines.append(Line(i, role, text, text.lower(), t))
    return VisitText(tuple(lines), tuple(cut), looks_english([x.text for x in lines]),
                     tuple(x for x in lines if x.role == CUSTOMER), tuple(x for x in lines if x.role == AGENT))



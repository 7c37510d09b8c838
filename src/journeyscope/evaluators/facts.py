"""What kind of fact an agent asks for, and which facts a customer gives: the reading behind retention.

A support agent's questions ask for a small set of fact kinds (a name, a number, a date, a time, a
place, a choice among options, a yes/no preference). The customer's turns carry values of those
kinds. Retention is then a question of kinds: did the agent ask for a kind it had already been
given? These patterns describe how people ask and answer in any support chat; they name no task,
product or dataset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from journeyscope.evaluators.text import Cue, sentences, words
from journeyscope.privacy.detectors import EMAIL, IBAN, PHONE, find_pii

# Questions that offer, close or route rather than ask for a fact ("Can I book it?", "Anything else?").
_OFFER = re.compile(
    r"\b(?:can|could|shall|should|may) i (?:book|reserve|confirm|proceed|go ahead|help|assist|do|schedule|"
    r"place|submit|make|finali[sz]e|cancel|change|send|start|continue|get you|offer|check)\b"
    r"|\bwould you like (?:me\b|to (?:continue|proceed|try|change|hear|play|book|go|see|know|start|search)\b|"
    r"anything\b)"
    r"|\bdo you want me\b|\banything else\b|\bhow (?:can|may) i (?:help|assist)\b|\bwhat can i do\b"
    r"|\bis there anything\b|\bshould i\b|\bwant me to\b|\bdo you (?:know how|require more)\b|\bready\b"
)
# An imperative request for a fact, without a question mark ("Please provide your rank.").
_IMPERATIVE = re.compile(r"^(?:please |kindly )?(?:provide|enter|tell|give|state|specify|type|share|describe|"
                         r"confirm|spell|send)\b|\bplease (?:provide|enter|tell|give|state|specify|share|describe)\b")
# Asking to resolve an ambiguity or mishearing is not a retention failure.
_CLARIFY = re.compile(
    r"\bdid you (?:mean|say)\b|\bdo you mean\b|\bwhich one\b|\bto confirm\b|\bconfirm (?:that|your|whether)\b"
    r"|\bis that (?:correct|right)\b|\bclarify\b|\b(?:didn't|did not|couldn't|could not) (?:catch|get|understand|"
    r"hear|find)\b|\bnot sure (?:i|what)\b|\bunclear\b|\bspell\b|\bcorrect (?:spelling|one)\b|\bor did you\b"
    r"|\bmisunderst|\bsorry,? (?:i|what|which)\b|\binvalid\b|\bdoesn't match|\bdoes not match|\bnot (?:valid|found)"
)

# (fact kind, readable label, pattern over a lower-cased question sentence), most specific first.
_KINDS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (k, label, re.compile(p))
    for k, label, p in (
        ("account_number", "account number", r"\baccount (?:number|no|#|id)"),
        ("pin", "PIN", r"\bpin\b|\bpasscode\b|\bpassword\b"),
        ("date_of_birth", "date of birth", r"date of birth|birth ?date|birthday|when were you born|\bdob\b"),
        ("phone", "phone number", r"\bphone\b|\bmobile\b|cell number|contact number|telephone"),
        ("email", "email address", r"\be-?mail\b"),
        ("address", "address", r"\baddress\b|post ?code|zip ?code"),
        ("reference_id", "reference number",
         r"\b(?:booking|order|reference|flight|ride|confirmation|ticket|case|tracking|reservation|customer|"
         r"member(?:ship)?|policy|invoice|claim|room)\s*(?:id|number|no|code|#)\b|\b(?:id|reference)\b"),
        ("code", "code", r"\bcode\b(?! type)"),
        ("maiden_name", "maiden name", r"maiden name"),
        ("other_name", "name", r"\bname of (?:the|your|a) \w+|\w+'s name\b|\bwho is (?:the|your) \w+"),
        ("name", "name", r"\b(?:your|full|first|last|sur) ?name\b|who (?:am i|i am) (?:speaking|talking)|"
                         r"\bwho is this\b|\bwhat is your name\b|\bname,? please\b|\bunder what name\b"),
        ("count", "number of people or items", r"\bhow many\b|\bfor how many\b|\b(?:party|group) size\b|"
                                              r"\bnumber of (?:people|guests|persons|tickets|rooms|nights)"),
        ("end_time", "end date or time",
         r"\b(?:when|what time|what day|which day|what date)\b.*\b(?:end|finish|wrap|over|until|till|check ?out|"
         r"leav(?:e|ing) again|return|back)\b"),
        ("day", "day or date", r"\b(?:what|which) (?:day|date)\b|\bday of the week\b|\bon what day\b|\bwhat date\b|"
                               r"\bwhen\b.*\b(?:day|date)\b|\bwhich days?\b"),
        ("time", "time", r"\b(?:what|which) time\b|\bwhen\b|\bwhat hour\b|\bhow soon\b"),
        ("origin", "departure location",
         r"\bdepart(?:ing|ure)?\b|\bwhere (?:are|will) you (?:be )?(?:leaving|coming|starting|travel(?:l)?ing) from\b"
         r"|\bfrom where\b|\bwhere\b.*\bfrom\b|\bpick ?-?up\b|\bcurrent(?:ly)? (?:location|at|staying|located)\b"
         r"|\bwhere are you\b"),
        ("destination", "destination", r"\bdestination\b|\bwhere (?:do|would|will) you (?:need|want|like)? ?(?:to )?"
                                       r"(?:go|head|travel|be going)\b|\bdrop ?-?off\b|\bgoing to\b"),
        ("location", "location", r"\b(?:location|city|town|area|region|neighbou?rhood)\b|\bwhere\b"),
        ("description", "description", r"\bdescribe\b|\bsymptoms?\b|\bdetails?\b|\breason\b|\bexplain\b|"
                                       r"\bwhat happened\b|\bwhat (?:is|seems to be) the (?:problem|issue)\b"),
        ("rank", "rank or role", r"\brank\b|\brole\b|\bposition\b|\btitle\b"),
    )
)
#: The readable label of each fact kind, for reasons.
KIND_LABELS = {k: label for k, label, _ in _KINDS}
_CHOICE = re.compile(r"\b(?:what|which|what kind of|what type of|who is your|at what|at which) (?:kind of |type of )?"
                     r"([a-z]{3,})\b")
_NOT_NOUNS = frozenset("would are is do does did can could should will was were have has kind type sort the a an "
                       "you your about else".split())
_STOP = frozenset(
    """a an the and or but to of in on at for with from by is are was were be been am i you we he she it they my
    your our me us this that these those what when where which who how why can could would will should do does
    did have has had please may might shall there here some any just so if then than about also as up out get
    like want need you'd you'll i'd i'll it's that's okay ok alright great sure thanks thank yes no not""".split()
)


#: Facts about the customer themself, which hold for the whole journey. Every other kind (a time, a
#: party size, a destination) is a parameter of one task and is only remembered within its stage.
PERSONAL_KINDS = frozenset({"name", "account_number", "pin", "date_of_birth", "phone", "email", "address",
                            "maiden_name", "reference_id"})
_WH_START = re.compile(r"^(?:(?:ok(?:ay)?|alright|great|sure|right|and|so|also|then|now)[,.!]?\s+)*"
                       r"(?:what|which|where|when|who|whom|whose|how many|how much|at what|for what|on what|"
                       r"in what|from where|for how many)\b")


@dataclass(frozen=True, slots=True)
class Ask:
    """A request for a fact in one agent sentence."""

    kind: str  #: fact kind, or ``"q:<content words>"`` for a question no kind fits
    label: str  #: readable name of the kind, for reasons
    clarifying: bool  #: the agent asks to resolve an ambiguity, which is not a failure
    sentence: str


def _is_request(sentence: str) -> bool:
    low = sentence.lower()
    return (sentence.rstrip().endswith("?") or bool(_IMPERATIVE.search(low))
            or ("please" in low and bool(re.search(r"\byour\b", low))))


@lru_cache(maxsize=65536)
def asks_in(text: str) -> tuple[Ask, ...]:
    """The fact requests in one agent turn (offers, greetings and closers are not requests)."""
    found: list[Ask] = []
    for sent in sentences(text):
        if not _is_request(sent):
            continue
        low = sent.lower().strip()
        if _OFFER.search(low) and not _WH_START.search(low):
            continue
        clarifying = bool(_CLARIFY.search(low))
        for kind, label, pat in _KINDS:
            if pat.search(low):
                found.append(Ask(kind, label, clarifying, sent))
                break
        else:
            m = _CHOICE.search(low)
            if m and m.group(1) not in _NOT_NOUNS:
                found.append(Ask("choice:" + m.group(1), m.group(1), clarifying, sent))
                continue
            content = sorted({w for w in words(low) if w not in _STOP and len(w) > 2})
            if content:
                found.append(Ask("q:" + " ".join(content), "answer to " + repr(sent.strip()), clarifying, sent))
    return tuple(found)


def same_kind(a: str, b: str) -> bool:
    """Whether two asks request the same fact; unknown questions match on shared content words."""
    if a == b:
        return True
    if a.startswith("q:") and b.startswith("q:"):
        wa, wb = set(a[2:].split()), set(b[2:].split())
        return len(wa & wb) / max(1, len(wa | wb)) >= 0.6
    return False


# --- what the customer says ------------------------------------------------------------------------

_EVASIVE = re.compile(
    r"\b(?:don'?t|do not|dont|can'?t|cannot|can not|couldn'?t|didn'?t) (?:know|remember|recall|have|find|say|think)"
    r"|\bnot sure\b|\bno idea\b|\bforg[eo]t|\bwhat do you mean\b|\bwhy do you need\b|\bnone of your\b"
    r"|\bwhat\?|\bhuh\b|\bnot telling\b"
)
_ALREADY = Cue(
    r"\b(?:already|as i (?:said|mentioned|told)|like i (?:said|told)|i (?:just )?(?:said|told you|gave|mentioned)"
    r"|told you|said before|said earlier|i said|again\?)\b",
    ("already", "as i ", "like i ", "i said", "i just ", "told you", "i gave", "i mentioned", "said before",
     "said earlier", "again?"),
)
_CHANGE = Cue(
    r"\b(?:actually|instead|change|changed|rather|wait|on second thought|make (?:it|that)|switch|"
    r"correction|typo|i meant|sorry,? i meant|different|another|other)\b",
    ("actually", "instead", "change", "rather", "wait", "second thought", "make it", "make that", "switch",
     "correction", "typo", "i meant", "different", "other"),
)
_CORRECT = Cue(
    r"\b(?:that'?s (?:not (?:right|correct|what)|wrong|incorrect)\b|i (?:said|asked for|meant)\b"
    r"|not what i (?:said|asked)\b|you got (?:it|that|me) wrong\b)"
    r"|^(?:no|nope),? (?:it'?s|it was|i said|i asked|i meant|i wanted)\b",
    ("s not ", "wrong", "incorrect", "i said", "i asked for", "i meant", "not what i"),
    starts=("no",),
)
_NUMBER = re.compile(r"\b\d[\d,./:-]*\b")
_DIGIT = re.compile(r"\d")
_WEEKDAY = Cue(
    r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\btoday\b|\btomorrow\b|\btonight\b",
    ("day", "tomorrow", "tonight"),
)
_TIME = Cue(
    r"\b(?:\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|o'?clock)|noon|midnight)\b",  # one \b first: cheaper
    ("am", "pm", "a.m.", "p.m.", "clock", "noon", "midnight"),
)
_MONTH = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?\b"
                    r"|\b\d{1,2}(?:st|nd|rd|th)\b")
_COUNT = Cue(
    r"\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty)\s+"
    r"(?:people|persons|guests|adults|kids|children|of us|pax|tickets|rooms|nights)\b|\bjust me\b",
    ("people", "persons", "guests", "adults", "kids", "children", "of us", "pax", "tickets", "rooms",
     "nights", "just me"),
)
_NAME = Cue(
    r"\b(?:my name is|my name's|name is|this is|call me|i am|i'm|it's)\s+([A-Z][a-z]+(?: [A-Z][a-z]+)?)",
    ("name is", "name's", "this is", "call me", "i am", "i'm", "it's"),
)
_ACCOUNT = re.compile(r"\baccount(?: number| no| #)?(?: is|:)?\s*#?(\d{4,})")
_PIN = re.compile(r"\bpin(?: number| code)?(?: is|:)?\s*(\d{3,8})\b", re.IGNORECASE)
_REF = re.compile(r"\b(?:booking|order|reference|flight|ride|confirmation|ticket|case|tracking|reservation)"
                  r"(?: id| number| no| #)?(?: is|:)?\s*#?(\d{2,})\b", re.IGNORECASE)
_NOT_NAMES = frozenset("Sorry Not Looking Here Just Good Fine Great Okay Ok Yes No Hi Hello Hey Thanks Thank "
                       "Going Trying Calling Interested Sure The A An So Very Really Still Also".split())


@lru_cache(maxsize=65536)
def evasive(text: str) -> bool:
    """The customer did not really answer (doesn't know, forgot, asks back)."""
    low = text.lower()
    if _EVASIVE.search(low):
        return True
    stripped = low.strip()
    return stripped.endswith("?") and not _NUMBER.search(low) and len(words(low)) <= 12 and not _ALREADY.search(low)


@lru_cache(maxsize=65536)
def says_already(text: str) -> bool:
    """The customer points out they already gave this ("as I said", "I told you")."""
    return bool(_ALREADY.search(text.lower()))


#: Stricter than :data:`_ALREADY`: the customer says they were asked this before ("I already told you",
#: "like I said", "again?"), not merely that something already exists ("I already have an account").
_COMPLAINT = Cue(
    r"\balready (?:told|said|gave|given|mentioned|answered|provided|explained|sent|shared|entered|typed|asked)\b"
    r"|\bas i (?:said|mentioned|told)\b|\blike i (?:said|told|mentioned)\b"
    r"|\bi (?:just said|(?:just )?told you|just (?:gave|sent|shared|typed|entered|provided))\b"
    r"|\bi (?:gave|sent|provided) (?:it|that|this|you)\b|\bi'?ve (?:just )?(?:given|sent|provided) (?:it|that|this|you)\b"
    r"|\bsaid (?:that |this |it )?(?:before|earlier)\b|\bdid(?:n'?t| not)? i (?:not )?(?:just )?(?:say|tell|give|send)\b"
    r"|\b(?:you|u) (?:just |already )?(?:asked|had|have) (?:me )?(?:that|this|it) (?:already|before|earlier)\b"
    r"|\b(?:it'?s|it is|that'?s|see) (?:right )?(?:above|up there)\b|\bscroll up\b|\bsame as (?:before|earlier|above)\b"
    r"|\bagain\?|\bhow many times\b",
    ("already", "as i ", "like i ", "i just ", "told you", "i gave", "i sent", "i provided", "i've ", "ive ",
     "before", "earlier", "did", "above", "up there", "scroll up", "again?", "how many times"),
)


@lru_cache(maxsize=65536)
def complains_repeated(text: str) -> bool:
    """The customer says they were asked for this before (direct evidence of lost context)."""
    return bool(_COMPLAINT.search(text.lower()))


@lru_cache(maxsize=65536)
def changes_mind(text: str) -> bool:
    """The customer revises an earlier request, so asking again for the fact is legitimate."""
    return bool(_CHANGE.search(text.lower()))


@lru_cache(maxsize=65536)
def corrects(text: str) -> bool:
    """The customer opens by correcting the agent ("No, I said Tuesday")."""
    return bool(_CORRECT.search(text.strip().lower()))


@lru_cache(maxsize=65536)
def volunteered(text: str) -> tuple[tuple[str, str], ...]:
    """Facts a customer turn states on its own, as (kind, value), for asks the agent has not made yet."""
    low = text.lower()
    digits = bool(_DIGIT.search(text))  # most patterns need a digit: skip them on turns without one
    out: list[tuple[str, str]] = []
    for m in _NAME.finditer(text):
        first = m.group(1).split()[0]
        if first not in _NOT_NAMES:
            out.append(("name", m.group(1)))
    if digits:
        for kind, pat, src in (("account_number", _ACCOUNT, low), ("pin", _PIN, text), ("reference_id", _REF, text)):
            for m in pat.finditer(src):
                out.append((kind, m.group(1)))
    for m in _COUNT.finditer(low):
        out.append(("count", m.group(0)))
    if digits or "noon" in low or "midnight" in low:
        for m in _TIME.finditer(low):
            out.append(("time", m.group(0)))
    for pat in (_WEEKDAY, _MONTH) if digits else (_WEEKDAY,):
        for m in pat.finditer(low):
            out.append(("day", m.group(0)))
    return tuple(out)


#: A value the warehouse redacted (journeyscope.privacy): ``[EMAIL]`` masked, ``[EMAIL:3fa9c1d2e4b5]``
#: hashed. It stands for a value, not for the word "email": an agent asking "what is your email?" does
#: not repeat it, and two equal hashed tokens are the same value given twice.
_REDACTED = re.compile(r"\[([A-Z][A-Z0-9_]*)(?::([0-9a-f]{6,}))?\]")
#: Fact kinds whose values have a shape of their own (the privacy detectors' rules), so a customer turn that
#: carries one has given that fact whatever was asked: "you can reach me at jane@example.com" gives the
#: e-mail address as surely as an answer to "what is your e-mail?". Redaction tokens of these types too.
_VALUE_KINDS = {EMAIL: "email", PHONE: "phone", IBAN: "account_number"}
_VALUE_TYPES = frozenset(_VALUE_KINDS)


@lru_cache(maxsize=65536)
def stated_values(text: str) -> tuple[tuple[str, str], ...]:
    """Facts of a known kind a customer turn carries by their shape, as (kind, value), in text order.

    The value is the address, number or redaction token itself (``[EMAIL]``, ``[PHONE:3fa9c1d2e4b5]``),
    so a later restatement is recognised by :func:`restates` on raw and redacted transcripts alike.
    """
    out: list[tuple[int, str, str]] = []
    if "[" in text:
        for m in _REDACTED.finditer(text):
            kind = _VALUE_KINDS.get(m.group(1).lower())
            if kind is not None:
                out.append((m.start(), kind, m.group(0)))
    if "@" in text or _DIGIT.search(text):
        out.extend((f.start, _VALUE_KINDS[f.pii_type], text[f.start:f.end]) for f in find_pii(text, _VALUE_TYPES))
    return tuple((kind, value) for _, kind, value in sorted(out))


@lru_cache(maxsize=65536)
def key_tokens(text: str) -> frozenset[str]:
    """The tokens of an answer that carry its value: numbers, times, days, names, uncommon words."""
    opaque = {"<" + m.group(0)[1:-1].lower() + ">" for m in _REDACTED.finditer(text)} if "[" in text else set()
    if opaque:
        text = _REDACTED.sub(" ", text)
    toks = {w for w in words(text) if w not in _STOP and len(w) > 1} | opaque
    if _DIGIT.search(text) or "noon" in toks or "midnight" in toks:
        toks |= {m.group(0).replace(" ", "") for m in _TIME.finditer(text.lower())}
    return frozenset(toks)


def restates(later: str, earlier: str) -> bool:
    """Whether a customer reply repeats the value of an earlier one (same number, name, day...)."""
    a, b = key_tokens(later), key_tokens(earlier)
    if not a or not b:
        return False
    shared = a & b
    if any(w.isdigit() or _WEEKDAY.search(w) or w.startswith("<") for w in shared):
        return True
    return len(shared) / min(len(a), len(b)) >= 0.5

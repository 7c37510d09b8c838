"""What a customer asks to be told, and whether the agent told them.

A customer who asks for a phone number, a price or an opening time and leaves without it is not
satisfied, however polite the rest was. The asked-for piece of information is recognised by the kind
of thing asked for ("what's the phone number?", "could you give me the address?", "how much is it?"),
and an agent turn answers it when it carries a value of that kind: digits for a phone number, a
currency amount for a price, a clock time for a time (or the redaction token that replaced the
value, ``[PHONE]``, ``[EMAIL:3fa9c1d2e4b5]``). The kinds are the ones every service desk is asked
for, not one domain's slots; a request of any other kind is not judged here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from journeyscope.evaluators.text import AGENT, CUSTOMER, Line, sentences

#: A sentence that asks to be told something (a question, or "tell me / give me / I need the ...").
_ASKING = re.compile(
    r"\?\s*$|^(?:(?:and|also|ok(?:ay)?|great|thanks|thank you|alright|sure|so|then|please)[,.!]?\s+)*"
    r"(?:what|where|when|how|which|who|is|are|does|do|can|could|would|will|may|might)\b"
    r"|\b(?:tell|give|send|text|email|provide|get|grab|find) me\b|\bmay i (?:have|get)\b|\bcan i (?:have|get)\b"
    r"|\bi(?:'d| would)? (?:need|want|like) (?:to (?:know|get|have) )?(?:the|their|its|your)\b|\bplease (?:give|send|tell)\b"
)
#: (kind, how a customer asks for it, what an agent's answer of that kind contains). Order matters: an
#: "e-mail address" is an e-mail, not an address.
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("email", r"\be-?mail\b", r"@|\[email"),
    ("phone", r"\b(?:phone|telephone|contact number|number to call|mobile number)\b",
     r"(?:\d[\s().+-]*){7,}|\[phone"),
    ("postcode", r"\b(?:post ?code|zip ?code|zip|postal code)\b",
     r"\b[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2}\b|\b\d{4,6}(?:-\d{4})?\b|\[(?:postcode|zip|address|location)"),
    ("address", r"\baddress\b|\bwhere (?:is|are|exactly|can i find)\b|\blocated\b|\blocation\b",
     r"\b\d+[a-z]?,? \w+|\b(?:street|st|road|rd|avenue|ave|lane|ln|way|drive|boulevard|blvd|square|court|close|"
     r"terrace|parade|hill|row|highway|hwy|suite|floor|building|centre|center|mall|plaza)\b|\[(?:address|location)"
     r"|\blocated (?:at|on|in|near|next)\b"),
    ("reference", r"\b(?:reference|confirmation|booking|order|ticket|tracking|case|reservation) (?:number|code|id|no)\b"
     r"|\breference\b",
     r"\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{5,}\b|\b\d{5,}\b|\[(?:ref|id|reference)"),
    ("price", r"\b(?:price|prices|cost|costs|how much|fee|fees|fare|fares|charge|charges|rate|rates|price range)\b",
     r"[$£€¥₹]|\b\d+(?:[.,]\d+)?\b"  # "how much?" - "795 credits": a bare amount answers it
     r"|\bfree\b|\bno (?:charge|cost|fee)\b|\b(?:cheap|moderate(?:ly priced)?|expensive|inexpensive|affordable|"
     r"pricey)\b"),
    ("time", r"\bwhat time\b|\bwhen (?:does|do|is|are|will|can|should)\b|\b(?:opening|business|office) hours\b"
     r"|\bhours\b|\b(?:departure|arrival|leave|pickup|pick-up|start|closing|opening) time\b|\bwhat day\b",
     r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.)|\bo'?clock\b|\bnoon\b|\bmidnight\b|\b24/7\b"
     r"|\b(?:mon|tues|wednes|thurs|fri|satur|sun)days?\b|\btoday\b|\btomorrow\b|\btonight\b|\bdaily\b|\[(?:time|date)"
     r"|\bin (?:\d+|an?|one|two|three|five|ten|fifteen|twenty|thirty|a few|half an) (?:min(?:ute)?s?|hours?|days?)\b"),
    ("duration", r"\bhow long\b|\btravel time\b|\bduration\b|\bjourney time\b",
     r"\b\d+\s*(?:min(?:ute)?s?|hours?|hrs?|days?|weeks?|months?)\b|\b(?:an?|one|two|three|four|five|half an?|"
     r"a few|several) (?:minute|hour|day|week|month)s?\b"),
    ("distance", r"\bhow far\b|\bdistance\b",
     r"\b\d+(?:\.\d+)?\s*(?:miles?|mi|km|kilomet(?:er|re)s?|met(?:er|re)s?|blocks?|minutes?|mins?)\b"
     r"|\b(?:walking|driving) distance\b|\bnext door\b|\bacross the street\b"),
    ("website", r"\b(?:website|web site|url|web address|link)\b", r"https?://|\bwww\.|\.(?:com|org|net|co|io)\b|\[url"),
)
_ASK = tuple((kind, re.compile(ask)) for kind, ask, _ in _KINDS)
#: Any kind's words: most turns have none, and one scan of the turn settles them (after a cheaper substring test:
#: every kind's words contain one of these).
_ANY_ASK = re.compile("|".join(f"(?:{ask})" for _, ask, _ in _KINDS))
_ASK_STEMS = ("mail", "phone", "number", "post", "zip", "address", "where", "locat", "reference", "confirmation",
              "price", "cost", "how", "fee", "fare", "charge", "rate", "time", "when", "hour", "day", "duration",
              "distance", "website", "web", "url", "link", "code", "id", " no")
#: The stems as one pattern: one scan of the turn instead of a substring test per stem.
_ANY_STEM = re.compile("|".join(map(re.escape, _ASK_STEMS)))
_ANSWER = {kind: re.compile(answer) for kind, _, answer in _KINDS}
#: A customer sentence that states a value of the kind itself is not asking for one; a price only with its currency
#: ("for 2 nights, how much?" asks).
_STATED = {**_ANSWER, "price": re.compile(r"[$£€¥₹]|\b\d+(?:[.,]\d+)?\s*(?:pounds?|dollars?|euros?|usd|gbp|eur|cents?|"
                                          r"pence|bucks|quid|credits?)\b")}
@lru_cache(maxsize=65536)
def asked_kinds(text: str) -> frozenset[str]:
    """The kinds of information a customer turn asks to be told (empty when it asks for none we know)."""
    low = text.lower()
    if not _ANY_STEM.search(low) or not _ANY_ASK.search(low):
        return frozenset()
    kinds: set[str] = set()
    for sent in sentences(low):
        if not _ASKING.search(sent):
            continue
        for kind, ask in _ASK:
            # "I need it to cost no more than 288 dollars": a customer stating a value of the kind is not asking for one
            if ask.search(sent) and not (kind == "address" and "email" in kinds) and not _STATED[kind].search(sent):
                kinds.add(kind)
    return frozenset(kinds)


@lru_cache(maxsize=65536)
def answers(text: str, kind: str) -> bool:
    """Whether an agent turn gives a value of ``kind`` (and does not say it has none)."""
    low = text.lower()
    if kind == "address" and _ANSWER["postcode"].search(low):
        return True
    return bool(_ANSWER[kind].search(low))


@dataclass(frozen=True, slots=True)
class Request:
    """A customer turn that asked for ``kinds``, and what the visit did with it."""

    line: Line
    kinds: frozenset[str]
    replied: bool  # an agent turn came after it in the visit
    answered: frozenset[str]  # the kinds some later agent turn gave
    asked_again: bool  # the customer asked for one of the kinds again after an agent reply

    @property
    def unanswered(self) -> frozenset[str]:
        """Kinds the agent replied to without ever giving (only judged once the agent replied)."""
        return self.kinds - self.answered if self.replied else frozenset()


def requests(lines: tuple[Line, ...]) -> list[Request]:
    """Each customer request for information in the visit, with whether the agent ever gave it."""
    out: list[Request] = []
    for pos, line in enumerate(lines):
        if line.role != CUSTOMER:
            continue
        kinds = asked_kinds(line.text)
        if not kinds:
            continue
        later = lines[pos + 1:]
        agent_after = [x for x in later if x.role == AGENT]
        answered = frozenset(k for k in kinds if any(answers(x.text, k) for x in agent_after))
        first_reply = next((i for i, x in enumerate(later) if x.role == AGENT), None)
        again = first_reply is not None and any(
            x.role == CUSTOMER and asked_kinds(x.text) & kinds for x in later[first_reply + 1:])
        out.append(Request(line, kinds, bool(agent_after), answered, again))
    return out


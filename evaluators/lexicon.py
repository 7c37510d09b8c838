"""Outcome and affect language of support conversations, shared by the local evaluators.

Each pattern describes how agents state an outcome ("your booking is confirmed", "unfortunately no
rooms are available") or how customers react ("thanks, bye", "you're not listening"), in words used
across contact centres, not in any one dataset's templates. Polarity is decided by the *last* outcome
phrase in a turn, so "the 3 pm slot is taken, but I booked you at 4 pm" reads as success.
"""

from __future__ import annotations

import re
from functools import lru_cache

_DONE_VERBS = (r"booked|reserved|confirmed|scheduled|submitted|placed|processed|completed|cancel+ed|updated|changed|"
               r"sent|arranged|unlocked|locked|done|set up|registered|paid|refunded|resolved|fixed|activated|"
               r"approved|issued|added|removed|transferred|ordered|renewed|reset|delivered|dispatched|filed|"
               r"logged|recorded|organi[sz]ed|made|taken care of|sorted|handled")
SUCCESS = re.compile(
    r"\bsuccessful(?:ly)?\b|\bsucceeded\b"
    rf"|\b(?:is|are|has been|have been|was|were|been|now|all|got|get|had) (?:\w+ )?(?:{_DONE_VERBS})\b"
    rf"|\bi(?:'ve| have| just| went ahead and)? (?:{_DONE_VERBS})\b"
    r"|\b(?:you'?re|you are) (?:all )?set\b|\ball set\b|\bconfirmation (?:number|code|id)\b"
    r"|\bis on (?:its|the|her|his) way\b|\bwill (?:knock|pick you up|be there|be delivered|arrive)\b"
    r"|\b(?:request|order|booking|reservation|report|payment|appointment|ticket) (?:is|was|has been) "
    r"(?:received|accepted|approved|in)\b|\bgood to go\b"
)
FAILURE = re.compile(
    r"\bunfortunately\b|\bunsuccessful(?:ly)?\b|\bfail(?:ed|s|ure)?\b|\bunable\b|\bcannot\b|\bcan'?t\b|\bcan not\b"
    r"|\bcould ?n[o']?t\b|\bwas ?n[o']?t able\b|\bnot (?:be )?(?:able|available|possible|authori[sz]ed|eligible|"
    r"permitted|allowed|valid|found|in stock|supported|accommodate|authenticate|verify)\b|\bunavailable\b"
    r"|\bno longer\b|\bno (?:\w+ )?(?:available|availability|slots?|rooms?|tables?|flights?|results?|openings?|"
    r"vacanc(?:y|ies)|match(?:es)?|record|appointments?|seats?|spaces?)\b|\bfully booked\b|\bsold out\b"
    r"|\bdeclined\b|\bdenied\b|\brejected\b|\b(?:is|are) (?:full|closed)\b|\bthere (?:is|are) no\b"
    r"|\bdoes ?n[o']?t (?:exist|match|work)\b|\bout of (?:service|stock|order)\b|\bnot (?:\w+ )?(?:accommodate|authenticate|process|complete|find|locate|verify)\b"
    r"|\bdon'?t have (?:any|access)\b|\berror\b|\bnothing (?:available|found)\b"
)
#: A completion verb under negation ("has not been booked"): a failure, never a success.
NEGATED_DONE = re.compile(rf"\b(?:not|never|n't)\s+(?:\w+\s+)?(?:been\s+|be\s+)?(?:{_DONE_VERBS}|successful(?:ly)?)\b")
#: The agent did not understand or cannot handle the request.
CONFUSED = re.compile(
    r"\b(?:don'?t|do not|didn'?t|did not) (?:quite )?(?:understand|follow|get)\b|\bnot sure (?:what|i)\b"
    r"|\b(?:can|could) you (?:rephrase|repeat)\b|\bonly (?:able to )?help (?:you )?with\b|\bcan only help\b"
    r"|\bnot able to help\b|\bcan'?t help\b|\boutside (?:of )?(?:my|our) scope\b"
)
#: Hand-off to a person, asked for by the customer or announced by the agent.
ESCALATION = re.compile(
    r"\b(?:speak|talk|chat) (?:to|with) (?:a |an |your )?(?:human|person|manager|supervisor|agent|representative|"
    r"someone|real)|\b(?:real|live|human) (?:person|agent|being)\b|\btransfer(?:ring)? you\b|\bescalat"
    r"|\bconnect you (?:to|with)\b|\bhand (?:you )?(?:over|off)\b|\bcall (?:the|your|customer) "
    r"(?:support|service|helpline|office)\b|\bfile a complaint\b"
)
THANKS = re.compile(r"\bthank|\bthanks\b|\bthx\b|\bty\b|\bappreciate\b|\bperfect\b|\bawesome\b|\bgreat\b|\bwonderful\b"
                    r"|\bexcellent\b|\bthat'?s all\b|\bthat is all\b|\bgoodbye\b|\bbye\b|\bthat works\b|\bsounds good\b")
#: The customer objects to the outcome itself (not just to the wait or the weather).
OBJECTION = re.compile(r"\bwrong\b|\bnot what i\b|\bincorrect\b|\bmistake\b|\bi didn'?t (?:ask|want|say)\b|\buseless\b"
                       r"|\bterrible\b|\bunacceptable\b|^no,? i (?:said|asked|wanted)\b|\bthat'?s not (?:right|it|what)\b")
#: Customer annoyance or distress with the agent.
ANNOYED = re.compile(
    r"\b(?:not|aren'?t|are not) listening\b|\buseless\b|\bstupid\b|\bidiot|\bdumb\b|\bridiculous\b|\bannoy"
    r"|\bfrustrat|\bwaste of (?:my )?time\b|\bterrible\b|\bawful\b|\bhorrible\b|\bincompetent\b|\bwtf\b|\bomg\b"
    r"|\bf+u+c+k|\bshit|\bdamn|\bcrap\b|\bhell\b|\bbitch|\bugh+\b|\bseriously\b|\bare you (?:even )?(?:a )?"
    r"(?:bot|robot|kidding|serious)\b|\bwhat is wrong with you\b|\bforget it\b|\bnever ?mind\b|\bi give up\b"
    r"|\bunacceptable\b|\bpathetic\b|\bhurry\b|\bjust do\b|\bnot what i\b|\bwhy (?:do|did|are) you\b|\?{2,}|!{3,}"
)
#: Unprofessional agent language.
RUDE = re.compile(r"\bshut up\b|\bcalm down\b|\bwhatever\b|\bnot my problem\b|\bstupid\b|\bidiot|\bdumb\b|\bf+u+c+k"
                  r"|\bshit|\bdamn\b|\byour fault\b|\bi don'?t care\b")
#: The customer says they are leaving or giving up.
LEAVING = re.compile(r"\b(?:i'?ll|i will) (?:go|leave|try (?:somewhere|elsewhere|another|later)|call back|come back)"
                     r"|\bforget it\b|\bnever ?mind\b|\bi give up\b|\bgoodbye\b|\bbye\b|\bgotta go\b")
HESITATION = re.compile(r"\b(?:um+|uh+|er+m?|hmm+|hm+)\b|\bnot sure\b|\bi guess\b|\bi think\b|\bmaybe\b|\bperhaps\b"
                        r"|\blet me (?:think|check|see)\b|\bwait\b|\bi don'?t know\b|\bactually\b|\.{3,}|…")


@lru_cache(maxsize=65536)
def outcome_polarity(text: str) -> int:
    """+1 when an agent turn's last outcome phrase is a success, -1 a failure, 0 none.

    Questions do not count as outcomes unless they report a failure first ("No rooms match; change
    your dates?"), so an offer ("Shall I book it?") is not mistaken for a completed booking.
    """
    low = text.lower()
    best_pos, best = -1, 0
    for sent in re.split(r"(?<=[.!?])\s+|\n+", low):
        if not sent:
            continue
        question = sent.rstrip().endswith("?")
        negated = [m.span() for m in NEGATED_DONE.finditer(sent)]
        fail = sorted([m.start() for m in FAILURE.finditer(sent)] + [b for _, b in negated])
        ok = [] if question else [
            m.start() for m in SUCCESS.finditer(sent) if not any(a <= m.start() < b for a, b in negated)
        ]
        offset = low.find(sent)
        if fail and (not ok or fail[-1] > ok[-1]):
            pos, pol = offset + fail[-1], -1
        elif ok:
            pos, pol = offset + ok[-1], 1
        else:
            continue
        if pos >= best_pos:
            best_pos, best = pos, pol
    return best

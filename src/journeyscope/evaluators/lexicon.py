"""Outcome and affect language of support conversations, shared by the local evaluators.

Each pattern describes how agents state an outcome ("your booking is confirmed", "unfortunately no
rooms are available") or how customers react ("thanks, bye", "you're not listening"), in words used
across contact centres, not in any one dataset's templates. Polarity is decided by the *last* outcome
phrase in a turn, so "the 3 pm slot is taken, but I booked you at 4 pm" reads as success. Tool results
are read by their status shape (``{"status": "declined"}``, ``{"success": true}``), never by field names of one API.
"""

from __future__ import annotations

import re
from functools import lru_cache

from journeyscope.evaluators.text import Cue

_DONE_VERBS = (r"booked|reserved|confirmed|scheduled|submitted|placed|processed|completed|cancel+ed|updated|changed|"
               r"sent|arranged|unlocked|locked|done|set up|registered|paid|refunded|resolved|fixed|activated|"
               r"approved|issued|added|removed|transferred|ordered|renewed|reset|delivered|dispatched|filed|"
               r"logged|recorded|organi[sz]ed|made|taken care of|sorted|handled|created|opened|installed|linked|"
               r"connected|enabled|verified|restored|reactivated|credited|subscribed")
SUCCESS = re.compile(
    r"\bsuccessful(?:ly)?\b|\bsucceeded\b"
    rf"|\b(?:is|are|has been|have been|was|were|been|now|all|got|get|had) (?:\w+ )?(?:{_DONE_VERBS})\b"
    rf"|\bi(?:'ve| have| just| went ahead and)? (?:{_DONE_VERBS})\b"
    r"|\b(?:you'?re|you are) (?:all )?set\b|\ball set\b|\bconfirmation (?:number|code|id)\b"
    r"|\bis on (?:its|the|her|his) way\b|\bwill (?:knock|pick you up|be there|be delivered|arrive)\b"
    r"|\b(?:request|order|booking|reservation|report|payment|appointment|ticket) (?:is|was|has been) "
    r"(?:received|accepted|approved|in)\b|\bgood to go\b"
    r"|\b(?:account|subscription|plan|membership|service|card|line) (?:is|are) (?:now )?(?:active|live|ready)\b"
    # A headline outcome without a verb: "Payment approved.", "Booking confirmed!"
    r"|^(?:your )?(?:payment|order|booking|reservation|transfer|refund|request|appointment|subscription|account) "
    r"(?:approved|confirmed|accepted|received|complete|completed|done|created|activated)\b"
    r"|^(?:all )?(?:booked|reserved|confirmed|done|sorted)\s*[!.,]"
    # The information asked for, given: "your current balance is 5,703", "the total comes to $42.10".
    r"|\byour (?:\w+ )?(?:balance|total|amount due|order status|tracking number|refund amount|credit limit|"
    r"due date|wait time|estimated (?:arrival|delivery)(?: time| date)?) (?:is|was|comes to|will be)\b(?=[^?]*\d)"
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
    # A conflict, not a completion: "that email is already registered to another account", "already in use".
    r"|\balready (?:\w+ )?(?:registered|taken|in use|used|linked|associated|exists?|booked|reserved) "
    r"(?:to|by|with|for|under|on) (?:another|a different|someone|an?other)\b|\balready (?:in use|taken|exists)\b"
)
#: A completion verb under negation ("has not been booked"): a failure, never a success.
NEGATED_DONE = Cue(
    rf"\b(?:not|never|n't)\s+(?:\w+\s+)?(?:been\s+|be\s+)?(?:{_DONE_VERBS}|successful(?:ly)?)\b",
    ("not", "never", "n't"),
)
#: The agent did not understand or cannot handle the request.
CONFUSED = Cue(
    r"\b(?:don'?t|do not|didn'?t|did not) (?:quite )?(?:understand|follow|get)\b|\bnot sure (?:what|i)\b"
    r"|\b(?:can|could) you (?:rephrase|repeat)\b|\bonly (?:able to )?help (?:you )?with\b|\bcan only help\b"
    r"|\bnot able to help\b|\bcan'?t help\b|\boutside (?:of )?(?:my|our) scope\b",
    ("understand", "follow", "get", "not sure", "rephrase", "repeat", "help", "scope"),
)
#: Hand-off to a person, asked for by the customer or announced by the agent.
ESCALATION = Cue(
    r"\b(?:speak|talk|chat) (?:to|with) (?:a |an |your )?(?:human|person|manager|supervisor|agent|representative|"
    r"someone|real)|\b(?:real|live|human) (?:person|agent|being)\b|\btransfer(?:ring)? you\b|\bescalat"
    r"|\bconnect you (?:to|with)\b|\bhand (?:you )?(?:over|off)\b|\bcall (?:the|your|customer) "
    r"(?:support|service|helpline|office)\b|\bfile a complaint\b",
    ("speak", "talk", "chat", "person", "agent", "being", "transfer", "escalat", "connect you", "hand ",
     "call ", "file a complaint"),
)
THANKS = Cue(
    r"\bthank|\bthanks\b|\bthx\b|\bty\b|\bappreciate\b|\bperfect\b|\bawesome\b|\bgreat\b|\bwonderful\b"
    r"|\bexcellent\b|\bthat'?s all\b|\bthat is all\b|\bgoodbye\b|\bbye\b|\bthat works\b|\bsounds good\b",
    ("thank", "thx", "ty", "appreciate", "perfect", "awesome", "great", "wonderful", "excellent", "s all",
     "that is all", "bye", "that works", "sounds good"),
)
#: The customer objects to the outcome itself (not just to the wait or the weather). Use :func:`objects`:
#: "wrong" counts only as a verdict on something ("that's wrong", "the wrong date", "you got it wrong") and
#: "I didn't want" only about the result ("I didn't want that"), so "I didn't want to go any earlier, great!"
#: or "don't tell anyone if I get it wrong" are not objections.
OBJECTION = Cue(
    r"\b(?:not what i\b|incorrect\b|mistake\b|i didn'?t (?:ask for|order|say (?:that|this)|"
    r"want (?:that|this|it)\b)|useless\b|terrible\b|unacceptable\b|that'?s not (?:right|it|what)\b)"
    r"|^no,? i (?:said|asked|wanted)\b",
    ("not what i", "incorrect", "mistake", "i didn", "useless", "terrible", "unacceptable", "s not "),
    starts=("no",),
)
WRONG_VERDICT = re.compile(
    r"\b(?:is|was|are|were|that'?s|it'?s|all|got (?:it|that|this|them|my \w+)|have|has|had|the|a) (?:\w+ )?wrong\b"
    r"|\bwrong (?:\w+ )?(?:date|day|time|name|number|address|amount|item|order|size|colou?r|account|person|one|room"
    r"|table|flight|seat|booking|reservation|appointment|place|city|plan|card|product|charge)s?\b")


def objects(low: str) -> bool:
    """Whether a lower-cased customer turn objects to the outcome (:data:`OBJECTION`, :data:`WRONG_VERDICT`)."""
    return bool(OBJECTION.search(low)) or ("wrong" in low and bool(WRONG_VERDICT.search(low)))


#: Customer annoyance or distress with the agent, in words (not the emphatic punctuation of :data:`ANNOYED`, which
#: is as often delight: "thank you!!!").
ANNOYED_WORDS = Cue(  # one \b before the group, not one per word: that is ten times faster in ``re``
    r"\b(?:(?:not|aren'?t|are not|are you even) listening\b|useless\b|stupid\b|idiot|dumb\b|ridiculous\b|annoy"
    r"|frustrat|waste of (?:my )?time\b|terrible\b|awful\b|horrible\b|incompetent\b|wtf\b|omg\b"
    r"|f+u+c+k|shit|damn|crap\b|hell\b|bitch|ugh+\b|seriously\b|are you (?:even )?(?:a )?"
    r"(?:bot|robot|kidding|serious)\b|what is wrong with you\b|forget it\b|never ?mind\b|i give up\b"
    r"|unacceptable\b|pathetic\b|(?<!no )(?<!not in a )(?<!no need to )(?<!n't )hurry\b|just do\b|not what i\b"
    r"|why (?:do|did|are) you\b)",
    ("listening", "useless", "stupid", "idiot", "dumb", "ridiculous", "annoy", "frustrat", "waste of",
     "terrible", "awful", "horrible", "incompetent", "wtf", "omg", "fu", "shit", "damn", "crap", "hell",
     "bitch", "ugh", "seriously", "are you", "wrong with you", "forget it", "never", "i give up",
     "unacceptable", "pathetic", "hurry", "just do", "not what i", "why "),
)
#: Customer annoyance or distress with the agent.
ANNOYED = Cue(ANNOYED_WORDS.pattern + r"|\?{2,}|!{3,}", ANNOYED_WORDS.needles + ("??", "!!!"))
#: The customer thanks the agent (narrower than :data:`THANKS`, which also reads closings such as "great, bye").
GRATITUDE = Cue(
    r"\bthank|\bthanks\b|\bthx\b|\bappreciate",
    ("thank", "thx", "appreciate"),
)
#: A thanks that takes itself back: "thanks for nothing", "thanks a lot for wasting my time", "thank you for not
#: listening" (not any "thanks for not ...": "thanks for not charging me" is meant).
THANKLESS = Cue(
    r"\bthank(?:s|\s+you)?\b[^.!?]{0,25}?\bfor (?:absolutely |exactly )?(?:nothing|no help|wasting|ruining"
    r"|not (?:helping|listening|understanding|doing anything)|being (?:so )?(?:useless|unhelpful|no help)"
    r"|making (?:this|it|things) worse)\b",
    ("thank",),
)


def grateful(low: str) -> bool:
    """Whether a lower-cased customer turn thanks the agent and means it.

    A thanks followed by a negation ("thanks for nothing") or a complaint ("thanks, but that's not what I asked",
    "thank you, you're useless") is sarcasm or a sign-off to a complaint, not gratitude; a complaint made before
    the thanks ("that was annoying, but thank you for sorting it") is forgiven by it.
    """
    m = GRATITUDE.search(low)
    if m is None:
        return False
    rest = low[m.start():]
    return not (THANKLESS.match(rest) or ANNOYED_WORDS.search(rest) or objects(rest))


#: The customer turns down what the agent offered or asks for something else ("no, that doesn't work for me",
#: "anything else?", "do you have other options?"): the offer missed. A bare "no" answers many a yes/no question,
#: and a closing "no, that's all, thanks" is not one.
REJECTS = Cue(
    r"\b(?:(?:anything|something|any|some|somewhere|someplace) (?:else|other)\b|(?:any )?other (?:options?|ones?|"
    r"suggestions?|choices?|places?|times?|dates?)\b|another (?:one|option|place|time|date)\b"
    r"|(?:does ?n[o']?t|won'?t|would ?n[o']?t|will not) (?:work|suit|do)\b|not (?:interested|suitable|quite)\b"
    r"|(?:that'?s|it'?s|is|was) (?:too|very) (?:expensive|far|late|early|pricey)\b|i'?d rather not\b)",
    ("else", "other", "t work", "t suit", "t do", "not ", "too ", "very ", "rather not"),
)
#: Unprofessional agent language.
RUDE = Cue(
    r"\bshut up\b|\bcalm down\b|\bwhatever\b|\bnot my problem\b|\bstupid\b|\bidiot|\bdumb\b|\bf+u+c+k"
    r"|\bshit|\bdamn\b|\byour fault\b|\bi don'?t care\b",
    ("shut up", "calm down", "whatever", "not my problem", "stupid", "idiot", "dumb", "fu", "shit", "damn",
     "your fault", "t care"),
)
#: The customer says they are leaving or giving up.
LEAVING = re.compile(r"\b(?:i'?ll|i will) (?:go|leave|try (?:somewhere|elsewhere|another|later)|call back|come back)"
                     r"|\bforget it\b|\bnever ?mind\b|\bi give up\b|\bgoodbye\b|\bbye\b|\bgotta go\b")
HESITATION = re.compile(r"\b(?:(?:um+|uh+|er+m?|hmm+|hm+)\b|not sure\b|i guess\b|i think\b|maybe\b|perhaps\b"
                        r"|let me (?:think|check|see)\b|wait\b|i don'?t know\b|actually\b)|\.{3,}|…")


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


# Tool results (role ``tool``): structured payloads, so the cues are key/value shapes shared by APIs, not prose.
# Every alternative starts with a word boundary and a literal key, which keeps the scan cheap on long payloads.
_KEY = r"\b(?:status|state|result|outcome)[\"']?\s*[:=]\s*[\"']?"
TOOL_FAILURE = re.compile(
    _KEY + r"(?:error|errored|fail(?:ed|ure)?|declined|denied|rejected|invalid|not[ _-]?found|unavailable|"
    r"unauthori[sz]ed|forbidden|timeout|timed[ _-]?out|no[ _-]?match|insufficient[ _-]funds|unsuccessful)\b"
    r"|\b(?:(?:success|succeeded|ok|available|found|approved)[\"']?\s*[:=]\s*(?:false|0)\b"
    r"|(?:errors?|error_message|error_code|exception)[\"']?\s*[:=](?!\s*(?:[\"']{2}|\[\s*\]|\{\s*\}|null\b|none\b|"
    r"false\b|0\b|[\"']?(?:none|null|ok)\b))"
    r"|(?:status_?code|http_?status)[\"']?\s*[:=]\s*[45]\d\d\b)|^\s*(?:error|exception|traceback)\b"
)
TOOL_SUCCESS = re.compile(
    _KEY + r"(?:ok|okay|success|successful|succeeded|completed?|confirmed|booked|reserved|scheduled|approved|"
    r"accepted|created|updated|processed|shipped|dispatched|delivered|refunded|paid|sent|done|active|activated|"
    r"resolved|issued|submitted)\b"
    r"|\b(?:success|succeeded|ok|confirmed|booked|sent|approved|created|updated|done|completed)[\"']?\s*[:=]\s*"
    r"(?:true|1)\b|\b(?:status_?code|http_?status)[\"']?\s*[:=]\s*2\d\d\b"
)


#: Substrings one of which every cue above contains: a plain ``in`` test skips most payloads without a regex scan.
_TOOL_KEYS = ("status", "state", "result", "outcome", "succe", "error", "exception", "traceback", "\"ok\"", "'ok'",
              "ok:", "ok=", "available", "found", "approved", "confirmed", "booked", "sent", "created", "updated",
              "done", "completed")


@lru_cache(maxsize=65536)
def tool_polarity(text: str) -> int:
    """-1 when a tool result reports an error or a refusal, +1 an explicit success status, 0 neither.

    A failure cue wins over a success cue in the same payload (``{"status": 200, "error": "card expired"}``).
    Tool *calls* (arguments without a status) and plain data lookups say nothing and give 0.
    """
    low = text.lower()
    if not any(key in low for key in _TOOL_KEYS):
        return 0
    if TOOL_FAILURE.search(low):
        return -1
    return 1 if TOOL_SUCCESS.search(low) else 0

"""``customer_agent_conversation_quality``: would the customer leave this stage satisfied?

A satisfied customer got what they came for without a fight. So the score is the visit's
effectiveness (its resolution score) combined with what the customer had to go through, each a
count of turns (the reason names the first):
- frustration: a customer turn that is annoyed, objects to the outcome ("that's not what I asked"),
  corrects the agent ("no, I said Tuesday"), says they were asked before, or is negative (VADER, :mod:`.sentiment`) about the agent or the
  conversation rather than about the problem they came with;
- repeated asks: the customer asks again for what they asked for earlier in the visit (rephrasing
  included: most of the same content words);
- dead ends: the agent says it cannot understand or cannot help ("I can only help with ...");
- agent errors: apologies and errors in the agent's words ("sorry", "my mistake", "an error");
- unprofessional agent language; lost context (the retention verdict); word-for-word agent loops;
- long or slow exchanges: agent turns beyond :data:`LONG_VISIT_AGENT_TURNS`, replies slower than
  :data:`SLOW_REPLY_S`;
and a customer who ends by thanking the agent, rather than with a complaint, is the best sign there is.
"""

from __future__ import annotations

import re
from itertools import pairwise

from journeyscope import conventions as cv
from journeyscope.evaluators.base import clamp, guard
from journeyscope.evaluators.facts import complains_repeated, corrects, key_tokens
from journeyscope.evaluators.lexicon import (
    ANNOYED,
    CONFUSED,
    REJECTS,
    RUDE,
    THANKLESS,
    THANKS,
    grateful,
    objects,
    outcome_polarity,
)
from journeyscope.evaluators.requests import asked_kinds, requests
from journeyscope.evaluators.resolution import conversation_resolution
from journeyscope.evaluators.result import EvalResult, register
from journeyscope.evaluators.retention import customer_agent_context_retention
from journeyscope.evaluators.sentiment import NEGATIVE, negativity
from journeyscope.evaluators.text import AGENT, CUSTOMER, Cue, Line, quote, read_visit
from journeyscope.evaluators.transcript import VisitContext

NAME = cv.QUALITY_EVALUATOR
#: Bumped whenever resolution's or retention's version is: their verdicts are part of this score.
VERSION = "local-5"  # 5: "no hurry" / "not in a hurry" is patience, not annoyance (4: a thanks taken back excuses nothing)
# 3: unanswered requests, agent failures, offers turned down, findings weighed toward the end
PASS_AT = 0.6
#: Agent turns beyond this in one visit start to cost.
LONG_VISIT_AGENT_TURNS = 12
#: An agent reply slower than this (seconds after the customer's turn) is slow.
SLOW_REPLY_S = 120.0

_APOLOGY = Cue(
    r"\b(?:sorry|apologi[sz]e|apologies|my (?:mistake|bad)|an error|went wrong|inconvenience)\b",
    ("sorry", "apolog", "my mistake", "my bad", "an error", "went wrong", "inconvenience"),
)

# What each finding costs the experience part (1 = a smooth visit), per turn, and the most it can cost.
COST = {"frustration": (0.3, 0.6), "rude": (0.5, 1.0), "repeated_ask": (0.2, 0.4), "unanswered": (0.25, 0.5), "rejected": (0.1, 0.3),
        "dead_end": (0.25, 0.5), "agent_error": (0.1, 0.3), "lost_context": (0.3, 0.3), "loop": (0.2, 0.4),
        "slow": (0.1, 0.3)}
#: A customer whose last turn in the visit is frustrated leaves that way: this on top of the turn's own cost.
LEFT_FRUSTRATED = 0.15
#: What a closing thank-you from the customer adds to the experience part (without one it is at most 1 - this).
CLOSING_BONUS = 0.1


#: Words that turn a customer's negative words towards the agent or the conversation ("you're useless",
#: "this is taking forever"), not the situation they came with ("my card was stolen").
_DIRECTED = re.compile(r"\b(?:you|your|you'?re|u|this|that'?s|it'?s)\b")


def _frustrated(line: Line, opening: bool) -> bool:
    """The customer is annoyed, objects, says they were asked before, or is negative about the agent or the
    conversation (not in the turn that states their problem; a thank-you meant is never frustration, a goodbye may
    be, and so is a thanks taken back: "thanks for nothing")."""
    if grateful(line.low):  # not any closing word: "that's not what I asked, goodbye" is frustrated
        return False
    if THANKLESS.search(line.low):
        return True
    if bool(ANNOYED.search(line.low)) or objects(line.low) or corrects(line.text) or complains_repeated(line.text):
        return True
    # VADER last: it costs more than everything else here together, and most turns are not addressed to the agent.
    return not opening and bool(_DIRECTED.search(line.low)) and negativity(line.text) <= NEGATIVE


def _rejects(line: Line) -> bool:
    """The customer turns down an offer or asks for something else (a closing "no, that's all" is not one)."""
    return bool(REJECTS.search(line.low)) and not (THANKS.search(line.low) and "else" not in line.low)


def _repeated_asks(lines: tuple[Line, ...]) -> list[Line]:
    """Customer turns that ask again what an earlier turn of the visit asked after the agent had replied to it:
    most content words shared, or the same kind of information asked for again ("and the phone number?")."""
    asked: list[frozenset[str]] = []
    kinds_asked: set[str] = set()  # kinds asked for before the agent's last reply
    pending: set[str] = set()  # kinds asked for since then
    out: list[Line] = []
    for line in lines:
        if line.role == AGENT:
            kinds_asked |= pending
            pending = set()
            continue
        if line.role != CUSTOMER:
            continue
        kinds = asked_kinds(line.text)
        toks = key_tokens(line.text)
        if (len(toks) >= 3 and any(len(toks & prev) / len(toks | prev) >= 0.6 for prev in asked)) or kinds & kinds_asked:
            out.append(line)
        if len(toks) >= 3:
            asked.append(toks)
        pending |= kinds
    return out


def _slow_replies(lines: tuple[Line, ...]) -> list[Line]:
    out = []
    for a, b in pairwise(lines):
        if a.role == CUSTOMER and b.role == AGENT and a.turn.ts is not None and b.turn.ts is not None:
            try:
                gap = (b.turn.ts - a.turn.ts).total_seconds()
            except TypeError:  # naive and aware timestamps mixed
                continue
            if gap >= SLOW_REPLY_S:
                out.append(b)
    return out


@register(NAME, VERSION, "Would the customer leave this stage satisfied: effective, smooth, professional?")
def customer_agent_conversation_quality(ctx: VisitContext) -> EvalResult:
    """Effectiveness (resolution) and experience (what the customer went through); the reason names the worst."""
    vt = read_visit(ctx.visit)
    bad = guard(NAME, VERSION, vt)
    if bad:
        return bad
    res = conversation_resolution(ctx)
    effectiveness = 0.7 if res.score is None else res.score

    seen: dict[str, int] = {}
    loops: list[Line] = []
    for x in vt.agent:
        key = " ".join(x.low.split())
        if key in seen and len(key) > 25 and "anything else" not in key:
            loops.append(x)
        seen.setdefault(key, x.index)
    ret = customer_agent_context_retention(ctx)
    frustrated = [x for i, x in enumerate(vt.customer) if _frustrated(x, opening=i == 0)]
    found: dict[str, list[Line]] = {
        "frustration": frustrated,
        "rude": [x for x in vt.agent if RUDE.search(x.low)],
        "repeated_ask": _repeated_asks(vt.lines),
        "unanswered": [r.line for r in requests(vt.lines) if r.unanswered],
        "rejected": [x for i, x in enumerate(vt.customer) if i and _rejects(x) and x not in frustrated],
        "dead_end": [x for x in vt.agent if CONFUSED.search(x.low)],
        "agent_error": [x for x in vt.agent if _APOLOGY.search(x.low) or outcome_polarity(x.text) < 0],
        "lost_context": [vt.lines[0]] if ret.score is not None and ret.score < 0.5 else [],
        "loop": loops,
        "slow": _slow_replies(vt.lines),
    }
    # A finding near the end of the visit weighs more than one the agent recovered from (x0.75 first, x1.25 last).
    position = {id(x): i for i, x in enumerate(vt.lines)}
    span = max(1, len(vt.lines) - 1)

    def weight(x: Line) -> float:
        return 0.75 + 0.5 * position.get(id(x), 0) / span

    cost = {k: min(COST[k][1], COST[k][0] * sum(weight(x) for x in v)) for k, v in found.items() if v}
    if vt.customer and frustrated and frustrated[-1] is vt.customer[-1]:
        cost["left_frustrated"] = LEFT_FRUSTRATED
    long_by = max(0, len(vt.agent) - LONG_VISIT_AGENT_TURNS)
    if long_by:
        cost["long"] = min(0.3, 0.03 * long_by)
    last = vt.customer[-1] if vt.customer else None
    closed = last is not None and bool(THANKS.search(last.low)) and last not in frustrated
    experience = clamp(1.0 - CLOSING_BONUS - sum(cost.values()) + (CLOSING_BONUS if closed else 0.0))
    score = clamp(0.5 * effectiveness + 0.5 * experience)

    notes = _notes(found, res, ret, long_by, len(vt.agent))
    if notes:
        reason = "; ".join(notes[:2])
    else:
        reason = f"Effective and smooth over {len(vt.agent)} agent turn(s): no frustration, repeated asks or dead ends"
    if closed:
        reason += f"; the customer closed with thanks at turn {last.index}"  # type: ignore[union-attr]
    label = "good" if score >= 0.8 else "fair" if score >= PASS_AT else "poor"
    evidence: dict[str, object] = {"effectiveness": clamp(effectiveness), "experience": experience,
                                   **{f"{k}_turns": [x.index for x in v] for k, v in found.items() if v},
                                   "closed_with_thanks": closed}
    return EvalResult(NAME, VERSION, score, score >= PASS_AT, label, reason + vt.note() + ".", evidence)


def _notes(found: dict[str, list[Line]], res: EvalResult, ret: EvalResult, long_by: int, agent_turns: int) -> list[str]:
    """The findings as reason clauses, the most costly first."""
    out: list[tuple[float, str]] = []
    if res.score is not None and res.score < 0.5:
        out.append((1.0, f"unresolved: {res.reason.rstrip('.')}"))
    what = {"frustration": "the customer was frustrated", "rude": "unprofessional agent language",
            "repeated_ask": "the customer had to ask again", "dead_end": "the agent could not understand or help",
            "unanswered": "the customer asked for information the agent never gave",
            "rejected": "the customer turned down what the agent offered",
            "agent_error": "the agent apologised or reported a failure or an error", "loop": "the agent repeated a message word for word",
            "slow": "a slow agent reply"}
    for k, lines in found.items():
        if not lines:
            continue
        if k == "lost_context":
            out.append((COST[k][0], f"lost context: {ret.reason.rstrip('.')}"))
            continue
        x = lines[0]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        out.append((COST[k][0] * len(lines), f"turn {x.index}: {what[k]} ({quote(x.text, 40)!r}){more}"))
    if long_by:
        out.append((0.03 * long_by, f"a long visit ({agent_turns} agent turns)"))
    out.sort(key=lambda n: -n[0])
    return [n[1] for n in out]

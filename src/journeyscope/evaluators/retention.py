"""``customer_agent_context_retention``: did the agent keep what the customer already said?

The journey is read in order, earlier visits first. Every customer answer to an agent's request for a
kind of fact (a name, a number, a day...) and every fact the customer volunteered is remembered with
where it was given. A later request, in this visit, for a kind already given is a re-ask; it weighs
most when the customer restates the same value or says they already did. Re-asking is legitimate,
and not counted as a failure, when the agent asks to clarify, when the customer changed their mind
or the agent reported that the earlier choice failed, or when the first answer was no answer. A
customer correcting the agent with a fact they gave earlier, or the agent offering again something
the customer rejected, is a contradiction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from journeyscope import conventions as cv
from journeyscope.evaluators.base import clamp, guard, memo_last, no_evidence
from journeyscope.evaluators.facts import (
    KIND_LABELS as _LABELS,
    PERSONAL_KINDS,
    Ask,
    complains_repeated,
    asks_in,
    changes_mind,
    corrects,
    evasive,
    key_tokens,
    restates,
    same_kind,
    says_already,
    stated_values,
    volunteered,
)
from journeyscope.evaluators.lexicon import outcome_polarity
from journeyscope.evaluators.result import EvalResult, register
from journeyscope.evaluators.text import AGENT, Cue, Line, quote, read_visit
from journeyscope.evaluators.transcript import StageVisit, VisitContext

NAME = cv.RETENTION_EVALUATOR
VERSION = "local-4"  # 4: the outcome lexicon reads more failures and completions (a failure resets what may be re-asked)
# 3: e-mail, phone and IBAN values count as given whatever was asked; "I just gave it to you"
# 2: redacted values read as opaque; "I already told you" after any question
PASS_AT = 0.5

# Failure weights (score = 1 - the strongest): how sure each pattern is that context was lost.
W_REASK_RESTATED = 0.95  # re-asked an answered fact; the customer restated it or said they already had
W_REASK_UNANSWERED = 0.75  # re-asked an answered fact; the visit ends before the customer replies
W_REASK_OTHER = 0.6  # re-asked an answered fact; the customer gave something else
# A volunteered fact is read from free text ("I'm Ben, table for 4 at 7"), less surely than an answer to a
# question, so re-asking for it weighs less.
W_VOLUNTEERED_RESTATED = 0.55  # asked for a fact the customer had volunteered, who restated it
W_VOLUNTEERED = 0.3  # asked for a fact the customer had volunteered
W_CONTRADICTION = 0.85  # the customer corrected the agent with a fact given earlier
W_REOFFER = 0.7  # the agent offered again something the customer had rejected
W_STALE_RESTATED = 0.7  # re-asked after a failure or change of mind, but the customer gave the same value again
W_STALE = 0.1  # re-asked after a failure or change of mind and got a new value: legitimate, noted only
W_UNKNOWN_RESTATED = 0.5  # re-asked a fact the customer had said they don't have, and they said it again
W_UNKNOWN = 0.15  # re-asked a fact the customer had said they don't have, and this time got it

_REJECT = Cue(
    r"\b(?:don'?t|do not|dont) (?:want|like)\s+(?:the |a |an )?([A-Z][\w.]*(?: [A-Z][\w.]*)?)"
    r"|\bnot (?:the |a )?([A-Z][\w.]*(?: [A-Z][\w.]*)?)(?:,| please|\.|!|$)",
    ("t want", "t like", "not "),
)
_OFFERING = re.compile(r"\?|\bhow about\b|\bwould you like\b|\bi (?:can|could) (?:book|reserve|offer|schedule)\b"
                       r"|\brecommend\b|\bavailable\b|\bsuggest\b")


@lru_cache(maxsize=65536)
def _rejections(text: str) -> tuple[str, ...]:
    """Named options a customer turn rejects ("I don't want Dr. Johnson")."""
    return tuple((m.group(1) or m.group(2)).strip(".") for m in _REJECT.finditer(text))


@dataclass
class _Fact:
    kind: str
    label: str
    value: str  #: the customer's words
    stage: str
    visit_pos: int  #: position of the visit in the journey
    turn: int  #: index of the turn in its visit
    volunteered: bool
    order: int  #: position in the journey's line sequence
    unknown: bool = False  #: the customer said they don't have it ("I can't remember my PIN")


@dataclass
class _Finding:
    weight: float
    kind: str
    turn: int
    reason: str
    evidence: dict[str, object]


def _where(f: _Fact, current_pos: int) -> str:
    place = "this visit" if f.visit_pos == current_pos else f"stage {f.stage!r} (visit {f.visit_pos + 1} of the journey)"
    return f"turn {f.turn} of {place}"


def _find(facts: list[_Fact], ask: Ask, stage: str) -> _Fact | None:
    """The latest fact of the kind asked for that still applies here (personal facts apply journey-wide)."""
    for f in reversed(facts):
        if same_kind(f.kind, ask.kind) and (f.stage == stage or f.kind in PERSONAL_KINDS):
            return f
    return None


@dataclass
class _Memory:
    """What the journey has told the agent up to a point: facts given, options rejected, the last reset."""

    facts: list[_Fact] = field(default_factory=list)
    rejected: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    last_reset: int = -1  #: order of the last failure report or change of mind
    pending: tuple[Ask, ...] = ()  #: the asks of the last agent line, until the customer answers
    order: int = 0  #: lines read so far
    last: Line | None = None  #: the last line read
    agent_seen: bool = False

    def copy(self) -> _Memory:
        return _Memory(list(self.facts), dict(self.rejected), self.last_reset, self.pending, self.order, self.last,
                       self.agent_seen)

    def agent_said(self, line: Line) -> tuple[Ask, ...]:
        if outcome_polarity(line.text) < 0:
            self.last_reset = self.order
        self.pending = asks_in(line.text)
        self.agent_seen = True
        return self.pending

    def customer_said(self, pos: int, stage: str, line: Line) -> None:
        order = self.order
        if changes_mind(line.text):
            self.last_reset = order
        for name in _rejections(line.text):
            self.rejected[name] = (pos, stage, line.index)
        answered = [a for a in self.pending if not a.clarifying]
        if answered:
            a = answered[0]
            self.facts.append(_Fact(a.kind, a.label, line.text, stage, pos, line.index, False, order,
                                    unknown=evasive(line.text)))
        for kind, value in volunteered(line.text):
            if not (answered and same_kind(answered[0].kind, kind)):
                self.facts.append(_Fact(kind, kind.replace("_", " "), value, stage, pos, line.index, True, order))
        for kind, value in stated_values(line.text):
            # A value with a shape of its own is given as surely as an answer, whatever the question was.
            if not (answered and answered[0].kind == kind):
                self.facts.append(_Fact(kind, _LABELS[kind], value, stage, pos, line.index, False, order))
        self.pending = ()

    def read(self, line: Line) -> None:
        """Count ``line`` as read (after its role's handler)."""
        self.order += 1
        self.last = line


_MEMORIES: dict[int, tuple[tuple[StageVisit, ...], _Memory]] = {}
_MEMORIES_MAX = 4096


def _memory(history: tuple[StageVisit, ...]) -> _Memory:
    """The memory after a journey's earlier visits (not to be changed: copy it first).

    A journey's visits are scored in order and each one's history is the one before plus one visit,
    so memories are kept by the identity of their history's visits and extended one visit at a time:
    reading a journey costs its length, not its length squared.
    """
    k = len(history)
    mem: _Memory | None = None
    while k > 0:
        hit = _MEMORIES.get(id(history[k - 1]))
        if hit is not None and len(hit[0]) == k and all(a is b for a, b in zip(hit[0], history)):
            mem = hit[1]
            break
        k -= 1
    if mem is None:
        mem = _Memory()
    for pos in range(k, len(history)):
        mem = mem.copy()
        visit = history[pos]
        for line in read_visit(visit).lines:
            if line.role == AGENT:
                mem.agent_said(line)
            else:
                mem.customer_said(pos, visit.stage, line)
            mem.read(line)
        if len(_MEMORIES) >= _MEMORIES_MAX:
            _MEMORIES.pop(next(iter(_MEMORIES)))
        _MEMORIES[id(visit)] = (history[:pos + 1], mem)
    return mem


@register(NAME, VERSION, "Did the agent keep what the customer already said, across stages and hand-offs?")
@memo_last
def customer_agent_context_retention(ctx: VisitContext) -> EvalResult:
    """Score 1 = nothing re-asked or contradicted; low = the agent lost a fact the customer gave."""
    vt = read_visit(ctx.visit)
    bad = guard(NAME, VERSION, vt)
    if bad:
        return bad
    cur = len(ctx.history)
    stage = ctx.visit.stage
    mem = _memory(ctx.history).copy()
    lines = vt.lines
    findings: list[_Finding] = []
    clarifications: list[int] = []
    for i, line in enumerate(lines):
        if line.role == AGENT:
            facts = mem.facts
            for ask in mem.agent_said(line):
                if ask.clarifying:
                    clarifications.append(line.index)
                    continue
                f = _find(facts, ask, stage)
                reply = next((x for x in lines[i + 1:] if x.role != AGENT), None)
                if f is None:
                    if reply is not None and complains_repeated(reply.text):
                        findings.append(_complained(ask, line, reply, facts, cur))
                    continue
                if " or " not in ask.sentence and key_tokens(f.value) <= key_tokens(ask.sentence) \
                        and key_tokens(f.value):
                    continue  # the agent repeats the value back to confirm it
                if any(kind == f.kind for kind, _ in stated_values(ask.sentence)):
                    continue  # the agent quotes an address or number of that kind: confirming, not asking
                findings.append(_reask(f, line, reply, cur, stale=f.order < mem.last_reset))
            for name, (r_pos, r_stage, r_turn) in mem.rejected.items():
                if name.lower() in line.low and _OFFERING.search(line.low):
                    findings.append(_Finding(W_REOFFER, "rejected option", line.index,
                                             f"Turn {line.index}: the agent offered {name!r} again, which the "
                                             f"customer rejected at turn {r_turn} of stage {r_stage!r}.",
                                             {"rejected": name, "rejected_turn": r_turn}))
                    mem.rejected.pop(name)
                    break
        else:
            prev = lines[i - 1] if i else mem.last
            if corrects(line.text) and prev is not None and not prev.low.rstrip().endswith("?") \
                    and prev.role == AGENT:
                prior = next((f for f in reversed(mem.facts) if restates(line.text, f.value)), None)
                if prior is not None:
                    findings.append(_Finding(
                        W_CONTRADICTION, prior.kind, prev.index,
                        f"Turn {prev.index}: the agent's statement contradicted the customer's {prior.label} "
                        f"({quote(prior.value, 40)!r}, given at {_where(prior, cur)}); the customer corrected it at "
                        f"turn {line.index}.", {"fact": prior.label, "first_given": [prior.stage, prior.turn]}))
            mem.customer_said(cur, stage, line)
        mem.read(line)
    facts = mem.facts

    evidence: dict[str, object] = {"clarifications": clarifications, "truncated_turns": list(vt.truncated)}
    if not findings:
        if not facts and not mem.agent_seen:
            return no_evidence(NAME, VERSION, "No agent turn to judge retention by.")
        extra = f"; {len(clarifications)} clarifying question(s) are not counted" if clarifications else ""
        return EvalResult(NAME, VERSION, 1.0, True, "retained",
                          f"The agent asked for no fact the customer had already given ({len(facts)} fact(s) "
                          f"known){extra}{vt.note()}.", {**evidence, "facts_known": len(facts)})
    worst = max(findings, key=lambda f: f.weight)
    score = clamp(1.0 - worst.weight - 0.02 * (len(findings) - 1))
    if score >= PASS_AT:
        label = "retained"  # only legitimate or weak re-asks (a new value was needed); the reason says which
    elif worst.kind == "rejected option" or worst.weight == W_CONTRADICTION:
        label = "contradiction"
    else:
        label = "reasked"
    evidence.update(worst.evidence, turn=worst.turn, findings=len(findings))
    more = f" ({len(findings) - 1} more finding(s))" if len(findings) > 1 else ""
    return EvalResult(NAME, VERSION, score, score >= PASS_AT, label, worst.reason + more + vt.note(), evidence)


def _complained(ask: Ask, line: Line, reply: Line, facts: list[_Fact], cur: int) -> _Finding:
    """A question the facts did not tie to an earlier answer, but the customer says they gave it already.

    The customer's own "I already told you" is the most direct evidence of lost context there is, on any
    transcript; it covers facts whose kind the local reader does not know (a preference, a device).
    """
    prior = next((f for f in reversed(facts) if restates(reply.text, f.value)), None)
    where = f", first given at {_where(prior, cur)} ({quote(prior.value, 40)!r})" if prior else ""
    ev: dict[str, object] = {"fact": ask.label, "kind": ask.kind, "reply_turn": reply.index,
                             "customer_said": quote(reply.text, 80)}
    if prior is not None:
        ev["first_given"] = {"stage": prior.stage, "visit_position": prior.visit_pos, "turn": prior.turn}
    return _Finding(W_REASK_RESTATED, ask.kind, line.index,
                    f"Turn {line.index}: the agent asked for the customer's {ask.label}{where}; the customer "
                    f"said at turn {reply.index} they had already given it ({quote(reply.text, 40)!r}).", ev)


def _reask(f: _Fact, line: Line, reply: Line | None, cur: int, stale: bool) -> _Finding:
    """Weigh one re-ask of an already given fact by what came between and how the customer reacted."""
    given = f"{quote(f.value, 40)!r}, first given at {_where(f, cur)}"
    ev: dict[str, object] = {"fact": f.label, "kind": f.kind, "first_given": {"stage": f.stage,
                             "visit_position": f.visit_pos, "turn": f.turn}, "value": quote(f.value, 80)}
    base = f"Turn {line.index}: the agent asked again for the customer's {f.label} ({given})"
    restated = reply is not None and (says_already(reply.text) or complains_repeated(reply.text)
                                      or restates(reply.text, f.value)
                                      or (f.unknown and evasive(reply.text)))
    if reply is not None:
        ev["reply_turn"] = reply.index
    said = f"; the customer restated it at turn {reply.index} ({quote(reply.text, 40)!r})" if restated and reply else ""
    if f.unknown:
        w = W_UNKNOWN_RESTATED if restated else W_UNKNOWN
        return _Finding(w, f.kind, line.index, base.replace("asked again for", "asked again for (unknown to them)")
                        + said + ".", ev)
    if stale:
        w = W_STALE_RESTATED if restated else W_STALE
        note = " after a failure or change of plan"
        return _Finding(w, f.kind, line.index, base + note + (said or "; a new value was needed") + ".", ev)
    if reply is None:
        w = W_VOLUNTEERED if f.volunteered else W_REASK_UNANSWERED
    elif restated:
        w = W_VOLUNTEERED_RESTATED if f.volunteered else W_REASK_RESTATED
    else:
        w = W_VOLUNTEERED if f.volunteered else W_REASK_OTHER
    return _Finding(w, f.kind, line.index, base + said + ".", ev)

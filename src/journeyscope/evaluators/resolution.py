"""``conversation_resolution``: did this stage visit end with the customer's issue resolved, with closure?

The decisive evidence is the agent's *final* outcome statement in the visit ("your table is booked",
"unfortunately nothing is available"): earlier outcomes were superseded. The customer's reaction and
how the visit ends adjust it: thanks after a success confirms it, a complaint or a hand-off request
undoes it, a request the agent never answered or a customer who leaves mid-question is unresolved.
Tool results (role ``tool``) are checked against what the agent said: a success claimed right after a
tool reported an error is only partial, and when the agent states no outcome the last tool status
(``{"status": "declined"}``, ``{"success": true}``) stands in for one.
A visit with none of these has no outcome to judge and gets ``score=None``.
"""

from __future__ import annotations

import re

from journeyscope import conventions as cv
from journeyscope.evaluators.base import clamp, guard, memo_last
from journeyscope.evaluators.lexicon import (
    CONFUSED,
    ESCALATION,
    LEAVING,
    THANKS,
    objects,
    outcome_polarity,
    tool_polarity,
)
from journeyscope.evaluators.result import EvalResult, register
from journeyscope.evaluators.text import AGENT, CUSTOMER, Line, clip, quote, read_visit
from journeyscope.evaluators.transcript import VisitContext

NAME = cv.RESOLUTION_EVALUATOR
VERSION = "local-4"  # 4: "already registered to another account" is a conflict; created/installed/active, "Payment approved."
# 3: the information asked for, given with its value ("your balance is 5,703"), is an outcome
_REQUEST = re.compile(r"\?|\b(?:can|could|would|will) you\b|\bi (?:need|want|would like|'d like)\b|\bplease\b")
#: A visit passes when its score reaches this.
PASS_AT = 0.5


def _last_outcome(lines: tuple[Line, ...]) -> tuple[int, int, int, int]:
    """(position in ``lines`` of the final outcome turn or -1, its polarity, failures before it, successes before it)."""
    last_pos, last_pol, fails, oks = -1, 0, 0, 0
    for pos, line in enumerate(lines):
        if line.role != AGENT:
            continue
        pol = outcome_polarity(line.text)
        if pol:
            if last_pol < 0:
                fails += 1
            elif last_pol > 0:
                oks += 1
            last_pos, last_pol = pos, pol
    return last_pos, last_pol, fails, oks


def _tool_results(ctx: VisitContext) -> list[tuple[int, int, str]]:
    """(turn index, polarity, text) of each tool turn in the visit, in order (polarity 0: no status cue)."""
    return [(i, tool_polarity(clip(t.text)[0]), t.text) for i, t in enumerate(ctx.visit.turns)
            if (t.role or "").lower() == "tool" and t.text]


def _last_tool_before(tools: list[tuple[int, int, str]], index: int) -> tuple[int, int, str] | None:
    """The last tool turn before turn ``index`` (any polarity: a neutral retry resets an earlier error)."""
    before = [t for t in tools if t[0] < index]
    return before[-1] if before else None


def _result(score: float, label: str, reason: str, evidence: dict[str, object]) -> EvalResult:
    s = clamp(score)
    return EvalResult(NAME, VERSION, s, s >= PASS_AT, label, reason, evidence)


@register(NAME, VERSION, "Was the customer's issue in this stage resolved, with closure?")
@memo_last
def conversation_resolution(ctx: VisitContext) -> EvalResult:
    """Score 1 = resolved and closed, 0 = failed, unavailable, escalated or abandoned."""
    vt = read_visit(ctx.visit)
    bad = guard(NAME, VERSION, vt, need_agent=False)
    if bad:
        return bad
    lines, note = vt.lines, vt.note()
    pos, pol, fails, oks = _last_outcome(lines)
    after = lines[pos + 1:] if pos >= 0 else lines
    cust_after = [x for x in after if x.role == CUSTOMER]
    escalation = next((x for x in after if ESCALATION.search(x.low)), None)
    complaint = next((x for x in cust_after if objects(x.low)), None)
    thanks = next((x for x in cust_after if THANKS.search(x.low)), None)
    last = lines[-1]
    tools = _tool_results(ctx)
    evidence: dict[str, object] = {"truncated_turns": list(vt.truncated)}

    if escalation is not None:
        evidence.update(turn=escalation.index, escalation=quote(escalation.text))
        who = "customer asked for" if escalation.role == CUSTOMER else "agent announced"
        return _result(0.15, "unresolved",
                       f"Turn {escalation.index}: the {who} a hand-off ({quote(escalation.text)!r}){note}.", evidence)

    if pol:
        turn = lines[pos]
        evidence.update(turn=turn.index, outcome=quote(turn.text, 120), polarity=pol, failures_before=fails,
                        successes_before=oks)
        if pol > 0:
            score, label = 0.9, "resolved"
            why = f"Turn {turn.index}: the agent confirmed the outcome ({quote(turn.text)!r})"
            if fails:
                # The first request failed and an alternative was accepted: resolved, less cleanly.
                score -= 0.25
                why += f" after {fails} earlier failure(s)"
            tool = _last_tool_before(tools, turn.index)
            if tool is not None and tool[1] < 0:
                # The claim contradicts the system of record: do not take the agent's word for it.
                evidence.update(tool_turn=tool[0], tool_result=quote(tool[2], 80))
                return _result(0.4, "partial", why + f", but the tool result just before it (turn {tool[0]}: "
                               f"{quote(tool[2])!r}) reported a failure" + note + ".", evidence)
            if complaint is not None:
                score, label = 0.45, "partial"
                why += f", but the customer objected at turn {complaint.index} ({quote(complaint.text)!r})"
            elif thanks is not None:
                score += 0.07
                why += f" and the customer closed at turn {thanks.index} ({quote(thanks.text, 40)!r})"
            elif last.role == CUSTOMER and last.low.rstrip().endswith("?"):
                # Often the question that moved the journey to its next stage, so only a small deduction.
                score -= 0.1
                why += f"; the customer's last question at turn {last.index} got no reply in this stage"
            return _result(score, label, why + note + ".", evidence)
        score, label = 0.1, "unresolved"
        why = f"Turn {turn.index}: the agent reported a failure or unavailability ({quote(turn.text)!r})"
        if oks:
            score, label = 0.25, "partial"
            why += " after an earlier success was reported"
        if complaint is not None:
            score = max(0.0, score - 0.05)
            why += f"; the customer objected at turn {complaint.index}"
        return _result(score, label, why + note + ".", evidence)

    # No outcome statement: judge how the visit ended.
    confused = next((x for x in reversed(lines) if x.role == AGENT and CONFUSED.search(x.low)), None)
    closing = bool(THANKS.search(last.low)) and "?" not in last.low  # "thank you, that's all I need" asks nothing
    if last.role == CUSTOMER and _REQUEST.search(last.low) and not LEAVING.search(last.low) and not closing:
        evidence.update(turn=last.index)
        return _result(0.2, "unresolved",
                       f"Turn {last.index}: the customer's last message ({quote(last.text)!r}) got no agent "
                       f"reply in this visit{note}.", evidence)
    if confused is not None and (confused is lines[-1] or thanks is None):
        evidence.update(turn=confused.index)
        return _result(0.25, "unresolved",
                       f"Turn {confused.index}: the agent could not understand or handle the request "
                       f"({quote(confused.text)!r}){note}.", evidence)
    if last.role == CUSTOMER and LEAVING.search(last.low) and not THANKS.search(last.low):
        evidence.update(turn=last.index)
        return _result(0.2, "unresolved", f"Turn {last.index}: the customer left ({quote(last.text)!r}){note}.",
                       evidence)
    last_tool = next((t for t in reversed(tools) if t[1]), None)
    if last_tool is not None:
        t_index, t_pol, t_text = last_tool
        evidence.update(turn=t_index, tool_result=quote(t_text, 80), polarity=t_pol)
        if t_pol < 0:
            return _result(0.25, "unresolved", f"Turn {t_index}: the tool reported a failure ({quote(t_text)!r}) "
                           f"and the agent stated no outcome{note}.", evidence)
        closed = thanks is not None and thanks.index > t_index
        return _result(0.77 if closed else 0.7, "resolved",
                       f"Turn {t_index}: the tool reported success ({quote(t_text)!r}); the agent stated no "
                       f"outcome{' and the customer closed' if closed else ''}{note}.", evidence)
    if thanks is not None and any(x.role == AGENT for x in lines[: lines.index(thanks)]):
        evidence.update(turn=thanks.index)
        return _result(0.75, "resolved",
                       f"No explicit outcome, but the agent answered and the customer closed at turn "
                       f"{thanks.index} ({quote(thanks.text, 40)!r}){note}.", evidence)
    outcome = ctx.visit.outcome
    if outcome in ("abandoned", "escalated", "failed"):
        evidence.update(visit_outcome=outcome)
        return _result(0.2, "unresolved", f"No outcome in the text, and the visit was recorded as {outcome}{note}.",
                       evidence)
    return EvalResult(NAME, VERSION, None, None, "no_outcome",
                      f"No outcome statement, closure or unanswered request in {len(lines)} turn(s){note}.", evidence)

"""``customer_agent_conversation_quality``: effective, professional, efficient, responsive?

Four parts, each in [0, 1], averaged with weights and then capped by the worst hard signal:
- effectiveness: the visit's resolution score (an unresolved visit is not an effective one);
- tone: rude or dismissive agent language, and the customer's annoyance at the agent;
- efficiency: agent messages repeated word for word (loops), re-asked facts, long visits;
- responsiveness: agent turns that did not understand or could not handle the request.
"""

from __future__ import annotations

from journeyscope.evaluators.base import clamp, guard
from journeyscope.evaluators.lexicon import ANNOYED, CONFUSED, RUDE, THANKS
from journeyscope.evaluators.resolution import conversation_resolution
from journeyscope.evaluators.result import EvalResult, register
from journeyscope.evaluators.retention import customer_agent_context_retention
from journeyscope.evaluators.text import quote, read_visit
from journeyscope.evaluators.transcript import VisitContext

NAME = "customer_agent_conversation_quality"
VERSION = "local-1"
PASS_AT = 0.6
#: Agent turns beyond this in one visit start to cost efficiency.
LONG_VISIT_AGENT_TURNS = 12


@register(NAME, VERSION, "Was the agent effective, professional, efficient and responsive?")
def customer_agent_conversation_quality(ctx: VisitContext) -> EvalResult:
    """Weighted effectiveness, tone, efficiency and responsiveness; the reason names the weakest part."""
    vt = read_visit(ctx.visit)
    bad = guard(NAME, VERSION, vt)
    if bad:
        return bad
    notes: list[tuple[float, str]] = []

    res = conversation_resolution(ctx)
    effectiveness = 0.7 if res.score is None else res.score
    if res.score is not None and res.score < 0.5:
        notes.append((res.score, f"unresolved: {res.reason}"))

    rude = [x for x in vt.agent if RUDE.search(x.low)]
    annoyed = [x for x in vt.customer if ANNOYED.search(x.low) and not THANKS.search(x.low)]
    tone = 1.0 - 0.5 * len(rude) - 0.25 * len(annoyed)
    if rude:
        notes.append((0.0, f"turn {rude[0].index}: unprofessional agent language ({quote(rude[0].text, 40)!r})"))
    if annoyed:
        notes.append((0.3, f"turn {annoyed[0].index}: the customer was annoyed ({quote(annoyed[0].text, 40)!r})"))

    seen: dict[str, int] = {}
    loops: list[int] = []
    for x in vt.agent:
        key = " ".join(x.low.split())
        if key in seen and len(key) > 25 and "anything else" not in key:
            loops.append(x.index)
        seen.setdefault(key, x.index)
    ret = customer_agent_context_retention(ctx)
    efficiency = 1.0 - 0.2 * len(loops) - max(0, len(vt.agent) - LONG_VISIT_AGENT_TURNS) * 0.03
    if ret.score is not None and ret.score < 0.5:
        efficiency -= 0.3
        notes.append((ret.score, f"lost context: {ret.reason}"))
    if loops:
        notes.append((0.4, f"turn {loops[0]}: the agent repeated an earlier message word for word"))

    confused = [x for x in vt.agent if CONFUSED.search(x.low)]
    responsiveness = 1.0 - 0.35 * len(confused)
    if confused:
        notes.append((0.35, f"turn {confused[0].index}: the agent did not understand or could not help "
                            f"({quote(confused[0].text, 40)!r})"))

    parts = {"effectiveness": clamp(effectiveness), "tone": clamp(tone), "efficiency": clamp(efficiency),
             "responsiveness": clamp(responsiveness)}
    score = clamp(0.35 * parts["effectiveness"] + 0.3 * parts["tone"] + 0.15 * parts["efficiency"]
                  + 0.2 * parts["responsiveness"])
    if notes:
        notes.sort(key=lambda n: n[0])
        reason = "; ".join(n[1] for n in notes[:2])
    else:
        reason = f"Professional and responsive over {len(vt.agent)} agent turn(s); no loops, re-asks or complaints"
    label = "good" if score >= 0.8 else "fair" if score >= PASS_AT else "poor"
    return EvalResult(NAME, VERSION, score, score >= PASS_AT, label, reason + vt.note() + ".",
                      {**parts, "rude_turns": [x.index for x in rude], "annoyed_turns": [x.index for x in annoyed],
                       "loop_turns": loops, "confused_turns": [x.index for x in confused]})

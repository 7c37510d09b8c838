"""The LLM judge's rubric prompts and the transcript rendering they are applied to.

Each rubric asks for one JSON object and names the labels allowed, so the answer can be checked
strictly. Bump :data:`RUBRIC_VERSION` whenever a prompt changes: it is part of every cache key and
of the stored ``version``, so changed prompts re-score visits.
"""

from __future__ import annotations

from dataclasses import dataclass

from journeyscope import conventions as cv
from journeyscope.evaluators.text import AGENT, CUSTOMER, MAX_TURN_CHARS, clip
from journeyscope.evaluators.transcript import StageVisit, VisitContext

RUBRIC_VERSION = "llm-1"
#: Earlier visits included as context, newest kept (older ones are summarised by count).
MAX_HISTORY_VISITS = 8

_OUTPUT = (
    'Answer with one JSON object and nothing else: {"score": <number from 0 to 1>, "label": <one of %s>, '
    '"reason": <one or two sentences naming the deciding turn as [stage#visit:turn] and quoting its words>, '
    '"evidence": {"turns": [<turn indexes in the visit being judged>]}}.'
)


@dataclass(frozen=True, slots=True)
class Rubric:
    """One evaluator's instructions to the judge, and the labels its answer may use."""

    name: str
    labels: tuple[str, ...]
    instructions: str

    def system_prompt(self) -> str:
        """The full system message: role, rubric, output contract."""
        labels = ", ".join(f'"{x}"' for x in self.labels)
        return ("You are a strict, fair evaluator of customer-support conversations between a customer and an "
                "agent (human or AI). Tool and system lines are context, not things either party said. "
                "Judge only the visit marked JUDGE; earlier visits are context. " + self.instructions + " "
                + _OUTPUT % labels)


RUBRICS: dict[str, Rubric] = {
    r.name: r
    for r in (
        Rubric(
            cv.RESOLUTION_EVALUATOR,
            ("resolved", "partial", "unresolved", "no_outcome"),
            "Question: did this visit end with the customer's issue resolved and closed? Resolved (score near 1): "
            "the agent confirmed a completed action or fully answered, and nothing the customer asked is left "
            "open. Partial (around 0.5): resolved with an alternative after a failure, or part of the request "
            "left open. Unresolved (near 0): the agent reported failure or unavailability, could not help, "
            "left a question unanswered, a hand-off was requested, or the customer left. Use no_outcome with "
            "score 0.5 only when the visit contains no request and no outcome at all.",
        ),
        Rubric(
            cv.RETENTION_EVALUATOR,
            ("retained", "reasked", "contradiction"),
            "Question: did the agent keep what the customer already said, in this visit and in earlier visits "
            "(other stages or channels)? Failure (score near 0): the agent asks again for a fact the customer "
            "already gave (name, number, date, time, address, preference...), especially when the customer has "
            "to restate it, or the agent contradicts a given fact or offers again something the customer "
            "rejected. Not a failure: asking to clarify an ambiguous or missing answer, confirming a value by "
            "repeating it, or asking for a new value after the customer changed their mind or the first "
            "choice failed. Name the fact and where it was first given.",
        ),
        Rubric(
            cv.QUALITY_EVALUATOR,
            ("good", "fair", "poor"),
            "Question: how good was the agent in this visit? Weigh effectiveness (did it move the customer's "
            "goal forward), professional and calm tone, efficiency (few turns, no repetition, no dead ends or "
            "loops) and responsiveness (answers what was asked, understands the request). Score 1 = excellent, "
            "0 = unprofessional or useless.",
        ),
    )
}


def _render_visit(v: StageVisit, tag: str) -> list[str]:
    out = [f"--- {tag} stage={v.stage!r} visit={v.visit}" + (f" channel={v.channel}" if v.channel else "")]
    for i, t in enumerate(v.turns):
        if not t.text or not t.text.strip():
            continue
        text, cut = clip(t.text)
        role = t.role if t.role in (CUSTOMER, AGENT) else f"{t.role} (context)"
        stamp = f" @{t.ts.isoformat()}" if t.ts else ""
        note = f" [truncated to {MAX_TURN_CHARS} characters]" if cut else ""
        out.append(f"[{v.stage}#{v.visit}:{i}] {role}{stamp}: {' '.join(text.split())}{note}")
    return out


def render(ctx: VisitContext) -> str:
    """The transcript as the judge sees it: recent earlier visits, then the visit to judge."""
    lines: list[str] = []
    history = ctx.history[-MAX_HISTORY_VISITS:]
    skipped = len(ctx.history) - len(history)
    if skipped:
        lines.append(f"({skipped} earlier visit(s) omitted)")
    for v in history:
        lines.extend(_render_visit(v, "EARLIER"))
    lines.extend(_render_visit(ctx.visit, "JUDGE"))
    return "\n".join(lines)

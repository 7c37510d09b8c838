"""Friction signals, each its own evaluator: slow replies, repetition, channel switches, hesitation, re-entry.

They measure rather than judge, so the LLM engine reuses them as they are. Score 1 means no friction;
lower means more of it; ``passed`` is whether the visit stays under the friction threshold.
"""

from __future__ import annotations

from datetime import datetime

from journeyscope.evaluators.base import clamp, guard, no_evidence
from journeyscope.evaluators.facts import key_tokens, says_already
from journeyscope.evaluators.lexicon import HESITATION
from journeyscope.evaluators.result import EvalResult, register
from journeyscope.evaluators.text import AGENT, CUSTOMER, quote, read_visit, words
from journeyscope.evaluators.transcript import StageVisit, VisitContext

VERSION = "local-1"
PASS_AT = 0.5
#: An agent reply slower than this (seconds after the customer's turn) is slow.
SLOW_REPLY_S = 120.0
#: Any gap between consecutive turns longer than this is a silence.
SILENCE_S = 600.0


def _result(name: str, score: float, label: str, reason: str, evidence: dict[str, object]) -> EvalResult:
    s = clamp(score)
    return EvalResult(name, VERSION, s, s >= PASS_AT, label, reason, evidence)


@register("friction_latency", VERSION, "Slow agent replies and silences, from turn timestamps.")
def friction_latency(ctx: VisitContext) -> EvalResult:
    """Score falls with each agent reply slower than SLOW_REPLY_S and each silence over SILENCE_S."""
    name = "friction_latency"
    vt = read_visit(ctx.visit)
    bad = guard(name, VERSION, vt)
    if bad:
        return bad
    stamped = [(x, x.turn.ts) for x in vt.lines if x.turn.ts is not None]
    if len(stamped) < 2:
        return no_evidence(name, VERSION, "Turns have no usable timestamps, so latency cannot be measured.",
                           stamped_turns=len(stamped))
    slow: list[tuple[int, float]] = []
    silences: list[tuple[int, float]] = []
    waits: list[float] = []
    prev_line, prev_ts = stamped[0]
    for line, ts in stamped[1:]:
        gap = _seconds(prev_ts, ts)
        if gap >= SILENCE_S:
            silences.append((line.index, gap))
        if prev_line.role == CUSTOMER and line.role == AGENT:
            waits.append(gap)
            if gap >= SLOW_REPLY_S:
                slow.append((line.index, gap))
        prev_line, prev_ts = line, ts
    ev: dict[str, object] = {"slow_replies": slow, "silences": silences,
                             "median_reply_s": sorted(waits)[len(waits) // 2] if waits else None}
    if not slow and not silences:
        return _result(name, 1.0, "none", f"No agent reply over {SLOW_REPLY_S:.0f} s and no silence over "
                       f"{SILENCE_S:.0f} s across {len(waits)} repl(ies).", ev)
    score = 1.0 - 0.25 * len(slow) - 0.35 * len(silences)
    worst = max(slow + silences, key=lambda p: p[1])
    label = "silence" if silences else "slow_replies"
    return _result(name, score, label, f"{len(slow)} slow repl(ies) and {len(silences)} silence(s); the longest "
                   f"wait was {worst[1]:.0f} s before turn {worst[0]}.", ev)


def _seconds(a: datetime, b: datetime) -> float:
    try:
        return max(0.0, (b - a).total_seconds())
    except TypeError:  # naive and aware timestamps mixed
        return max(0.0, (b.replace(tzinfo=None) - a.replace(tzinfo=None)).total_seconds())


@register("friction_repetition", VERSION, "The customer repeats themself, within the visit or from earlier visits.")
def friction_repetition(ctx: VisitContext) -> EvalResult:
    """A customer turn that says again what an earlier one said, or says 'I already told you'."""
    name = "friction_repetition"
    vt = read_visit(ctx.visit)
    bad = guard(name, VERSION, vt, need_agent=False)
    if bad:
        return bad
    earlier = [(v.stage, x) for v in ctx.history for x in read_visit(v).customer]
    repeats: list[tuple[int, str]] = []
    for line in vt.customer:
        toks = key_tokens(line.text)
        hit = None
        if says_already(line.text):
            hit = "says they already said it"
        elif len(toks) >= 3:
            for stage, prev in earlier:
                other = key_tokens(prev.text)
                if other and len(toks & other) / len(toks | other) >= 0.7:
                    hit = f"repeats turn {prev.index} of stage {stage!r}"
                    break
        if hit:
            repeats.append((line.index, f"turn {line.index} ({quote(line.text, 40)!r}) {hit}"))
        earlier.append((ctx.visit.stage, line))
    ev: dict[str, object] = {"repeats": [i for i, _ in repeats]}
    if not repeats:
        return _result(name, 1.0, "none", f"No repeated customer turn among {len(vt.customer)}.", ev)
    return _result(name, 1.0 - 0.3 * len(repeats), "repetition", "; ".join(r for _, r in repeats[:3]) + ".", ev)


@register("friction_channel_switch", VERSION, "The customer changed channel (chat, voice, email...) for this visit.")
def friction_channel_switch(ctx: VisitContext) -> EvalResult:
    """Compares this visit's channel(s) with the channel of the visit before it."""
    name = "friction_channel_switch"

    def channels(v: StageVisit) -> list[str]:
        found = [t.channel for t in v.turns if t.channel]
        return found or ([v.channel] if v.channel else [])

    here = channels(ctx.visit)
    if not here:
        return no_evidence(name, VERSION, "No channel is recorded for this visit.")
    before = next((c for v in reversed(ctx.history) for c in reversed(channels(v))), None)
    seq = ([before] if before else []) + here
    switches = [(a, b) for a, b in zip(seq, seq[1:]) if a != b]
    ev: dict[str, object] = {"channels": here, "previous": before, "switches": len(switches)}
    if not switches:
        return _result(name, 1.0, "none", f"Stayed on {here[-1]!r}.", ev)
    a, b = switches[0]
    return _result(name, 1.0 - 0.4 * len(switches), "switched",
                   f"Switched channel {a!r} → {b!r} ({len(switches)} switch(es)).", ev)


@register("friction_hesitation", VERSION, "The customer hesitates: fillers, uncertainty, long pauses before replying.")
def friction_hesitation(ctx: VisitContext) -> EvalResult:
    """Hesitation markers in customer turns, and customer replies slower than SLOW_REPLY_S."""
    name = "friction_hesitation"
    vt = read_visit(ctx.visit)
    bad = guard(name, VERSION, vt)
    if bad:
        return bad
    marked = [x for x in vt.customer if HESITATION.search(x.low)]
    pauses: list[tuple[int, float]] = []
    for a, b in zip(vt.lines, vt.lines[1:]):
        if a.role == AGENT and b.role == CUSTOMER and a.turn.ts and b.turn.ts:
            gap = _seconds(a.turn.ts, b.turn.ts)
            if gap >= SLOW_REPLY_S:
                pauses.append((b.index, gap))
    n_words = sum(len(words(x.text)) for x in vt.customer) or 1
    ev: dict[str, object] = {"marked_turns": [x.index for x in marked], "pauses": pauses}
    if not marked and not pauses:
        return _result(name, 1.0, "none", f"No hesitation in {len(vt.customer)} customer turn(s).", ev)
    share = len(marked) / max(1, len(vt.customer))
    score = 1.0 - 0.5 * share - 0.15 * len(pauses) - (0.1 if n_words < 4 else 0.0)
    first = marked[0] if marked else None
    what = f"turn {first.index} ({quote(first.text, 40)!r})" if first else f"a {pauses[0][1]:.0f} s pause"
    return _result(name, score, "hesitation", f"{len(marked)} hesitant customer turn(s) and {len(pauses)} long "
                   f"pause(s), e.g. {what}.", ev)


@register("friction_reentry", VERSION, "Backtracking: the customer is back in a stage they had already visited.")
def friction_reentry(ctx: VisitContext) -> EvalResult:
    """Visit number >= 2, or this stage already appears in the journey's history."""
    name = "friction_reentry"
    stage = ctx.visit.stage
    earlier = [i for i, v in enumerate(ctx.history) if v.stage == stage]
    n = max(ctx.visit.visit, len(earlier) + 1)
    ev: dict[str, object] = {"visit": n, "earlier_positions": earlier}
    if n <= 1:
        return _result(name, 1.0, "none", f"First visit to stage {stage!r}.", ev)
    since = f", last left at journey position {earlier[-1]}" if earlier else ""
    return _result(name, 1.0 - 0.35 * (n - 1), "reentry", f"Visit {n} to stage {stage!r}{since}.", ev)

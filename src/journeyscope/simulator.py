"""A journey simulator that drives the real instrumentation.

It generates realistic customer journeys (several journey types across
channels, customers who hesitate, switch channels, repeat themselves, come back
to a stage, get slow replies or leave) and records them through
:mod:`journeyscope.instrument` exactly as an agent would: journey contexts,
stage spans, turn spans, outcome events and the customers' survey answers
(``journey.feedback``), with simulated timestamps. Nothing here writes rows by
hand, so the demo exercises the same path as production.

It includes the case study of ``seeds/001``: a streaming company's onboarding
journey whose app-install agent does not see the content-prefs context, so that
stage completes far less often (78% against about 90%), until a context bridge
ships and lifts it. Everything is deterministic under a seed.

Customers answer a post-visit survey about a quarter of the time, the way they
would: satisfied after a visit that went well (CSAT 4-5, little effort), not
after one they left or that made them repeat themselves, wait for slow replies
or answer a question again; the last stage of a journey also asks for NPS. The
answers draw from their own random stream, so every journey, turn and outcome
is the same with or without them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator

from journeyscope.instrument import journey, record_feedback, record_outcome, record_turn
from journeyscope.simulator_scripts import SCRIPTS, SURVEY_COMMENTS, Facts, JourneyType, StageScript

S = 1_000_000_000  # nanoseconds per second


class SeededIdGenerator(IdGenerator):
    """Trace and span ids from a seeded generator, so a seed gives the same ids every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed ^ 0x5EED)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``bridge_day`` is the day the app-install context bridge ships (None: never)."""

    journeys: int = 2000
    seed: int = 7
    days: int = 14
    end: datetime | None = None
    bridge_day: int | None = 10
    mix: dict[str, float] = field(default_factory=lambda: {"onboarding": 0.5, "support": 0.3, "returns": 0.2})


@dataclass
class SimulatedTurn:
    """One turn as the simulator schedules it, before it is recorded."""

    role: str
    text: str
    at: int
    name: str | None = None


@dataclass
class SimulatedVisit:
    """One planned stage visit: its turns and how it ends."""

    stage: str
    channel: str
    turns: list[SimulatedTurn]
    outcome: str | None = None  # explicit outcome event, when the agent records one
    feedback: dict[str, object] | None = None  # the survey answers, when the customer gave any (and "at")


#: Share of visits whose customer answers the survey (a little lower after a visit they left).
RESPONSE_RATE = 0.26
RESPONSE_RATE_LEFT = 0.2


def _clip(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def survey(rnd: random.Random, visit: SimulatedVisit, *, succeeded: bool, reasked: bool, last: bool,
           facts: Facts) -> dict[str, object] | None:
    """A customer's answers about one visit, following how it went (None: no answer), ``rnd`` its own stream."""
    if rnd.random() >= (RESPONSE_RATE if succeeded else RESPONSE_RATE_LEFT):
        return None
    turns = visit.turns
    slow = sum(1 for a, b in zip(turns, turns[1:]) if b.role == "agent" and b.at - a.at > 180 * S)
    repeats = sum(1 for t in turns if t.role == "customer" and t.text.startswith("Hello? "))
    friction = 0.7 * slow + 0.5 * repeats + (1.1 if reasked else 0.0)
    csat = _clip((4.4 if succeeded else 2.0) - friction + rnd.gauss(0, 0.7), 1, 5)
    answers: dict[str, object] = {
        "csat": csat,
        "ces": _clip((2.2 if succeeded else 5.0) + 1.1 * friction + rnd.gauss(0, 0.9), 1, 7),
        "at": turns[-1].at + rnd.randint(2, 15) * S,
    }
    if last or not succeeded:
        answers["nps"] = _clip(2.1 * csat - 0.6 + rnd.gauss(0, 1.3), 0, 10)
    if rnd.random() < 0.3:
        mood = "low" if csat <= 2 else "mid" if csat == 3 else "high"
        comment = rnd.choice(SURVEY_COMMENTS[mood])
        # Some customers leave a number to call back: redaction must catch it before it is stored.
        answers["comment"] = f"{comment} Call me on {facts.phone}." if mood == "low" and rnd.random() < 0.3 else comment
    return answers


class Simulator:
    """Plans journeys from :mod:`journeyscope.simulator_scripts` and records them through a tracer."""

    def __init__(self, config: SimulationConfig, tracer: trace.Tracer) -> None:
        self.config = config
        self.tracer = tracer
        self.random = random.Random(config.seed)
        self.survey_random = random.Random(config.seed ^ 0xFEEDBAC)  # its own stream: outcomes do not shift
        end = config.end or datetime.now(timezone.utc).replace(microsecond=0)
        self.end_ns = int(end.timestamp()) * S
        self.start_ns = self.end_ns - config.days * 86_400 * S

    # -- planning --------------------------------------------------------------------
    def _journey_type(self) -> JourneyType:
        names = list(self.config.mix)
        weights = [self.config.mix[n] for n in names]
        return SCRIPTS[self.random.choices(names, weights)[0]]

    def plan(self, index: int) -> tuple[dict[str, str], list[SimulatedVisit]]:
        """The attributes and visits of journey number ``index``."""
        rnd = self.random
        jtype = self._journey_type()
        facts = Facts.draw(rnd, index)
        # Leave the last 2 hours free of journey starts so most journeys finish inside the window.
        t = rnd.randrange(self.start_ns, self.end_ns - 2 * 3600 * S)
        day = (t - self.start_ns) // (86_400 * S)
        bridge = self.config.bridge_day is not None and day >= self.config.bridge_day
        cohort = rnd.choices(jtype.cohorts, jtype.cohort_weights)[0]
        attrs = {
            "journey_id": f"{jtype.name}-{self.config.seed}-{index:06d}",
            "customer_id": f"cust-{rnd.randrange(10**8):08d}",
            "name": jtype.name,
            "cohort": cohort,
            # Most customers consent to AI evaluation; some only to analytics.
            "consent": "analytics,ai_evaluation" if rnd.random() < 0.9 else "analytics",
        }
        visits: list[SimulatedVisit] = []
        channel = jtype.first_channel(rnd)
        stages = jtype.stages
        i = 0
        reentered: set[str] = set()
        while i < len(stages):
            script: StageScript = jtype.scripts[stages[i]]
            channel = script.channel_for(rnd, channel)
            success_p = script.completion(bridge=bridge, cohort=cohort)
            succeeded = rnd.random() < success_p
            visit = self._visit(script, facts, channel, t, succeeded, bridge, visits, final=i == len(stages) - 1)
            visit.feedback = survey(self.survey_random, visit, succeeded=succeeded, last=i == len(stages) - 1,
                                    reasked=script.reasks_without_bridge and not bridge, facts=facts)
            visits.append(visit)
            t = visit.turns[-1].at + rnd.randint(20, 600) * S
            if not succeeded:
                break
            # Backtracking: a customer returns to the previous stage (e.g. to fix a detail), then comes back.
            if i > 0 and stages[i] not in reentered and rnd.random() < script.backtrack_rate:
                reentered.add(stages[i])
                back = jtype.scripts[stages[i - 1]]
                visits.append(self._visit(back, facts, channel, t, True, bridge, visits, revisit=True))
                t = visits[-1].turns[-1].at + rnd.randint(20, 300) * S
                continue  # redo the current stage: a re-entry
            i += 1
        return attrs, visits

    def _visit(
        self,
        script: StageScript,
        facts: Facts,
        channel: str,
        t: int,
        succeeded: bool,
        bridge: bool,
        earlier: list[SimulatedVisit],
        revisit: bool = False,
        final: bool = False,
    ) -> SimulatedVisit:
        rnd = self.random
        lines = script.dialogue(rnd, facts, succeeded=succeeded, bridge=bridge, revisit=revisit)
        turns: list[SimulatedTurn] = []
        switched = False
        for role, text, name in lines:
            if role == "customer":
                pause = rnd.randint(4, 40)
                if rnd.random() < 0.06:  # hesitation: the customer pauses a long time before answering
                    pause = rnd.randint(180, 900)
            elif role == "agent":
                pause = rnd.randint(1, 8)
                if rnd.random() < script.slow_reply_rate:  # a slow reply: the moment journeys fade
                    pause = rnd.randint(240, 1500)
            else:
                pause = rnd.randint(0, 2)
            t += pause * S
            turns.append(SimulatedTurn(role, text, t, name))
            # The customer repeats themself when a reply is slow or misses the point.
            if role == "customer" and rnd.random() < 0.04:
                t += rnd.randint(30, 120) * S
                turns.append(SimulatedTurn("customer", f"Hello? {text}", t))
            if role == "agent" and not switched and len(turns) > 2 and rnd.random() < script.switch_rate:
                switched = True
        new_channel = script.switch_to(rnd, channel) if switched else channel
        outcome = None
        if not succeeded and rnd.random() < 0.5:
            outcome = script.failure_outcome(rnd)
        elif succeeded and (final or rnd.random() < 0.3):
            # Only an explicit event can complete the last stage: nothing follows it.
            outcome = "completed"
        return SimulatedVisit(script.name, new_channel if switched else channel, turns, outcome)

    # -- recording -------------------------------------------------------------------
    def record(self, attrs: dict[str, str], visits: list[SimulatedVisit]) -> int:
        """Record one planned journey through the instrumentation; return the number of spans."""
        tracer = self.tracer
        first = visits[0]
        spans = 0
        journey_args = dict(name=attrs["name"], cohort=attrs["cohort"], consent=attrs["consent"])
        # The root span carries the journey but no stage: it spans them all.
        with journey(attrs["journey_id"], attrs["customer_id"], channel=first.channel, **journey_args):
            root = tracer.start_span(f"journey {attrs['name']}", start_time=first.turns[0].at - S)
            spans += 1
            with trace.use_span(root, end_on_exit=False):
                for visit in visits:
                    with journey(
                        attrs["journey_id"], attrs["customer_id"], stage=visit.stage, channel=visit.channel, **journey_args
                    ):
                        spans += self._record_visit(visit)
            root.end(end_time=visits[-1].turns[-1].at + 2 * S)
        return spans

    def _record_visit(self, visit: SimulatedVisit) -> int:
        tracer = self.tracer
        spans = 1
        stage_span = tracer.start_span(f"stage {visit.stage}", start_time=visit.turns[0].at)
        with trace.use_span(stage_span, end_on_exit=False):
            for turn in visit.turns:
                if turn.role == "tool":
                    tool_span = tracer.start_span(f"tool {turn.name}", start_time=turn.at)
                    with trace.use_span(tool_span, end_on_exit=False):
                        record_turn("tool", turn.text, name=turn.name, start_time=turn.at, tracer=tracer)
                    tool_span.end(end_time=turn.at + S // 2)
                    spans += 2
                else:
                    record_turn(turn.role, turn.text, start_time=turn.at, tracer=tracer)
                    spans += 1
            if visit.outcome:
                record_outcome(visit.outcome, timestamp=visit.turns[-1].at)
            if visit.feedback:
                answers = dict(visit.feedback)
                at = answers.pop("at")
                assert isinstance(at, int)
                record_feedback(**answers, timestamp=at)  # type: ignore[arg-type]
        stage_span.end(end_time=visit.turns[-1].at + S)
        return spans

    def run(self, progress: Callable[[int], None] | None = None) -> Iterator[int]:
        """Simulate every journey; yields the span count of each as it is recorded."""
        for index in range(self.config.journeys):
            attrs, visits = self.plan(index)
            yield self.record(attrs, visits)
            if progress is not None:
                progress(1)


"""The simulator drives the real instrumentation, deterministically, and reproduces the case study."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope.instrument import JourneySpanProcessor
from journeyscope.simulator import SeededIdGenerator, SimulationConfig, Simulator

END = datetime(2026, 11, 1, tzinfo=timezone.utc)
ONBOARDING = ["sign-up", "payment", "content-prefs", "app-install", "first-watch"]


def simulate(config: SimulationConfig):
    sink = InMemorySpanExporter()
    provider = TracerProvider(id_generator=SeededIdGenerator(config.seed))
    provider.add_span_processor(JourneySpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(sink))
    list(Simulator(config, provider.get_tracer("sim")).run())
    provider.shutdown()
    return sink.get_finished_spans()


def stage_paths(spans) -> dict[str, list[str]]:
    """Per journey, the stages of its turns in time order, consecutive repeats folded (= visits)."""
    turns = defaultdict(list)
    for s in spans:
        if s.name == "journey.turn":
            turns[s.attributes["journey.id"]].append((s.start_time, s.attributes["journey.stage"]))
    paths = {}
    for journey_id, items in turns.items():
        path: list[str] = []
        for _, stage in sorted(items, key=lambda x: x[0]):
            if not path or path[-1] != stage:
                path.append(stage)
        paths[journey_id] = path
    return paths


def completion_by_stage(paths: dict[str, list[str]]) -> dict[str, float]:
    """Journeys that later reached a stage further along the map / journeys that entered the stage."""
    entered = defaultdict(int)
    completed = defaultdict(int)
    for path in paths.values():
        furthest = max(ONBOARDING.index(s) for s in path)
        for stage in set(path):
            entered[stage] += 1
            if furthest > ONBOARDING.index(stage):
                completed[stage] += 1
    return {s: completed[s] / entered[s] for s in ONBOARDING[:-1]}


def test_same_seed_same_spans():
    config = SimulationConfig(journeys=40, seed=3, end=END)
    first, second = simulate(config), simulate(config)

    def key(s):
        return (s.context.trace_id, s.context.span_id, s.name, s.start_time, s.end_time, dict(s.attributes))

    assert [key(s) for s in first] == [key(s) for s in second]
    assert [key(s) for s in simulate(SimulationConfig(journeys=40, seed=4, end=END))] != [key(s) for s in first]


def test_every_span_of_a_journey_is_tagged():
    spans = simulate(SimulationConfig(journeys=60, seed=5, end=END))
    for s in spans:
        assert s.attributes.get("journey.id"), s.name
        assert s.attributes.get("customer.id"), s.name
        assert s.attributes.get("journey.name") in {"onboarding", "support", "returns"}


def test_case_study_app_install_lags_until_the_context_bridge_ships():
    only_onboarding = {"onboarding": 1.0}
    without = completion_by_stage(
        stage_paths(simulate(SimulationConfig(journeys=900, seed=11, end=END, bridge_day=None, mix=only_onboarding)))
    )
    with_bridge = completion_by_stage(
        stage_paths(simulate(SimulationConfig(journeys=900, seed=11, end=END, bridge_day=0, mix=only_onboarding)))
    )
    others = [without[s] for s in ("sign-up", "payment", "content-prefs")]
    assert without["app-install"] < min(others) - 0.07, without
    assert 0.72 < without["app-install"] < 0.85, without
    assert with_bridge["app-install"] > without["app-install"] + 0.07, (without, with_bridge)
    assert with_bridge["app-install"] > 0.85, with_bridge


def test_friction_behaviours_all_occur():
    spans = simulate(SimulationConfig(journeys=400, seed=9, end=END))
    paths = stage_paths(spans)
    turns = sorted((s for s in spans if s.name == "journey.turn"), key=lambda s: (s.attributes["journey.id"], s.start_time))
    reentered = sum(1 for p in paths.values() if len(p) != len(set(p)))
    channels = defaultdict(set)
    for s in turns:
        channels[s.attributes["journey.id"]].add(s.attributes["journey.channel"])
    switched = sum(1 for c in channels.values() if len(c) > 1)
    repeats = sum(1 for s in turns if s.attributes["journey.turn.text"].startswith("Hello? "))
    gaps = [
        (b.start_time - a.start_time) / 1e9
        for a, b in zip(turns, turns[1:])
        if a.attributes["journey.id"] == b.attributes["journey.id"]
    ]
    slow = sum(1 for g in gaps if g > 180)
    left = sum(1 for p in paths.values() if p[-1] not in ("first-watch", "follow-up", "refund"))
    reask = sum(1 for s in turns if "already" in s.attributes["journey.turn.text"])
    assert reentered > 5 and switched > 20 and repeats > 20 and slow > 50 and left > 40 and reask > 20, (
        reentered, switched, repeats, slow, left, reask,
    )

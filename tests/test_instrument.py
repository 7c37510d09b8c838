"""Journey stamping with the real OpenTelemetry SDK: contexts, stages, threads, tasks, turns."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from journeyscope import instrument
from journeyscope.errors import InvalidJourneyError
from journeyscope.instrument import journey, record_outcome, record_turn, stage


def by_name(sink: InMemorySpanExporter) -> dict[str, dict[str, object]]:
    return {s.name: dict(s.attributes or {}) for s in sink.get_finished_spans()}


def test_every_span_in_a_journey_carries_the_journey(memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")
    with journey("j-1", "c-1", name="onboarding", stage="sign-up", channel="web", cohort="trial"):
        with tracer.start_as_current_span("outer"):
            with tracer.start_as_current_span("inner"):
                pass
    tracer.start_span("outside").end()
    spans = by_name(sink)
    for name in ("outer", "inner"):
        assert spans[name]["journey.id"] == "j-1"
        assert spans[name]["customer.id"] == "c-1"
        assert spans[name]["journey.name"] == "onboarding"
        assert spans[name]["journey.stage"] == "sign-up"
        assert spans[name]["journey.channel"] == "web"
        assert spans[name]["journey.cohort"] == "trial"
    assert "journey.id" not in spans["outside"]


def test_advance_moves_stage_and_exit_restores_previous_context(memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")
    with journey("outer-j", "c-0", stage="a"):
        with journey("j-2", "c-2", stage="sign-up", channel="chat") as j:
            tracer.start_span("first").end()
            j.advance("payment", channel="Phone")
            tracer.start_span("second").end()
        tracer.start_span("after").end()
    spans = by_name(sink)
    assert spans["first"]["journey.stage"] == "sign-up"
    assert spans["second"]["journey.stage"] == "payment"
    assert spans["second"]["journey.channel"] == "voice"  # documented alias
    assert spans["after"]["journey.id"] == "outer-j"
    assert spans["after"]["journey.stage"] == "a"


def test_explicit_attribute_beats_the_ambient_journey(memory_tracing):
    provider, sink = memory_tracing
    with journey("j", "c", stage="sign-up"):
        provider.get_tracer("t").start_span("explicit", attributes={"journey.stage": "payment"}).end()
    assert by_name(sink)["explicit"]["journey.stage"] == "payment"


def test_journey_follows_asyncio_tasks(memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")

    async def work(name: str) -> None:
        await asyncio.sleep(0)
        tracer.start_span(name).end()

    async def main() -> None:
        async with journey("j-async", "c-a", stage="s1"):
            await asyncio.gather(asyncio.create_task(work("t1")), asyncio.create_task(work("t2")))

    asyncio.run(main())
    spans = by_name(sink)
    assert spans["t1"]["journey.id"] == spans["t2"]["journey.id"] == "j-async"


def test_decorators_sync_and_async(memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")

    @journey("j-dec", "c-d", name="support", stage="contact")
    def handle() -> str:
        tracer.start_span("handled").end()
        return diagnose()

    @stage("diagnose")
    def diagnose() -> str:
        tracer.start_span("diagnosed").end()
        return "ok"

    @stage("resolve", channel="email")
    async def resolve() -> None:
        tracer.start_span("resolved").end()

    assert handle() == "ok"

    async def main() -> None:
        async with journey("j-dec", "c-d", stage="diagnose"):
            await resolve()

    asyncio.run(main())
    spans = by_name(sink)
    assert spans["handled"]["journey.stage"] == "contact"
    assert spans["diagnosed"]["journey.stage"] == "diagnose"
    assert spans["diagnosed"]["journey.name"] == "support"
    assert spans["resolved"]["journey.stage"] == "resolve"
    assert spans["resolved"]["journey.channel"] == "email"


def test_stage_decorator_outside_a_journey_is_an_error():
    @stage("x")
    def lonely() -> None:
        pass

    with pytest.raises(InvalidJourneyError, match="outside a journey"):
        lonely()


def test_journey_follows_threads_with_threading_instrumentation(memory_tracing):
    provider, sink = memory_tracing
    # setup() turns the threading instrumentation on; do it through setup() as a user would.
    tracing = instrument.setup(exporter=InMemorySpanExporter(), provider=provider, batch=False)
    tracer = provider.get_tracer("agent")
    with journey("j-thread", "c-t", stage="s"):
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda n: tracer.start_span(f"pool-{n}").end(), range(2)))
        worker = threading.Thread(target=lambda: tracer.start_span("thread").end())
        worker.start()
        worker.join()
    tracing.shutdown()
    spans = by_name(sink)
    for name in ("pool-0", "pool-1", "thread"):
        assert spans[name]["journey.id"] == "j-thread", name


def test_setup_adds_to_an_existing_provider_instead_of_replacing_it():
    own = InMemorySpanExporter()
    provider = TracerProvider()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider.add_span_processor(SimpleSpanProcessor(own))
    ours = InMemorySpanExporter()
    tracing = instrument.setup(exporter=ours, provider=provider, batch=False, instrument_threads=False)
    assert tracing.provider is provider and not tracing.owns_provider
    with journey("j-e", "c-e", stage="s"):
        provider.get_tracer("app").start_span("work").end()
    tracing.shutdown()
    assert [s.name for s in own.get_finished_spans()] == ["work"]  # the app's exporter still gets its spans
    assert ours.get_finished_spans()[0].attributes["journey.id"] == "j-e"


def test_turns_and_outcomes_follow_the_conventions(memory_tracing):
    provider, sink = memory_tracing
    tracer = provider.get_tracer("agent")
    with journey("j-t", "c-t", stage="payment"):
        record_turn("Customer", "My card was declined", tracer=tracer, start_time=1_000)
        record_turn("tool", '{"status": "declined"}', name="charge_card", tracer=tracer)
        record_outcome("failed", tracer=tracer)  # no current span: a span of its own carries the event
        with tracer.start_as_current_span("step") as step:
            record_outcome("completed")
    turns = [s for s in sink.get_finished_spans() if s.name == "journey.turn"]
    assert [t.attributes["journey.turn.role"] for t in turns] == ["customer", "tool"]
    assert turns[0].attributes["journey.turn.text"] == "My card was declined"
    assert turns[0].start_time == 1_000
    assert turns[1].attributes["journey.turn.name"] == "charge_card"
    own = next(s for s in sink.get_finished_spans() if s.name == "journey.stage.outcome")
    assert own.events[0].attributes["journey.stage.outcome"] == "failed"
    assert own.attributes["journey.stage"] == "payment"
    assert step.events[0].name == "journey.stage.outcome"
    assert step.events[0].attributes["journey.stage.outcome"] == "completed"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"journey_id": "", "customer_id": "c"}, "journey.id must not be empty"),
        ({"journey_id": "  ", "customer_id": "c"}, "journey.id must not be empty"),
        ({"journey_id": "j", "customer_id": None}, "customer.id must be a string"),
        ({"journey_id": 42, "customer_id": "c"}, "journey.id must be a string"),
        ({"journey_id": "j", "customer_id": "c", "stage": 2}, "journey.stage must be a string"),
        ({"journey_id": "j", "customer_id": "c", "stage": ""}, "journey.stage must not be empty"),
        ({"journey_id": "j", "customer_id": "c", "channel": "carrier-pigeon"}, "unknown journey.channel"),
        ({"journey_id": "j", "customer_id": "c", "stage": "x" * 300}, "at most 256"),
    ],
)
def test_bad_journey_values_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(InvalidJourneyError, match=message):
        journey(**kwargs)


def test_channel_normalisation_is_documented_not_silent():
    assert journey("j", "c", channel=" WhatsApp ").state.channel == "whatsapp"
    assert journey("j", "c", channel="e-mail").state.channel == "email"
    instrument.register_channel("kiosk")
    assert journey("j", "c", channel="Kiosk").state.channel == "kiosk"


def test_turn_outside_a_journey_or_with_bad_role_is_refused(memory_tracing):
    provider, _ = memory_tracing
    tracer = provider.get_tracer("agent")
    with pytest.raises(InvalidJourneyError, match="outside a journey"):
        record_turn("customer", "hi", tracer=tracer)
    with journey("j", "c"):
        with pytest.raises(InvalidJourneyError, match="unknown turn role"):
            record_turn("robot", "beep", tracer=tracer)
        with pytest.raises(InvalidJourneyError, match="unknown stage outcome"):
            record_outcome("sort-of", tracer=tracer)


def test_advance_needs_an_entered_context():
    with pytest.raises(InvalidJourneyError):
        journey("j", "c").advance("next")


def test_global_setup_without_provider_creates_and_registers_one(monkeypatch, tmp_path):
    # A fresh interpreter state is not available in-process; check the choice of exporter instead.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tracing = instrument.setup(set_global=False, instrument_threads=False, provider=TracerProvider())
    assert isinstance(tracing.exporter, OTLPSpanExporter)
    tracing.processors[1].shutdown()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("JOURNEYSCOPE_DB", str(tmp_path / "env.duckdb"))
    tracing = instrument.setup(set_global=False, instrument_threads=False, provider=TracerProvider(), batch=False)
    with journey("j-env", "c", stage="s"):
        tracing.provider.get_tracer("t").start_span("x").end()
    tracing.shutdown()
    tracing.exporter.shutdown()
    from journeyscope.warehouse import Warehouse

    with Warehouse(tmp_path / "env.duckdb", read_only=True) as wh:
        assert wh.query("SELECT journey_id FROM spans") == [("j-env",)]
    assert trace.get_tracer_provider() is not tracing.provider

"""``journeyscope demo``: simulated journeys through the real pipeline into a warehouse file.

The simulator records through :func:`journeyscope.instrument.setup` with the
embedded DuckDB exporter, exactly as an instrumented agent would, so the demo
is also an end-to-end check of instrument → warehouse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from journeyscope.errors import WarehouseError
from journeyscope.instrument import setup
from journeyscope.simulator import SeededIdGenerator, SimulationConfig, Simulator
from journeyscope.warehouse import Warehouse, load_journey_map
from journeyscope.warehouse.evaluations import DEFAULT_WORKERS, EvaluationSummary, evaluate_pending
from journeyscope.warehouse.markers import record_marker

# Journeys between explicit flushes: bounds the exporter queue, so a long demo
# never drops spans however fast the simulator produces them.
_FLUSH_EVERY = 250

#: The marker the demo leaves where the context bridge ships (the compare page splits there by default).
BRIDGE_MARKER = "context bridge ships (demo)"

#: The demo's journey map (the simulated journey types' stages in order), shipped with the package.
DEMO_MAP = Path(__file__).with_name("demo_journeys.toml")


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote."""

    db: str
    journeys: int
    spans_recorded: int
    summary: dict[str, Any]
    evaluation: EvaluationSummary | None = None
    #: The journey map the visits were derived with (the dashboard and later commands use it too).
    map_file: str | None = None


def demo_map_beside(db: str | Path) -> Path:
    """The demo's map as ``journeys.toml`` beside ``db``: copied there unless a map already is.

    Beside the file, so commands run where the warehouse is (``journeyscope funnel``, ``evaluate``)
    read the map the visits were derived with. A map already there is the user's and is kept.
    """
    target = Path(db).resolve().parent / "journeys.toml"
    if not target.exists():
        target.write_text(DEMO_MAP.read_text(encoding="utf-8"), encoding="utf-8")
    return target


def run_demo(
    db: str | Path,
    config: SimulationConfig,
    *,
    fresh: bool = False,
    evaluate: bool = True,
    progress: Callable[[int], None] | None = None,
    eval_progress: Callable[[int, int], None] | None = None,
    map_file: str | Path | None = None,
) -> DemoResult:
    """Simulate ``config.journeys`` journeys into the warehouse at ``db``, score them; return a summary.

    ``fresh`` deletes an existing file first (the demo never does so unasked).
    ``evaluate`` runs the local evaluators over every closed stage visit.
    ``map_file`` is the journey map to derive visits with (default: the shipped :data:`DEMO_MAP`).
    """
    path = Path(db)
    if fresh and path.exists():
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    # Open once up front: an unwritable path fails here with one clear error,
    # not later inside the exporter thread.
    map_path = Path(map_file) if map_file else DEMO_MAP
    warehouse = Warehouse(path, journey_map=load_journey_map(map_path))
    from journeyscope.warehouse.exporter import DuckDBSpanExporter

    exporter = DuckDBSpanExporter(warehouse)
    tracing = setup(
        exporter=exporter,
        set_global=False,
        id_generator=SeededIdGenerator(config.seed),
        service_name="journeyscope-demo",
        max_queue_size=1 << 17,
        max_export_batch_size=8192,
        instrument_threads=False,
    )
    spans = 0
    try:
        simulator = Simulator(config, tracing.tracer)
        for done, count in enumerate(simulator.run(progress), start=1):
            spans += count
            if done % _FLUSH_EVERY == 0:
                tracing.force_flush()
        if not tracing.force_flush():
            raise WarehouseError(f"could not write every simulated span to {path}")
    finally:
        tracing.shutdown()
    try:
        if simulator.bridge_at is not None:
            record_marker(warehouse, BRIDGE_MARKER, simulator.bridge_at)
        warehouse.update_visits()
        evaluation = evaluate_pending(warehouse, "local", progress=eval_progress,
                                      workers=DEFAULT_WORKERS) if evaluate else None
        summary = warehouse.summary()
    finally:
        warehouse.close()
    return DemoResult(str(path), config.journeys, spans, summary, evaluation, str(map_path))

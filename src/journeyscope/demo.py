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
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.evaluations import DEFAULT_WORKERS, EvaluationSummary, evaluate_pending

# Journeys between explicit flushes: bounds the exporter queue, so a long demo
# never drops spans however fast the simulator produces them.
_FLUSH_EVERY = 250


@dataclass(frozen=True)
class DemoResult:
    """What the demo wrote."""

    db: str
    journeys: int
    spans_recorded: int
    summary: dict[str, Any]
    evaluation: EvaluationSummary | None = None


def run_demo(
    db: str | Path,
    config: SimulationConfig,
    *,
    fresh: bool = False,
    evaluate: bool = True,
    progress: Callable[[int], None] | None = None,
    eval_progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Simulate ``config.journeys`` journeys into the warehouse at ``db``, score them; return a summary.

    ``fresh`` deletes an existing file first (the demo never does so unasked).
    ``evaluate`` runs the local evaluators over every closed stage visit.
    """
    path = Path(db)
    if fresh and path.exists():
        path.unlink()
        Path(str(path) + ".wal").unlink(missing_ok=True)
    # Open once up front: an unwritable path fails here with one clear error,
    # not later inside the exporter thread.
    warehouse = Warehouse(path)
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
        warehouse.update_visits()
        evaluation = evaluate_pending(warehouse, "local", progress=eval_progress,
                                      workers=DEFAULT_WORKERS) if evaluate else None
        summary = warehouse.summary()
    finally:
        warehouse.close()
    return DemoResult(str(path), config.journeys, spans, summary, evaluation)

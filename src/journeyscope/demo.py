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


def run_demo(
    db: str | Path,
    config: SimulationConfig,
    *,
    fresh: bool = False,
    progress: Callable[[int], None] | None = None,
) -> DemoResult:
    """Simulate ``config.journeys`` journeys into the warehouse at ``db``; return its summary.

    ``fresh`` deletes an existing file first (the demo never does so unasked).
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
        summary = warehouse.summary()
    finally:
        warehouse.close()
    return DemoResult(str(path), config.journeys, spans, summary)

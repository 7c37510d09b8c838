"""``journeyscope derive``: a derive worker on a lake (stage visits and scores of one partition of the journeys)."""

from __future__ import annotations

import click

from journeyscope.cli.common import db_option, db_threads_option, map_option


@click.command()
@db_option
@map_option
@click.option("--partition", default="1/1", show_default=True,
              help="K/N: derive the journeys of part K of N (one worker per part, e.g. 1/2 and 2/2).")
@click.option("--no-evaluate", is_flag=True, help="Derive stage visits only; do not score them.")
@click.option("--idle-sweep", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between sweeps closing idle journeys' open visits (abandoned).")
@click.option("--once", is_flag=True, help="Derive what has been committed so far, then exit (a batch job).")
@db_threads_option
def derive(db: str, map_file: str | None, partition: str, no_evaluate: bool, idle_sweep: float,
           once: bool, db_threads: int | None) -> None:
    """Derive stage visits and scores on a lake, for one partition of the journeys, until stopped (SIGTERM).

    Run beside receivers started with 'journeyscope serve --no-derive' (docs/deployment.md).
    """
    from journeyscope.server.derive_worker import DeriveWorker, WorkerSettings, stop_on_signals
    from journeyscope.warehouse.partition import Partition

    settings = WorkerSettings(db=db, partition=Partition.parse(partition), map_file=map_file, evaluate=not no_evaluate,
                              idle_sweep_s=idle_sweep, db_threads=db_threads)
    worker = DeriveWorker(settings)
    worker.run(once=once, ready=click.echo, stop=None if once else stop_on_signals())

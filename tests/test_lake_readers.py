"""The dashboard's reads on a lake while another process writes it: the dashboard's own file source
(``journeyscope dashboard --db ducklake:...``) in this process, a writer process storing journeys batch by batch
and deriving their visits, one real PostgreSQL catalog and one S3 store. Every read succeeds while the writer
commits (no single-writer lock on reads, no snapshot copies), sees whole commits only (the funnel never shrinks),
and once the writer is done the funnel, the stages and a journey's transcript equal what the same spans give in
an embedded file."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pyarrow as pa
import pytest

from journeyscope.dashboard.source import WarehouseSource
from journeyscope.demo import DEMO_MAP
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.reader import Reader
from support.services import ObjectStore, Postgres, object_store, postgres, services_folder  # noqa: F401
from test_lake import _lake_url, _spans, demo_file, lake_env  # noqa: F401


def _write(url: str, prefix: str, env: dict[str, str], batches: list[pa.Table]) -> None:
    os.environ.update(env)
    with Warehouse(url, data_path=prefix, journey_map=load_journey_map(DEMO_MAP)) as lake:
        for batch in batches:
            lake.ingest(batch)  # committed, then its journeys' visits derived


@pytest.mark.slow
def test_the_dashboard_source_reads_a_lake_while_another_process_writes_it(
        demo_file: Path, postgres: Postgres, object_store: ObjectStore,  # noqa: F811
        lake_env: dict[str, str]) -> None:  # noqa: F811
    spans = _spans(demo_file)
    batches = [spans.slice(i, 150) for i in range(0, spans.num_rows, 150)]
    url, prefix = _lake_url(postgres), object_store.new_prefix()
    Warehouse(url, data_path=prefix).close()  # made, so the dashboard has a lake to open from the start
    source = WarehouseSource(url, map_file=str(DEMO_MAP))
    assert "lake" in source.describe()
    journey = spans["journey_id"][0].as_py()
    writer = multiprocessing.get_context("spawn").Process(target=_write, args=(url, prefix, lake_env, batches))
    writer.start()
    reads, totals = 0, []
    try:
        while writer.is_alive() or reads == 0:
            with source.held():  # one page run: its reads on one open lake
                funnel = source.funnel()
                source.stages()
                source.journey_detail(journey)
            totals.append(sum(j["total"] for j in funnel["journeys"]))
            reads += 1
        writer.join(120)
        assert writer.exitcode == 0
    finally:
        if writer.is_alive():
            writer.kill()
    assert reads >= 2 and totals == sorted(totals)  # read while it wrote; whole commits only: never fewer journeys
    with Warehouse(demo_file, read_only=True, journey_map=load_journey_map(DEMO_MAP)) as embedded:
        same = Reader(embedded)
        assert source.funnel() == same.funnel()
        assert source.stages() == same.stages()
        detail = source.journey_detail(journey)  # its visits with their transcripts
        assert detail is not None and detail["visits"] and detail == same.journey_detail(journey)

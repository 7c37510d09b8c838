"""A lake laid out by journey (``journeyscope.warehouse.lake.LAYOUT``): after compaction one journey's read fetches
the row groups that can hold it, not every span the lake holds, and answers as the file does. On a real PostgreSQL
15 catalog and SeaweedFS (S3)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from journeyscope.demo import DEMO_MAP, run_demo
from journeyscope.simulator import SimulationConfig
from journeyscope.warehouse import Warehouse
from journeyscope.warehouse.journey_detail import journey_detail
from journeyscope.warehouse.journey_map import load_journey_map
from journeyscope.warehouse.lake import ALIAS, LAYOUT_VERSION, ROW_GROUP_ROWS
from journeyscope.warehouse.lake_upkeep import compact
from support.services import ObjectStore, Postgres, object_store, postgres, services_folder  # noqa: F401

#: DuckDB's smallest Parquet row group: a test-sized lake (12,000 spans) then has several, as a deployment's
#: compacted files of :data:`ROW_GROUP_ROWS` have hundreds.
_SMALL_GROUPS = 2048


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated warehouse file of 400 journeys (about 12,000 spans), visits derived, not scored."""
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    run_demo(path, SimulationConfig(journeys=400, seed=5), evaluate=False)
    return path


def _row_groups(lake: Warehouse) -> list[tuple[str, str]]:
    """The ``journey_id`` (min, max) of every row group of every Parquet file of ``spans``: what a scan filtered by
    journey tests before reading a group."""
    cur = lake.cursor()
    try:
        files = [r[0] for r in cur.execute(f"SELECT data_file FROM ducklake_list_files('{ALIAS}', 'spans')").fetchall()]
        return [(str(lo), str(hi)) for file in files for lo, hi in cur.execute(
            "SELECT stats_min_value, stats_max_value FROM parquet_metadata(?) WHERE path_in_schema = 'journey_id'",
            [file]).fetchall()]
    finally:
        cur.close()


def _bytes_fetched(lake: Warehouse, sql: str, params: list[object]) -> float:
    """Bytes a query fetched from the object store (DuckDB's HTTP statistics; its in-memory cache of remote files
    off, so earlier reads do not hide any)."""
    cur = lake.cursor()
    try:
        cur.execute("SET enable_external_file_cache = false")
        plan = cur.execute(f"EXPLAIN ANALYZE {sql}", params).fetchall()[0][1]
    finally:
        cur.close()
    found = re.search(r"in: ([\d.]+) (bytes|KiB|MiB|GiB)", plan)
    assert found, plan
    return float(found[1]) * {"bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[found[2]]


def test_after_compaction_one_journey_is_read_from_its_own_row_groups(demo_file: Path, postgres: Postgres,
                                                                       object_store: ObjectStore,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    journey_map = load_journey_map(DEMO_MAP)
    url = "ducklake:postgres:" + postgres.conninfo(postgres.new_database())
    with Warehouse(demo_file, read_only=True, journey_map=journey_map) as embedded, \
            Warehouse(url, data_path=object_store.new_prefix(), journey_map=journey_map) as lake:
        assert lake.query("SELECT value FROM meta WHERE key = 'lake_layout'") == [(str(LAYOUT_VERSION),)]
        assert lake.query(f"SELECT value FROM ducklake_options('{ALIAS}') "
                          "WHERE option_name = 'parquet_row_group_size'") == [(str(ROW_GROUP_ROWS),)]
        lake.query(f"CALL {ALIAS}.set_option('parquet_row_group_size', {_SMALL_GROUPS})")
        cur = embedded.cursor()
        spans = cur.execute("SELECT * EXCLUDE (seq, ingested_at) FROM spans ORDER BY seq").to_arrow_table()
        cur.close()
        step = spans.num_rows // 6 + 1
        for start in range(0, spans.num_rows, step):  # six commits, each a file holding spans of most journeys
            lake.ingest(spans.slice(start, step))
        compact(lake, margin_s=0)

        groups = _row_groups(lake)
        assert len(groups) >= spans.num_rows // _SMALL_GROUPS
        journeys = [r[0] for r in embedded.query(
            "SELECT journey_id FROM stage_visits GROUP BY journey_id ORDER BY hash(journey_id) LIMIT 5")]
        for journey in journeys:
            # sorted by journey: a journey's spans lie in one group, or two when it straddles their boundary
            assert 1 <= sum(lo <= journey <= hi for lo, hi in groups) <= 2, journey
        stored = lake.query(f"SELECT sum(data_file_size_bytes) FROM ducklake_list_files('{ALIAS}', 'spans')")[0][0]
        fetched = _bytes_fetched(lake, "SELECT * FROM spans WHERE journey_id = ?", [journeys[0]])
        assert fetched < stored / 2, (fetched, stored)

        for journey in journeys:  # the reads answer as the file's
            detail = journey_detail(lake, journey)
            assert detail is not None and detail["visits"] and detail == journey_detail(embedded, journey)


def test_a_lake_made_before_its_layout_is_laid_out_by_its_next_writer(postgres: Postgres, object_store: ObjectStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in object_store.env().items():
        monkeypatch.setenv(key, value)
    url, prefix = "ducklake:postgres:" + postgres.conninfo(postgres.new_database()), object_store.new_prefix()
    with Warehouse(url, data_path=prefix) as lake:  # as an older journeyscope left it: no layout recorded
        lake.query("DELETE FROM meta WHERE key = 'lake_layout'")
        lake.query(f"CALL {ALIAS}.set_option('parquet_row_group_size', 122880)")
    with Warehouse(url, data_path=prefix) as lake:
        assert lake.query("SELECT value FROM meta WHERE key = 'lake_layout'") == [(str(LAYOUT_VERSION),)]
        assert lake.query(f"SELECT value FROM ducklake_options('{ALIAS}') "
                          "WHERE option_name = 'parquet_row_group_size'") == [(str(ROW_GROUP_ROWS),)]

"""Moving an embedded warehouse file into a lake: ``journeyscope lake convert --from FILE --db ducklake:...``.

The file is first opened for writing once (which migrates it to the current schema), then every table of it is
copied into the empty lake in one lake transaction, rows as they are: spans keep their ``seq`` (the lake's
sequence is moved past them), and the derived tables (stage visits, evaluations, alerts) come along, so the
lake answers every read exactly as the file did.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from journeyscope.errors import ConfigError, WarehouseError
from journeyscope.warehouse.db_errors import warehouse_error
from journeyscope.warehouse.journey_map import JourneyMap
from journeyscope.warehouse.store import Warehouse

__all__ = ["convert_to_lake"]

_SOURCE = "js_source"


def convert_to_lake(source: str | Path, target: str, *, data_path: str | None = None,
                    journey_map: JourneyMap | None = None) -> dict[str, int]:
    """Copy the warehouse file ``source`` into the empty lake ``target``; return the rows copied per table."""
    source = Path(source)
    if not source.is_file():
        raise WarehouseError(f"no warehouse file at {source}")
    Warehouse(source, journey_map=journey_map).close()  # migrated to this journeyscope's schema
    copied: dict[str, int] = {}
    with Warehouse(target, data_path=data_path, journey_map=journey_map) as lake:
        if lake.lake is None or lake._catalog is None:
            raise ConfigError(f"--db {target!r} is not a lake: name one as ducklake:postgres:<conninfo> "
                              "or ducklake:CATALOG.duckdb")
        if lake.query("SELECT count(*) FROM spans")[0][0]:
            raise WarehouseError(f"the lake {lake.lake.describe()} already holds spans: convert into an empty one")
        try:
            top = _copy(lake, source, copied)
        except duckdb.Error as exc:
            raise warehouse_error(exc, f"cannot convert {source} into {lake.lake.describe()}") from None
        lake._catalog.advance_seq(top)
    return copied


def _copy(lake: Warehouse, source: Path, copied: dict[str, int]) -> int:
    """Every table of ``source`` into the lake, in one lake transaction; the highest span number copied."""
    literal = str(source).replace("'", "''")
    with lake.writing() as cur:
        cur.execute(f"ATTACH '{literal}' AS {_SOURCE} (READ_ONLY)")
        try:
            tables = [r[0] for r in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
                "ORDER BY table_name", [_SOURCE]).fetchall()]
            cur.execute("BEGIN TRANSACTION")
            try:
                for table in tables:
                    cur.execute(f'DELETE FROM "{table}"')
                    row = cur.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM {_SOURCE}."{table}"').fetchone()
                    copied[table] = int(row[0]) if row else 0
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            top = cur.execute(f"SELECT coalesce(max(seq), 0) FROM {_SOURCE}.spans").fetchone()
        finally:
            cur.execute(f"DETACH {_SOURCE}")
    return int(top[0]) if top else 0

"""The warehouse: spans in DuckDB, and everything derived from them.

A plain library (``Warehouse(path)``) that the CLI, the server and the
dashboard all call; SQL lives here and nowhere else.
"""

from journeyscope.warehouse.decisions import ROUTE_DECISIONS_EXPORT
from journeyscope.warehouse.evaluations import EVALUATIONS_EXPORT
from journeyscope.warehouse.export import register_export
from journeyscope.warehouse.journey_map import JourneyMap, load_journey_map
from journeyscope.warehouse.reviews import REVIEWS_EXPORT
from journeyscope.warehouse.rows import SPAN_SCHEMA, SpanRows
from journeyscope.warehouse.store import IngestResult, PreparedBatch, Warehouse
from journeyscope.warehouse.visits import STAGE_VISITS_EXPORT

register_export("stage-visits", STAGE_VISITS_EXPORT)
register_export("evaluations", EVALUATIONS_EXPORT)
register_export("route-decisions", ROUTE_DECISIONS_EXPORT)
register_export("reviews", REVIEWS_EXPORT)

__all__ = ["SPAN_SCHEMA", "IngestResult", "JourneyMap", "PreparedBatch", "SpanRows", "Warehouse", "load_journey_map"]

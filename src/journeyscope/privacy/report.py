"""What a redaction pass did, as counts: the input of the compliance view, never values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: One row per (span, pii_type, action): the ``redaction_log`` table's shape.
REPORT_SCHEMA = pa.schema(
    [
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("customer_id", pa.string()),
        ("journey_id", pa.string()),
        ("journey_name", pa.string()),
        ("stage", pa.string()),
        ("pii_type", pa.string()),
        ("action", pa.string()),
        ("count", pa.int64()),
        ("first_seen_at", pa.timestamp("ns")),
    ]
)


@dataclass
class RedactionReport:
    """Per span and per (pii_type, action), how many values were redacted.

    Kept per span so a retried batch (spans already stored) is logged once: the
    ``redaction_log`` key is (trace_id, span_id, pii_type, action). ``notes`` carry
    the policy's warnings (a type turned off, hashing without a key).
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def total(self) -> int:
        """Values redacted in the batch (failures included)."""
        return sum(r[8] for r in self.rows)

    @property
    def failures(self) -> int:
        """Fields that could not be redacted and were stored as ``[REDACTION_FAILED]``."""
        return sum(r[8] for r in self.rows if r[6] == "redaction_failed")

    def by_type(self) -> dict[str, int]:
        """Values redacted per PII type."""
        out: Counter[str] = Counter()
        for r in self.rows:
            out[r[6]] += r[8]
        return dict(out)

    def counts(self) -> dict[tuple[str | None, str | None, str, str], int]:
        """Counts per (journey_id, stage, pii_type, action), as the compliance view groups them."""
        out: Counter[tuple[str | None, str | None, str, str]] = Counter()
        for r in self.rows:
            out[(r[3], r[5], r[6], r[7])] += r[8]
        return dict(out)

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table in :data:`REPORT_SCHEMA` (for one insert into ``redaction_log``)."""
        columns = list(zip(*self.rows)) if self.rows else [[] for _ in REPORT_SCHEMA]
        return pa.table(
            [pa.array(list(col), type=f.type) for col, f in zip(columns, REPORT_SCHEMA)], schema=REPORT_SCHEMA
        )

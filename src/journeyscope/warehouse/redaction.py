"""Redaction at the one write path: what ``Warehouse.ingest`` calls, and where the counts go.

:class:`PrivacyHook` is the whole integration: ``redact`` before the insert (every
write path, OTLP, import, in-process exporter, goes through ingest), ``log`` in
the insert's transaction (counts per span, type and action into ``redaction_log``;
``INSERT OR IGNORE`` on the span key, so a retried batch is logged once), and
``record_policy`` when the warehouse opens for writing (the policy in force is
kept in ``meta`` for the compliance view, and a change is audited).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import duckdb
import pyarrow as pa

from journeyscope.privacy.columnar import redact_rows
from journeyscope.privacy.policy import PrivacyPolicy, load_policy
from journeyscope.privacy.redactor import Redactor
from journeyscope.privacy.report import RedactionReport
from journeyscope.warehouse import audit
from journeyscope.warehouse.dialect import insert_ignoring, set_meta, sibling

_REPORT_VIEW = "js_incoming_redactions"


class PrivacyHook:
    """A warehouse's privacy policy, compiled once; ``policy=None`` loads the one in force (on by default)."""

    def __init__(self, policy: PrivacyPolicy | None = None) -> None:
        self.policy = policy if policy is not None else load_policy()
        self.redactor = Redactor(self.policy)

    def redact(self, table: pa.Table) -> tuple[pa.Table, RedactionReport]:
        """The batch as it may be stored, and what was redacted (see :func:`redact_rows`)."""
        return redact_rows(table, self.redactor)

    def log(self, cur: duckdb.DuckDBPyConnection, report: RedactionReport, *, retried: bool = True) -> None:
        """Append the report to ``redaction_log`` inside the caller's (ingest) transaction; ``retried=False``:
        the caller knows none of its spans was stored before (a lake's ledger), so no check for them."""
        if not report:
            return
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        cur.register(_REPORT_VIEW, report.to_arrow())
        select = f"SELECT *, ?::TIMESTAMP AS logged_at FROM {_REPORT_VIEW}"
        try:
            if retried:
                insert_ignoring(cur, "redaction_log", select, ("trace_id", "span_id", "pii_type", "action"),
                                params=[now])
            else:
                cur.execute(f"INSERT INTO redaction_log {select}", [now])
        finally:
            cur.unregister(_REPORT_VIEW)

    def record_policy(self, con: duckdb.DuckDBPyConnection, *, actor: str | None = None) -> bool:
        """Keep the policy in force in ``meta``; audit it when it differs from the last (``True``)."""
        digest = self.policy.digest()
        row = con.execute("SELECT value FROM meta WHERE key = 'privacy_policy_digest'").fetchone()
        previous = row[0] if row else None
        if previous == digest:
            return False
        described = self.policy.describe()
        cur = sibling(con)
        try:
            cur.execute("BEGIN TRANSACTION")
            set_meta(cur, "privacy_policy", json.dumps(described))
            set_meta(cur, "privacy_policy_digest", digest)
            audit.record(cur, audit.POLICY_CHANGE, rows=0, actor=actor,
                         detail={"from": previous, "to": digest, "policy": described})
            cur.execute("COMMIT")
        except duckdb.Error:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        return True

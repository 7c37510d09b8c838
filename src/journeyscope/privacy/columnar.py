"""Redact a whole span batch (:data:`~journeyscope.warehouse.rows.SPAN_SCHEMA`) column by column
(or a batch of log records, whose columns of the same names are redacted alike, and their ``body``).

The expensive part of redaction is looking; most spans carry no PII. So each
column is first screened with one vectorised RE2 pass (``pyarrow.compute``) for
the characters every detector needs (an ``@``, six digits in a row allowing single
separators, a dotted quad, two colons); only the rows that pass are read in Python,
where checksums and keyed hashing need it. JSON columns are also screened for the
attribute keys the policy names. The screen is a superset of what the detectors
accept (digits that continue an id such as ``cust-63117699`` are not screened in,
since no detector would take them), so it never lets PII through unread.

Nothing is ever lost to a failure: a field that cannot be redacted becomes
``[REDACTION_FAILED]`` (a valid JSON marker in the JSON columns) and the batch goes on.
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyscope.privacy.policy import PrivacyPolicy
from journeyscope.privacy.redactor import FAILED, FAILED_TYPE, Counts, Redactor
from journeyscope.privacy.report import RedactionReport

logger = logging.getLogger(__name__)

#: Plain-text columns and JSON columns that may carry PII.
TEXT_COLUMNS = ("name", "status_message")
MAP_COLUMNS = ("attributes", "resource")  #: a JSON object of attributes
LIST_COLUMNS = ("events", "links")  #: a JSON array of objects with an ``attributes`` object
VALUE_COLUMNS = ("body",)  #: any JSON value (a log record's body)

# What every detector needs, as RE2: an "@"; six digits in a row (single separators allowed) that do not
# continue a word or an id ("cust-63117699" is not screened in; a value after a quote, a space, or an
# escaped newline in JSON text is); letters then digits (UK NI numbers, IBANs); a dotted quad; two
# colons (IPv6). A superset of the detectors' matches: a row it lets through is read exactly in Python.
_SCREEN = (r"@|(?:^|[^\w-]|\\[nrtbf]|\\u00[0-9a-fA-F]{2})\d(?:[ ().+/-]?\d){5}|[A-Z]{2} ?\d\d"
           r"|\d\.\d{1,3}\.\d{1,3}\.\d|[0-9A-Fa-f]*:[0-9A-Fa-f]*:")
_FAILED_JSON = {
    "attributes": json.dumps({"journeyscope.redaction": FAILED}),
    "resource": json.dumps({"journeyscope.redaction": FAILED}),
    "events": json.dumps([{"name": "journeyscope.redaction",
                           "attributes": {"journeyscope.redaction": FAILED}}]),
    "links": json.dumps([]),
    "body": json.dumps({"journeyscope.redaction": FAILED}),
}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_REDACTORS: dict[int, tuple[PrivacyPolicy, Redactor]] = {}


def redactor_for(policy: PrivacyPolicy | Redactor) -> Redactor:
    """One compiled redactor per policy object (its text cache is reused batch after batch)."""
    if isinstance(policy, Redactor):
        return policy
    hit = _REDACTORS.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_REDACTORS) > 16:
            _REDACTORS.clear()
        hit = _REDACTORS[id(policy)] = (policy, Redactor(policy))
    return hit[1]


def _re2_ok(pattern: str) -> bool:
    try:
        pc.match_substring_regex(pa.array([""]), pattern)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


class _Screen:
    """The vectorised pre-filter of one redactor: which rows of a column might hold PII."""

    def __init__(self, redactor: Redactor) -> None:
        parts = [_SCREEN]
        custom = [p.regex.pattern for p in redactor.policy.patterns]
        self.everything = not all(_re2_ok(p) for p in custom)
        parts += [f"(?:{p})" for p in custom]
        self.text = "|".join(parts)
        keys = "|".join(re.escape(k) for k in sorted(redactor.keys))
        self.json = self.text + (f'|"(?:{keys})":' if keys else "")

    def rows(self, column: pa.Array, name: str) -> pa.Array:
        """Indices of the rows of ``column`` to read in Python."""
        if self.everything:
            return pc.indices_nonzero(pc.is_valid(column))
        hit = pc.match_substring_regex(column, self.json if name in _FAILED_JSON else self.text)
        return pc.indices_nonzero(pc.fill_null(hit, False))


def _map_field(redactor: Redactor, text: str) -> tuple[str, Counts | None]:
    value = json.loads(text)
    if not isinstance(value, dict):
        return redactor.text(text)
    new, counts = redactor.attributes(value)
    return (_dumps(new), counts) if counts else (text, None)


def _value_field(redactor: Redactor, text: str) -> tuple[str, Counts | None]:
    new, counts = redactor.attributes({"body": json.loads(text)})
    return (_dumps(new.get("body")), counts) if counts else (text, None)


def _list_field(redactor: Redactor, text: str) -> tuple[str, Counts | None]:
    value = json.loads(text)
    if not isinstance(value, list):
        return redactor.text(text)
    total: Counts = Counter()
    for item in value:
        if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
            item["attributes"], counts = redactor.attributes(item["attributes"])
            if counts:
                total.update(counts)
    return (_dumps(value), total) if total else (text, None)


def _redact_column(
    column: pa.Array,
    indices: pa.Array,
    fn: Callable[[str], tuple[str, Counts | None]],
    failed: str,
    row_of: Callable[[int], int],
    per_row: dict[int, Counts],
) -> pa.Array:
    """Redact the screened rows of one string column; the others are kept as they are (zero copy)."""
    if len(indices) == 0:
        return column
    positions = indices.to_pylist()
    values = column.take(indices).to_pylist()
    memo: dict[str, tuple[str, Counts | None]] = {}
    out: list[str | None] = []
    changed = False
    for pos, value in zip(positions, values):
        if value is None:
            out.append(None)
            continue
        result = memo.get(value)
        if result is None:
            try:
                result = fn(value)
            except Exception:  # noqa: BLE001 - fail closed, keep the batch
                logger.exception("journeyscope: redacting a field failed; stored as %s", FAILED)
                result = (failed, Counter({(FAILED_TYPE, "failed"): 1}))
            memo[value] = result
        new, counts = result
        if counts:
            per_row.setdefault(row_of(pos), Counter()).update(counts)
        changed = changed or bool(counts)
        out.append(new)
    if not changed:
        return column
    mask = pc.is_in(pa.array(range(len(column)), pa.int64()), value_set=indices.cast(pa.int64()))
    return pc.replace_with_mask(column, mask, pa.array(out, type=column.type))


def _redact_repeated(
    column: pa.Array,
    screen: _Screen,
    fn: Callable[[str], tuple[str, Counts | None]],
    per_row: dict[int, Counts],
) -> pa.Array:
    """A column that repeats a few values (the resource of each process): redact each distinct value once."""
    encoded = column.dictionary_encode()
    distinct: pa.Array = encoded.dictionary
    found: dict[int, Counts] = {}
    new_distinct = _redact_column(distinct, screen.rows(distinct, "resource"), fn, _FAILED_JSON["resource"],
                                  int, found)
    if new_distinct is distinct:
        return column
    codes = encoded.indices
    for code, counts in found.items():
        for row in pc.indices_nonzero(pc.equal(codes, code)).to_pylist():
            per_row.setdefault(row, Counter()).update(counts)
    return new_distinct.take(codes)


def _redact_turns(
    turns: pa.Array, redactor: Redactor, screen: _Screen, per_row: dict[int, Counts]
) -> pa.Array:
    """Redact ``turns[].text``: one flat pass over every turn of the batch, then the lists rebuilt."""
    flat = turns.flatten()  # honours slicing offsets and null lists
    if len(flat) == 0:
        return turns
    children = flat.flatten()  # honours the struct's offset and validity
    names = [f.name for f in flat.type]
    texts = children[names.index("text")]
    lengths = pc.fill_null(pc.list_value_length(turns), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    bounds: list[int] = []

    def row_of(i: int) -> int:
        if not bounds:
            bounds.extend(offsets.to_pylist())
        return bisect.bisect_right(bounds, i) - 1

    new_texts = _redact_column(texts, screen.rows(texts, "text"), redactor.text, FAILED, row_of, per_row)
    if new_texts is texts:
        return turns
    children[names.index("text")] = new_texts
    struct = pa.StructArray.from_arrays(children, fields=list(flat.type),
                                        mask=flat.is_null() if flat.null_count else None)
    return pa.ListArray.from_arrays(offsets, struct, type=turns.type,
                                    mask=turns.is_null() if turns.null_count else None)


def redact_rows(table: pa.Table, policy: PrivacyPolicy | Redactor) -> tuple[pa.Table, RedactionReport]:
    """Redact a span batch per ``policy``; return the new table and counts per span, type and action.

    Columns that carry no PII are passed through untouched; so are ``customer_id``
    and ``journey_id`` (join keys). The table keeps its schema and row order.
    """
    redactor = redactor_for(policy)
    notes = tuple(redactor.policy.notes())
    if not redactor.active or table.num_rows == 0:
        return table, RedactionReport(notes=notes)
    screen = _Screen(redactor)
    per_row: dict[int, Counts] = {}
    turn_counts: dict[int, Counts] = {}
    same: Callable[[int], int] = int
    for name in (*TEXT_COLUMNS, *MAP_COLUMNS, *LIST_COLUMNS, *VALUE_COLUMNS, "turns"):
        if name not in table.column_names:
            continue
        index = table.column_names.index(name)
        column = table.column(index).combine_chunks()
        try:
            if name == "turns":
                new = _redact_turns(column, redactor, screen, turn_counts)
            elif name == "resource":
                new = _redact_repeated(column, screen, lambda t: _map_field(redactor, t), per_row)
            elif name in TEXT_COLUMNS:
                new = _redact_column(column, screen.rows(column, name), redactor.text, FAILED, same, per_row)
            else:
                walker = _map_field if name in MAP_COLUMNS else _value_field if name in VALUE_COLUMNS else _list_field
                fn = functools.partial(walker, redactor)
                new = _redact_column(column, screen.rows(column, name), fn, _FAILED_JSON[name], same, per_row)
        except Exception:  # noqa: BLE001 - a whole column failed: fail it closed, keep the rows
            logger.exception("journeyscope: redacting column %s failed; stored as %s", name, FAILED)
            new = _failed_column(column, name)
            for row in range(table.num_rows):
                per_row.setdefault(row, Counter())[(FAILED_TYPE, "failed")] += 1
        if new is not column:
            table = table.set_column(index, table.schema.field(index), new)
    # A span's turns are read from its attributes (journey.turn.text, llm.*_messages...): the same
    # values, counted once, unless the turns column holds more than the attributes did.
    for row, counts in turn_counts.items():
        mine = per_row.setdefault(row, Counter())
        for key, n in counts.items():
            mine[key] = max(mine[key], n)
    return table, RedactionReport(_report_rows(table, per_row), notes)


def _failed_column(column: pa.Array, name: str) -> pa.Array:
    if pa.types.is_list(column.type):
        return pa.nulls(len(column), column.type)
    marker = _FAILED_JSON.get(name, FAILED)
    return pc.if_else(pc.is_valid(column), pa.scalar(marker, column.type), pa.scalar(None, column.type))


def _report_rows(table: pa.Table, per_row: dict[int, Counts]) -> list[tuple[Any, ...]]:
    if not per_row:
        return []
    rows = sorted(per_row)
    take = pa.array(rows, pa.int64())

    def col(name: str) -> list[Any]:
        if name not in table.column_names:
            return [None] * len(rows)
        column = table.column(name).take(take)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        return column.to_pylist()

    cols = [col(n) for n in ("trace_id", "span_id", "customer_id", "journey_id", "journey_name", "stage",
                             "start_time")]
    out = []
    for i, row in enumerate(rows):
        head = tuple(c[i] for c in cols[:6])
        for (pii_type, action), count in sorted(per_row[row].items()):
            out.append((*head, pii_type, action, count, cols[6][i]))
    return out

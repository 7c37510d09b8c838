"""Import journeys from the JSONL format of docs/contracts.md (plain or ``.gz``).

Each line becomes the spans the instrumentation would have produced for it:
one ``journey.turn`` span per turn (``journey.turn.role/text/name`` and the
journey attributes, at the turn's original time), one
``journey.stage.outcome`` span carrying the outcome event per outcome item, and
one ``journey.feedback`` span carrying the feedback event per feedback item.
Ids are derived from the journey id and the item's index (SHA-256), so
importing the same file again adds nothing (the warehouse ignores spans it
already has), and spans are written in line order, so turns that share a
timestamp keep their order (``seq``; also ``journey.turn.index``).

A broken line is reported with its number and skipped; every good line is kept.
A feedback score that is out of its scale or not a number is reported with its
line and left out; the rest of the line, and of the item, is kept.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from journeyscope.errors import ImportLineError, InvalidInputError, InvalidJourneyError
from journeyscope import conventions as cv
from journeyscope.warehouse.rows import SpanRows
from journeyscope.warehouse.store import Warehouse

__all__ = ["ImportSummary", "import_jsonl", "journey_rows"]

SCOPE_NAME = "journeyscope.import"
TURN_INDEX = "journey.turn.index"
#: Journeys per ingest call: big enough for columnar inserts, small enough to show progress.
BATCH_JOURNEYS = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class ImportSummary:
    """What an import did: journeys and spans read, spans new to the warehouse, lines skipped."""

    journeys: int = 0
    spans: int = 0
    new_spans: int = 0
    duplicates: int = 0
    skipped: list[ImportLineError] = field(default_factory=list)
    #: Values left out of lines that were kept (a feedback score outside its scale).
    warnings: list[ImportLineError] = field(default_factory=list)

    @property
    def skipped_lines(self) -> list[int]:
        return [e.line for e in self.skipped]


def _id(journey_id: str, what: str, nbytes: int) -> str:
    digest = hashlib.sha256(f"{journey_id}\x1f{what}".encode()).digest()[:nbytes]
    if not any(digest):  # pragma: no cover - astronomically unlikely, but all-zero ids are invalid
        digest = b"\x01" + digest[1:]
    return digest.hex()


def _timestamp_ns(value: Any, where: str) -> int:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where}: 'ts' must be an ISO 8601 timestamp string, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{where}: 'ts' is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _text_field(record: dict[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise InvalidInputError(f"{where}: missing field {key!r}")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _id_field(record: dict[str, Any], key: str) -> str:
    """A journey's or customer's id: what the receiver would store (at most the ids' length limit)."""
    value = _text_field(record, key, "journey", required=True)
    assert value is not None
    if len(value) > cv.MAX_VALUE_LENGTH:
        raise InvalidInputError(f"journey: {key!r} is {len(value)} characters long; at most {cv.MAX_VALUE_LENGTH}")
    return value


def _feedback_event(item: dict[str, Any], stage: str, start: int, where: str, warnings: list[str]) -> dict[str, Any]:
    """The ``journey.feedback`` event of a feedback item; a bad score is left out and reported in ``warnings``."""
    attributes: dict[str, Any] = {cv.JOURNEY_STAGE: stage}
    for measure in cv.FEEDBACK_SCALES:
        if item.get(measure) is not None:
            attributes[cv.FEEDBACK_SCALES[measure][0]] = item[measure]
    comment = item.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise InvalidInputError(f"{where}: 'comment' must be a string, got {comment!r}")
        attributes[cv.FEEDBACK_COMMENT] = comment
    if len(attributes) == 1:
        raise InvalidInputError(f"{where}: a feedback item needs at least one of csat, ces, nps or comment")
    attributes, problems = cv.clean_feedback(attributes)
    warnings.extend(f"{where}: {p} (left out; the rest is kept)" for p in problems)
    return {"name": cv.FEEDBACK_EVENT, "time": start, "attributes": attributes}


def journey_rows(record: Any, rows: SpanRows, warnings: list[str] | None = None) -> int:
    """Append the spans of one journey record to ``rows``; return how many.

    Validates the whole record before appending anything, so a bad item never
    leaves half a journey behind. Feedback scores left out are described in ``warnings``.
    """
    warnings = warnings if warnings is not None else []
    if not isinstance(record, dict):
        raise InvalidInputError("a line must be a JSON object (one journey)")
    journey_id = _id_field(record, "journey_id")
    customer_id = _id_field(record, "customer_id")
    base: dict[str, Any] = {cv.JOURNEY_ID: journey_id, cv.CUSTOMER_ID: customer_id}
    name = _text_field(record, "journey", "journey", required=False)
    if name:
        base[cv.JOURNEY_NAME] = name
    cohort = _text_field(record, "cohort", "journey", required=False)
    if cohort:
        base[cv.JOURNEY_COHORT] = cohort
    channel = _text_field(record, "channel", "journey", required=False)
    turns = record.get("turns")
    if not isinstance(turns, list):
        raise InvalidInputError("missing field 'turns' (a list of turns)" if turns is None else "'turns' must be a list")
    spans: list[dict[str, Any]] = []
    for index, item in enumerate(turns):
        where = f"turns[{index}]"
        if not isinstance(item, dict):
            raise InvalidInputError(f"{where}: must be an object")
        start = _timestamp_ns(item.get("ts"), where)
        stage = _text_field(item, "stage", where, required=item.get("event") != "outcome")
        attrs = dict(base)
        if stage:
            attrs[cv.JOURNEY_STAGE] = stage
        item_channel = _text_field(item, "channel", where, required=False) or channel
        if item_channel:
            attrs[cv.JOURNEY_CHANNEL] = item_channel.lower()
        attrs[TURN_INDEX] = index
        if item.get("event") == "feedback":
            assert stage is not None
            event = _feedback_event(item, stage, start, where, warnings)
            spans.append({"name": cv.FEEDBACK_SPAN, "start": start, "attrs": attrs, "events": [event]})
            continue
        if "event" in item:
            if item["event"] != "outcome":
                raise InvalidInputError(f"{where}: unknown event {item['event']!r}; expected 'outcome' or 'feedback'")
            try:
                outcome = cv.normalize_outcome(item.get("outcome"))
            except InvalidJourneyError as exc:
                raise InvalidInputError(f"{where}: {exc}") from None
            event = {"name": cv.OUTCOME_EVENT, "time": start, "attributes": {cv.OUTCOME_ATTRIBUTE: outcome}}
            spans.append({"name": cv.OUTCOME_SPAN, "start": start, "attrs": attrs, "events": [event]})
            continue
        try:
            role = cv.normalize_role(item.get("role"))
        except InvalidJourneyError as exc:
            raise InvalidInputError(f"{where}: {exc}") from None
        text = item.get("text")
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: 'text' must be a string, got {text!r}")
        attrs[cv.TURN_ROLE] = role
        attrs[cv.TURN_TEXT] = text
        turn_name = _text_field(item, "name", where, required=False)
        if turn_name:
            attrs[cv.TURN_NAME] = turn_name
        spans.append({"name": cv.TURN_SPAN, "start": start, "attrs": attrs, "events": []})
    trace_id = _id(journey_id, "trace", 16)
    for index, span in enumerate(spans):
        rows.add(
            trace_id=trace_id,
            span_id=_id(journey_id, f"item-{index}", 8),
            parent_span_id=None,
            name=span["name"],
            start_ns=span["start"],
            end_ns=span["start"],
            attributes=span["attrs"],
            events=span["events"],
            kind="internal",
            status_code="unset",
            scope_name=SCOPE_NAME,
        )
    return len(spans)


def _lines(handle: IO[str], path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """``(number, line, error)``: a line that is not UTF-8 is reported, not fatal."""
    number = 0
    while True:
        number += 1
        try:
            line = handle.readline()
        except UnicodeDecodeError as exc:
            yield number, None, f"not UTF-8 text ({exc.reason})"
            continue
        except (OSError, EOFError) as exc:
            raise InvalidInputError(f"cannot read {path} at line {number}: {exc}") from None
        if not line:
            return
        yield number, line, None


def import_jsonl(
    warehouse: Warehouse | Callable[[], Warehouse],
    path: str | Path,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_skip: Callable[[ImportLineError], None] | None = None,
) -> ImportSummary:
    """Import a JSONL (or ``.jsonl.gz``) file of journeys into ``warehouse``.

    ``warehouse`` may be a function that opens one: it is called at the first valid journey, so a
    file without one creates and changes nothing (``summary.journeys == 0``).
    ``on_progress`` gets the bytes read so far of the underlying file (for a progress bar);
    ``on_skip`` is told about each broken line as it is met.
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"no such file: {source}")
    summary = ImportSummary()
    rows = SpanRows()
    pending = 0
    raw = source.open("rb")

    target: Warehouse | None = warehouse if isinstance(warehouse, Warehouse) else None

    def flush() -> None:
        nonlocal rows, pending, target
        if len(rows):
            if target is None:
                target = warehouse()  # type: ignore[operator]
            result = target.ingest(rows)
            summary.new_spans += result.accepted
            summary.duplicates += result.duplicates
        rows, pending = SpanRows(), 0
        if on_progress is not None:
            on_progress(raw.tell())

    try:
        handle = io.TextIOWrapper(gzip.open(raw), encoding="utf-8") if source.suffix == ".gz" else io.TextIOWrapper(
            raw, encoding="utf-8"
        )
        for number, line, error in _lines(handle, source):
            if line is not None and not line.strip():
                continue
            try:
                if error is not None:
                    raise InvalidInputError(error)
                assert line is not None
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise InvalidInputError(f"not JSON ({exc})") from None
                scratch = SpanRows()
                left_out: list[str] = []
                count = journey_rows(record, scratch, left_out)
                summary.warnings.extend(ImportLineError(number, w) for w in left_out)
            except InvalidInputError as exc:
                problem = ImportLineError(number, str(exc))
                summary.skipped.append(problem)
                if on_skip is not None:
                    on_skip(problem)
                continue
            for name, values in scratch.columns.items():
                rows.columns[name].extend(values)
            summary.journeys += 1
            summary.spans += count
            pending += 1
            if pending >= BATCH_JOURNEYS:
                flush()
        flush()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InvalidInputError(f"cannot read {source}: {exc}") from None
    finally:
        raw.close()
    return summary

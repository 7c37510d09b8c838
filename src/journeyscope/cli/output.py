"""How commands print records: tables that fit the terminal, or JSON and CSV for scripts.

Tables never cut a name: text columns fold onto more lines, number columns keep their
width, and a table that would be too wide is split by the caller into narrower ones.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.table import Table

from journeyscope.conventions import EVALUATOR_PREFIX

__all__ = ["SHORT_LEGEND", "TABLE_FORMATS", "short_name", "emit_csv", "emit_json", "table"]

#: ``--format`` choices of a command that prints records.
TABLE_FORMATS = ("table", "json", "csv")

#: Evaluator names in tables lose this prefix (the legend says so), so they fit 80 columns whole.
_PREFIX = EVALUATOR_PREFIX
SHORT_LEGEND = f"names without the {_PREFIX} prefix"


def short_name(evaluator: str) -> str:
    """``customer_agent_context_retention`` → ``context_retention``; other names as they are."""
    return evaluator.removeprefix(_PREFIX)


def table(title: str | None, columns: Sequence[str], *, text: Iterable[str] = ()) -> Table:
    """A table whose ``text`` columns fold long names onto more lines and whose others never wrap."""
    wrapped = set(text)
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for name in columns:
        if name in wrapped:
            t.add_column(name, overflow="fold", ratio=1)
        else:
            t.add_column(name, justify="right", no_wrap=True)
    return t


def emit_json(document: Any) -> None:
    """Pretty JSON on stdout."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def emit_csv(rows: Sequence[dict[str, Any]]) -> None:
    """CSV on stdout, a header from the union of the rows' keys (first-seen order), empty for None."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    writer = csv.DictWriter(sys.stdout, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})

"""Progress of the warehouse's long steps (a schema upgrade, deriving every visit again), on stderr.

Opening an older file for writing can take minutes at a million journeys, and the first ``serve``,
``evaluate`` or ``import`` after an upgrade would otherwise sit silent. These steps say what they do and
how far they got on stderr, never stdout (which commands like ``funnel --format json`` keep for their
output): a bar on a terminal, a line when it starts and one when it ends otherwise (logs, CI). Small
files, which take a second, say nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["LARGE_VISITS", "Report", "long_step"]

#: Stage visits from which a full re-derivation or an upgrade takes long enough to be reported.
LARGE_VISITS = 200_000

Report = Callable[[int, int], None]


@contextlib.contextmanager
def long_step(description: str, console: Console | None = None) -> Iterator[Report]:
    """Report a long step on stderr; yields ``report(done, total)`` for the parts done so far."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    if not console.is_terminal:
        console.print(f"journeyscope: {description}, which can take minutes on a large warehouse…",
                      highlight=False, soft_wrap=True)
        yield lambda done, total: None
        console.print(f"journeyscope: {description}: done in {time.perf_counter() - started:.0f} s",
                      highlight=False, soft_wrap=True)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"journeyscope: {description}", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report

"""A stage visit's turns as the dashboard shows them: the journey explorer's transcript, and the review queue's.

Turns cited by a failing score are highlighted, those cited by a passing one marked quietly, so the
evidence an evaluator named is where the eye lands.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["TRANSCRIPT_CSS", "clock", "turn_html"]

TRANSCRIPT_CSS = """
<style>
.js-visit { margin: 0.2rem 0 1.2rem 0; }
.js-turn { border-left: 3px solid #d0d5db; padding: 0.25rem 0.75rem; margin: 0.3rem 0; border-radius: 4px; }
.js-turn.js-customer { border-left-color: #3b6fd8; }
.js-turn.js-agent { border-left-color: #2e9d5b; }
.js-turn.js-tool, .js-turn.js-system { border-left-color: #9aa3ad; opacity: 0.8; font-size: 0.9em; }
.js-turn.js-cited { background: #fff3cd; border-left-color: #d6453d; border-left-width: 5px; }
.js-turn.js-cited-ok { background: #f3faf5; }
.js-meta { color: #6b7280; font-size: 0.78rem; }
.js-text { white-space: pre-wrap; }
.js-cite { color: #b42318; font-size: 0.78rem; font-weight: 600; }
.js-cite-ok { color: #2e7d4f; font-size: 0.78rem; }
</style>
"""


def clock(ts: str | None) -> str:
    """``2026-11-12T09:39:02.918Z`` → ``09:39:02``."""
    return ts[11:19] if ts and len(ts) >= 19 else (ts or "")


def turn_html(turn: dict[str, Any], scores: dict[str, dict[str, Any]]) -> str:
    """One turn; turns cited by a failing score are highlighted, those cited by a passing one marked quietly."""
    role = turn["role"] or "?"
    cited = turn.get("cited_by") or []
    failing = [n for n in cited if scores.get(n, {}).get("passed") is False]
    passing = [n for n in cited if n not in failing]
    classes = f"js-turn js-{html.escape(role)}" + (
        " js-cited" if failing else " js-cited-ok" if passing else ""
    )
    who = role + (f" ({turn['name']})" if turn.get("name") else "")
    meta = " · ".join(
        x
        for x in (
            f"#{turn['index']}",
            who,
            clock(turn.get("ts")),
            turn.get("channel") or "",
            turn.get("stage") or "",
        )
        if x
    )

    def named(names: list[str]) -> str:
        parts = []
        for name in names:
            score = scores.get(name, {}).get("score")
            parts.append(f"{name} ({score:.2f})" if isinstance(score, float) else name)
        return html.escape(", ".join(parts))

    cite = f'<div class="js-cite">✗ cited by {named(failing)}</div>' if failing else ""
    cite += f'<div class="js-cite-ok">✓ cited by {named(passing)}</div>' if passing else ""
    return (
        f'<div class="{classes}" data-turn="{turn["index"]}"><div class="js-meta">{html.escape(meta)}</div>'
        f'<div class="js-text">{html.escape(turn.get("text") or "")}</div>{cite}</div>'
    )

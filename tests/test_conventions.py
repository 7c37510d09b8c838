"""The shared vocabulary is defined once: the built-in evaluators' names live in ``journeyscope.conventions``."""

from __future__ import annotations

import ast
from pathlib import Path

from journeyscope import conventions as cv
from journeyscope.evaluators import registered

SRC = Path(__file__).resolve().parents[1] / "src" / "journeyscope"
NAMES = {cv.RESOLUTION_EVALUATOR, cv.RETENTION_EVALUATOR, cv.QUALITY_EVALUATOR, cv.EVALUATOR_PREFIX, cv.FRICTION_PREFIX}


def test_the_named_evaluators_are_the_registered_ones() -> None:
    specs = registered()
    assert {cv.RESOLUTION_EVALUATOR, cv.RETENTION_EVALUATOR, cv.QUALITY_EVALUATOR} <= set(specs)
    assert all(specs[n].name == n for n in (cv.RETENTION_EVALUATOR, cv.QUALITY_EVALUATOR))
    assert sum(n.startswith(cv.FRICTION_PREFIX) for n in specs) >= 5


def test_no_other_module_spells_an_evaluator_name() -> None:
    spelled = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "conventions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                spelled.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert not spelled, spelled

"""The layout shows the architecture: imports point down the layers, and no module imports itself in a circle.

The import graph is built from the source with ``ast``: every import, at the top of a module, inside a
function (a "lazy" import) or under ``TYPE_CHECKING``, and ``importlib.import_module("journeyscope...")``
with a literal name. Two rules: no cycle between modules, and no import from a package into a package of
its own layer or one above it (:data:`LAYERS`). The one downward reach the other way, ``instrument.setup()``
writing to the embedded warehouse, goes through an entry point (``pyproject.toml``), not an import.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

#: Top to bottom. A package may import its own modules and the packages of any layer below its own, nothing
#: else. Names are the first part after ``journeyscope.``; ``""`` is the root package (``__version__``).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("server", "dashboard", "demo"),
    ("client",),
    ("warehouse", "analytics", "simulator"),
    ("evaluators", "instrument"),
    ("privacy",),
    ("conventions", "settings", "tomlconfig", "ports"),
    ("errors", ""),
)
#: Modules that belong to another unit's layer: the entry point of ``python -m journeyscope`` is the CLI's,
#: the simulator's scripts are the simulator's data.
UNIT_OF = {"__main__": "cli", "simulator_scripts": "simulator"}
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in (SRC / "journeyscope").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        found[".".join(parts)] = (path, package)
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module ``name`` loads: itself, or the nearest package above it (an attribute import)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path, package = MODULES[module]
    here = module if package else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names if a.name.startswith("journeyscope"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "journeyscope":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.add(full if full in MODULES else _resolve(source))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value) in MODULES:
                found.add(str(node.args[0].value))
    found.discard(None)
    found.discard(module)
    return {m for m in found if m is not None}


GRAPH = {module: _imports(module) for module in MODULES}


def _unit(module: str) -> str:
    first = module.split(".")[1] if "." in module else ""
    return UNIT_OF.get(first, first)


def test_every_package_has_a_layer() -> None:
    assert {_unit(m) for m in MODULES} <= set(RANK), sorted({_unit(m) for m in MODULES} - set(RANK))


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    # engine imports the llm engine inside a function; privacy names its lazy modules under TYPE_CHECKING.
    assert "journeyscope.evaluators.llm" in GRAPH["journeyscope.evaluators.engine"]
    assert "journeyscope.privacy.exporter" in GRAPH["journeyscope.privacy"]
    assert "journeyscope.cli.serve" in GRAPH["journeyscope.cli"]


def _upward(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Imports into another package of the same layer or a higher one, by pair of packages."""
    upward = defaultdict(list)
    for module, targets in graph.items():
        for target in sorted(targets):
            src, dst = _unit(module), _unit(target)
            if src != dst and RANK[dst] <= RANK[src]:
                upward[f"{src or 'journeyscope'} -> {dst or 'journeyscope'}"].append(f"{module} imports {target}")
    return dict(upward)


def test_the_layer_rule_catches_upward_and_sideways_imports() -> None:
    graph = {"journeyscope.instrument.tracing": {"journeyscope.warehouse.exporter", "journeyscope.privacy"},
             "journeyscope.evaluators.llm": {"journeyscope.instrument.context"},
             "journeyscope.cli.serve": {"journeyscope.server.run"}}
    assert _upward(graph) == {
        "instrument -> warehouse": ["journeyscope.instrument.tracing imports journeyscope.warehouse.exporter"],
        "evaluators -> instrument": ["journeyscope.evaluators.llm imports journeyscope.instrument.context"],
    }


def test_imports_point_down_the_layers() -> None:
    assert _upward(GRAPH) == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_lazy_ones_included() -> None:
    assert _cycles(GRAPH) == []


def _fresh_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


def test_the_vocabulary_and_settings_import_nothing_heavy() -> None:
    loaded = _fresh_import("journeyscope.conventions") | _fresh_import("journeyscope.settings")
    assert "opentelemetry.sdk" not in loaded
    heavy = {m for m in loaded if m.split(".")[0] in {"opentelemetry", "duckdb", "pyarrow", "httpx", "click"}}
    assert not heavy, sorted(heavy)
    ours = {m for m in loaded if m.startswith("journeyscope")}
    assert ours == {"journeyscope", "journeyscope.conventions", "journeyscope.errors", "journeyscope.settings"}


def test_the_instrumentation_loads_no_warehouse() -> None:
    loaded = _fresh_import("journeyscope.instrument")
    assert not {m for m in loaded if m.startswith(("journeyscope.warehouse", "duckdb"))}


def test_an_orchestrators_client_loads_no_storage_engine() -> None:
    """The client asks a server over HTTP: it needs the read declarations and the decision shape, not DuckDB."""
    loaded = _fresh_import("journeyscope.client")
    heavy = {m for m in loaded if m.split(".")[0] in {"duckdb", "pyarrow", "numpy", "opentelemetry"}}
    assert not heavy, sorted(heavy)[:10]
    assert "journeyscope.warehouse.store" not in loaded

"""One settings object: every ``JOURNEYSCOPE_*`` variable is read in ``journeyscope/settings.py``, and listed.

The source is parsed, not imported: a name any module mentions must be a declared variable (or a prefix of
some), no module but the settings module may read one from the environment, and the README's table must
equal :data:`journeyscope.settings.VARIABLES`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from journeyscope import settings
from journeyscope.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "journeyscope"
NAME = re.compile(r"JOURNEYSCOPE_[A-Z0-9_]*")
DECLARED = {v.name for v in settings.VARIABLES}


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _strings(tree: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_variables_and_fields_match() -> None:
    fields = [f.name for f in dataclasses.fields(settings.Settings)]
    assert sorted(fields) == sorted(v.field for v in settings.VARIABLES)
    assert len(DECLARED) == len(settings.VARIABLES)
    assert all(v.name.startswith(settings.PREFIX) for v in settings.VARIABLES)


def test_every_name_the_source_mentions_is_declared() -> None:
    undeclared: set[str] = set()
    for path in _modules():
        for node in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            for name in NAME.findall(node.value):
                # "JOURNEYSCOPE_LLM_*" in a help text is a family: some variable must start with it.
                known = name in DECLARED or (name.endswith("_") and any(d.startswith(name) for d in DECLARED))
                if not known:
                    undeclared.add(f"{path.relative_to(ROOT)}: {name}")
    assert not undeclared, sorted(undeclared)


def _reads_environment(node: ast.AST) -> bool:
    """``os.environ.get(X)``, ``os.getenv(X)``, ``environ[X]`` or click's ``envvar=X``, X a journeyscope name."""
    def ours(value: ast.AST | None) -> bool:
        return isinstance(value, ast.Constant) and isinstance(value.value, str) \
            and value.value.startswith(settings.PREFIX)

    if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in ("get", "getenv", "pop", "setdefault") and node.args and ours(node.args[0]):
            return True
        return any(k.arg == "envvar" and ours(k.value) for k in node.keywords)
    if isinstance(node, ast.Subscript):
        return ours(node.slice)
    return False


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = []
    for path in _modules():
        if path == SRC / "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if _reads_environment(node):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not readers, readers


def _readme_rows() -> dict[str, tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `JOURNEYSCOPE_") and len(cells) == 3:
            rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_readme_lists_every_variable_as_declared() -> None:
    rows = _readme_rows()
    assert list(rows) == [v.name for v in settings.VARIABLES]
    for var in settings.VARIABLES:
        assert rows[var.name] == (var.default, var.meaning), var.name


def test_defaults_and_values() -> None:
    assert settings.load({}) == settings.Settings()
    s = settings.load({"JOURNEYSCOPE_DB": "w.duckdb", "JOURNEYSCOPE_MAP": "", "JOURNEYSCOPE_PURE_PYTHON": "yes",
                       "JOURNEYSCOPE_BACKGROUND_NICE": "0", "JOURNEYSCOPE_LLM_BASE_URL": "http://h/v1",
                       "OTHER": "x"})
    assert (s.db, s.map_file, s.pure_python, s.background_nice) == ("w.duckdb", None, True, 0)
    assert not s.llm_configured
    assert settings.load({"JOURNEYSCOPE_LLM_BASE_URL": "u", "JOURNEYSCOPE_LLM_MODEL": "m"}).llm_configured


@pytest.mark.parametrize(("name", "value"), [
    ("JOURNEYSCOPE_BACKGROUND_NICE", "high"),
    ("JOURNEYSCOPE_BACKGROUND_NICE", "20"),
    ("JOURNEYSCOPE_BACKGROUND_NICE", "-1"),
    ("JOURNEYSCOPE_PURE_PYTHON", "maybe"),
])
def test_a_bad_value_is_one_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(settings.SettingsError, match=f"^{name}={value!r} ") as caught:
        settings.load({name: value})
    assert isinstance(caught.value, ConfigError)


def test_environment_is_the_inverse_of_load() -> None:
    env = settings.environment(db="a.duckdb", api=None, map_file="m.toml")
    assert env == {"JOURNEYSCOPE_DB": "a.duckdb", "JOURNEYSCOPE_MAP": "m.toml"}
    assert settings.load(env) == settings.Settings(db="a.duckdb", map_file="m.toml")
    with pytest.raises(TypeError, match="not a setting: colour"):
        settings.environment(colour="red")


def test_a_bad_variable_stops_a_command_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "JOURNEYSCOPE_PURE_PYTHON": "maybe"}
    done = subprocess.run([sys.executable, "-m", "journeyscope", "funnel"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: JOURNEYSCOPE_PURE_PYTHON='maybe' is not a yes/no value (use 1 or 0)"

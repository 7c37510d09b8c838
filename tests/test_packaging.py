"""Packaging: one distribution, one ``journeyscope.*`` namespace, no bare top-level packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["instrument", "warehouse", "evaluators", "server", "dashboard"]


def test_installed_namespace_imports_and_no_bare_packages(tmp_path):
    code = (
        "import importlib, importlib.util\n"
        f"for name in {SUBPACKAGES!r}:\n"
        "    importlib.import_module('journeyscope.' + name)\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_wheel_contains_only_the_journeyscope_namespace(tmp_path):
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".data", "*.duckdb*", "docs", "data"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("journeyscope-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"journeyscope", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    # Every module and data file of the source tree is in the wheel (a folder setuptools does not find would
    # work in an editable install and break in a real one): the dashboard runs its views as page scripts, the
    # demo reads its map, the monitors their defaults, the warehouse its SQL.
    package = ROOT / "src" / "journeyscope"
    expected = {
        f"journeyscope/{path.relative_to(package).as_posix()}"
        for pattern in ("*.py", "*.toml", "*.sql")
        for path in package.rglob(pattern)
        if "__pycache__" not in path.parts
    }
    assert any(name.startswith("journeyscope/dashboard/views/") for name in expected)
    missing = sorted(n for n in expected if n not in names)
    assert not missing, missing
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "journeyscope = journeyscope.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

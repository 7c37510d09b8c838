"""The README stays true: the commands it shows exist, and CI runs the test line it documents."""

from __future__ import annotations

import subprocess
from pathlib import Path

from journeyscope.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_command_is_documented_in_the_readme():
    for name in cli.list_commands(None):  # the group loads a command's module only when it runs
        assert f"journeyscope {name}" in README, f"'journeyscope {name}' is not in README.md"


def test_ci_runs_the_readme_test_command():
    lines = README.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("**Run the tests**")))
    fence = next(i for i in range(start, len(lines)) if lines[i].startswith("```bash"))
    documented = lines[fence + 1]
    ci = (ROOT / ".ci" / "run").read_text()
    awk = next(line for line in ci.splitlines() if line.startswith("test_command=$(awk"))
    program = awk[len("test_command=$(awk '"):awk.index("' README.md")]
    found = subprocess.run(["awk", program, "README.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == documented
    assert documented.endswith("python -m pytest") and "pip install -e \".[test]\"" in documented


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join(README.splitlines()[:25])
    assert "journeyscope demo" in first_screen
    assert "pytest" in first_screen

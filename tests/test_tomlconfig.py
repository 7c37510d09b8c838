"""Every TOML configuration file is read one way: a problem names the file and the line."""

from __future__ import annotations

import os

import pytest

from journeyscope.errors import ConfigError
from journeyscope.privacy import load_policy
from journeyscope.server.auth import load_keys
from journeyscope.server.routing import load_policies
from journeyscope.tomlconfig import FileWatch, parse_toml, read_toml
from journeyscope.warehouse import load_journey_map
from journeyscope.warehouse.monitors import load_monitors

LOADERS = [(load_keys, "key file"), (load_policies, "policy file"), (load_monitors, "monitors file"),
           (load_journey_map, "journey map"), (load_policy, "privacy policy")]


def test_lines_are_named_outside_comments_and_after_an_anchor() -> None:
    toml = parse_toml('# stages = "not here"\n[a]\nstages = 1\n[b]\nstages = 2\n', "x.toml")
    assert toml.document == {"a": {"stages": 1}, "b": {"stages": 2}}
    assert toml.line("stages") == "line 3"
    assert toml.line("stages", occurrence=1) == "line 5"
    assert toml.line("stages", after="[b]") == "line 5"
    assert toml.where("missing") == "x.toml, the file"


@pytest.mark.parametrize(("load", "what"), LOADERS)
def test_each_config_file_names_the_line_of_bad_toml(load, what, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('ok = 1\n\n[broken\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{bad}, line 3: not valid TOML"):
        load(bad)


@pytest.mark.parametrize(("load", "what"), LOADERS)
def test_each_config_file_says_why_it_cannot_be_read(load, what, tmp_path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=rf"^cannot read {what} {binary}: not UTF-8 text$"):
        load(binary)
    with pytest.raises(ConfigError, match=rf"^cannot read {what} {tmp_path}: "):
        read_toml(tmp_path, what)  # a folder


def test_a_file_watch_reports_a_change_once_it_has_settled(tmp_path):
    """A truncate-then-write must not be reported half-way: the change counts once the file stood still for a
    check, and only once."""
    path = tmp_path / "policies.toml"
    path.write_text("a = 1\n")
    watch = FileWatch(path)
    assert not watch.changed()  # unchanged since the watch began
    path.write_text("")  # truncated: an editor about to write
    os.utime(path, ns=(1, 1_000_000_000))
    assert not watch.changed()  # changed, not yet settled
    path.write_text("a = 22\n")
    os.utime(path, ns=(1, 2_000_000_000))
    assert not watch.changed()  # changed again since the last check
    assert watch.changed()  # stood still for a check: report it
    assert not watch.changed()  # reported once
    path.unlink()
    assert not watch.changed() and not watch.changed()  # a missing file is never a change to load

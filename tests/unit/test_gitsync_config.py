"""Config: durations, one source from flags, several from a file."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from helm_operator.cli.sync import register
from helm_operator.gitsync.config import ConfigError, from_args, parse_duration
from helm_operator.gitsync.status import SyncStatus, format_text


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sync", *argv])


def test_durations_accept_go_syntax_and_seconds() -> None:
    assert parse_duration("1m30s", "x") == 90
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration(5, "x") == 5
    with pytest.raises(ConfigError, match="--git-poll-interval: '5 minutes' is not a duration"):
        parse_duration("5 minutes", "--git-poll-interval")


def test_one_source_from_flags() -> None:
    cfg = from_args(parse("--git-url", "file:///r.git", "--git-path", "a", "--git-path", "b",
                          "--git-poll-interval", "10s", "--sync-garbage-collection", "--namespace", "ns"))
    (s,) = cfg.sources
    assert (s.name, s.paths, s.poll_interval, s.gc, s.branch, s.sync_tag) == \
        ("default", ("a", "b"), 10, True, "master", "flux-sync")
    assert cfg.namespace == "ns"


def test_several_sources_from_a_file_take_flag_defaults(tmp_path: Path) -> None:
    f = tmp_path / "sources.yaml"
    f.write_text("""sources:
- name: apps
  url: file:///apps.git
  paths: clusters/prod
  syncInterval: 2m
- name: infra
  url: file:///infra.git
  branch: main
  garbageCollection: true
  syncTag: infra-sync
""")
    cfg = from_args(parse("--config", str(f), "--git-poll-interval", "7s"))
    apps, infra = cfg.sources
    assert (apps.paths, apps.sync_interval, apps.poll_interval) == (("clusters/prod",), 120, 7)
    assert (infra.branch, infra.gc, infra.sync_tag) == ("main", True, "infra-sync")
    assert apps.sync_set_name != infra.sync_set_name


def test_config_errors_name_the_setting(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("sources:\n- name: a\n  url: x\n  colour: blue\n")
    with pytest.raises(ConfigError, match=r"sources\[0\] has unknown keys \['colour'\]"):
        from_args(parse("--config", str(f)))
    with pytest.raises(ConfigError, match="no source"):
        from_args(parse())
    with pytest.raises(ConfigError, match="known hosts file .* does not exist"):
        from_args(parse("--git-url", "ssh://h/r", "--git-known-hosts", str(tmp_path / "nope")))


def test_status_round_trips_and_reads_as_text() -> None:
    s = SyncStatus(source="apps", url="file:///r", branch="main", commit="abc", applied=2, deleted=1,
                   errors=[{"file": "bad.yaml", "object": "document 1", "reason": "invalid YAML"}])
    again = SyncStatus.from_json(s.to_json())
    assert again == s and not again.ok
    text = format_text([again])
    assert "source apps: errors" in text and "error: bad.yaml document 1: invalid YAML" in text

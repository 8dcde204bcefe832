"""The pure parts of the fluxctl-style commands: workload names, filters,
policy annotation changes, tables, tag listings and argument parsing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from helm_operator.api.automation import (
    automate_change, deautomate_change, filter_change, lock_change, unlock_change,
)
from helm_operator.automation.imageref import same_repository
from helm_operator.automation.policy import InvalidFilter, TagInfo, newest_first, normalize_filter, parse_filter
from helm_operator.cli import build_parser
from helm_operator.cli import imagepolicy, imagerelease
from helm_operator.cli.errors import CommandError
from helm_operator.cli.gitchange import unified_diff
from helm_operator.cli.output import format_table
from helm_operator.cli.workload import Workload, parse_workload, unknown_workload
from helm_operator.cli.workloads import image_lines, workload_rows


def test_parse_workload() -> None:
    assert parse_workload("ns:helmrelease/app") == Workload("ns", "app")
    assert parse_workload("ns:HelmRelease/app") == Workload("ns", "app")
    assert parse_workload("helmrelease/app", "prod") == Workload("prod", "app")
    assert str(Workload("ns", "app")) == "ns:helmrelease/app"
    for bad in ("app", "ns:deployment/app", "ns:helmrelease/", ":helmrelease/app", "ns:helmrelease/a/b"):
        with pytest.raises(CommandError, match="namespace:helmrelease/name"):
            parse_workload(bad)


def test_unknown_workload_suggests_similar_names() -> None:
    known = [Workload("demo", "app"), Workload("demo", "api"), Workload("prod", "web")]
    e = unknown_workload(Workload("demo", "ap"), known, "in the cluster")
    assert str(e).startswith("unknown workload demo:helmrelease/ap: no HelmRelease demo/ap in the cluster; ")
    assert "did you mean demo:helmrelease/app" in str(e)
    assert "did you mean prod:helmrelease/web" in str(unknown_workload(Workload("staging", "web"), known, "x"))
    assert "known workloads: demo:helmrelease/api" in str(unknown_workload(Workload("q", "zzzz"), known, "x"))
    assert "there are none" in str(unknown_workload(Workload("q", "zzzz"), [], "x"))
    assert "\n" not in str(e)


def test_commit_messages_mirror_fluxctl() -> None:
    w = Workload("demo", "app")
    assert imagerelease.MSG_RELEASE.format(image="r/app:1.0.1", workload=w) == "Release r/app:1.0.1 to demo:helmrelease/app"
    assert imagerelease.MSG_RELEASE.format(image=imagerelease.ALL_LATEST, workload=w) == "Release all latest to demo:helmrelease/app"
    assert [m.format(workload=w) for m in (imagepolicy.MSG_AUTOMATED, imagepolicy.MSG_DEAUTOMATED, imagepolicy.MSG_LOCKED,
                                           imagepolicy.MSG_UNLOCKED, imagepolicy.MSG_POLICIES)] == [
        "Automated: demo:helmrelease/app", "Deautomated: demo:helmrelease/app", "Locked: demo:helmrelease/app",
        "Unlocked: demo:helmrelease/app", "Updated policies: demo:helmrelease/app"]


@pytest.mark.parametrize("pattern,written", [
    ("1.*", "glob:1.*"), ("*", "glob:*"), ("glob:main-*", "glob:main-*"), ("semver:~1.2", "semver:~1.2"),
    ("regexp:^v[0-9]+$", "regexp:^v[0-9]+$"), ("latest", "glob:latest"), ("numerical:*", "numerical:*"),
])
def test_normalize_filter(pattern: str, written: str) -> None:
    assert normalize_filter(pattern) == written


@pytest.mark.parametrize("pattern", ["1.?", "", "semver:~~x", "regexp:(", "bogus:1"])
def test_normalize_filter_refuses_invalid(pattern: str) -> None:
    with pytest.raises(InvalidFilter):
        normalize_filter(pattern)


def test_policy_changes() -> None:
    assert automate_change() == ({"fluxcd.io/automated": "true"}, [])
    assert deautomate_change() == ({}, ["fluxcd.io/automated", "flux.weave.works/automated"])
    to_set, remove = lock_change("alice", "incident")
    assert to_set == {"fluxcd.io/locked": "true", "fluxcd.io/locked_user": "alice", "fluxcd.io/locked_msg": "incident"}
    assert "flux.weave.works/locked" in remove
    assert "fluxcd.io/locked_msg" in lock_change("alice", None)[1]
    assert set(unlock_change()[1]) == {f"{p}{k}" for p in ("fluxcd.io/", "flux.weave.works/")
                                           for k in ("locked", "locked_user", "locked_msg")}
    to_set, remove = filter_change({"web": "semver:~1", "db": "glob:*"})
    assert to_set == {"filter.fluxcd.io/web": "semver:~1"}
    assert {"filter.fluxcd.io/db", "fluxcd.io/tag.web", "flux.weave.works/tag.db"} <= set(remove)


def test_format_table_aligns_without_trailing_spaces() -> None:
    out = format_table(["A", "LONGER", "C"], [["x", "", "z"], ["long-x", "y", ""]])
    assert out == "A       LONGER  C\nx               z\nlong-x  y\n"


def test_same_repository() -> None:
    assert same_repository("nginx", "docker.io/library/nginx")
    assert same_repository("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/app")
    assert not same_repository("127.0.0.1:5000/team/app", "127.0.0.1:5000/team/api")


def _day(n: int) -> datetime:
    return datetime(2026, 1, n, tzinfo=timezone.utc)


def test_newest_first_follows_the_filter_order() -> None:
    tags = [TagInfo(t) for t in ("1.0.0", "1.2.0", "1.10.0", "2.0.0", "latest", "junk")]
    assert newest_first(parse_filter("semver:~1"), tags, 10) == ["1.10.0", "1.2.0", "1.0.0"]
    assert newest_first(parse_filter("semver:*"), tags, 2) == ["2.0.0", "1.10.0"]
    dated = [TagInfo("a", _day(3)), TagInfo("b", _day(1)), TagInfo("c", _day(2)), TagInfo("latest", _day(4))]
    assert newest_first(parse_filter("*"), dated, 10) == ["a", "c", "b"]


def test_image_lines_mark_the_current_tag() -> None:
    tags = [TagInfo("1.0.0"), TagInfo("1.0.1"), TagInfo("1.0.2")]
    lines = image_lines(parse_filter("semver:~1.0"), tags, "1.0.1", 10)
    assert [l[2] for l in lines] == ["|   1.0.2", "'-> 1.0.1", "|   1.0.0"]
    lines = image_lines(parse_filter("semver:~1.0"), tags, "0.9.0", 2)
    assert [l[2] for l in lines] == ["|   1.0.2", "|   1.0.1", ":", "'-> 0.9.0 (not in the registry)"]
    dated = image_lines(parse_filter("*"), [TagInfo("a", _day(3))], "a", 5)
    assert dated == [["", "", "'-> a", "03 Jan 2026 00:00:00 UTC"]]


def test_workload_rows() -> None:
    obj = {"metadata": {"name": "app", "namespace": "demo", "annotations": {
        "fluxcd.io/automated": "true", "fluxcd.io/locked": "true", "filter.fluxcd.io/web": "semver:~1"}},
        "spec": {"values": {"web": {"image": "r/web:1.0"}, "db": {"image": {"repository": "r/db", "tag": "5"}}}},
        "status": {"releaseStatus": "deployed"}}
    rows = workload_rows([obj, {"metadata": {"name": "empty", "namespace": "demo"}, "spec": {}}])
    assert rows == [
        ["demo:helmrelease/app", "db", "r/db:5", "deployed", "automated,locked", ""],
        ["", "web", "r/web:1.0", "", "", "semver:~1"],
        ["demo:helmrelease/empty", "", "", "", "", ""],
    ]


def test_unified_diff_names_the_file() -> None:
    diff = unified_diff("rel/app.yaml", "a: 1\nb: 2\n", "a: 1\nb: 3\n")
    assert diff.splitlines()[:2] == ["--- a/rel/app.yaml", "+++ b/rel/app.yaml"]
    assert "-b: 2" in diff and "+b: 3" in diff


def test_argument_parsing() -> None:
    parser = build_parser()
    args = parser.parse_args(["release", "-w", "ns:helmrelease/app", "--update-image", "r/app:1", "--git-url",
                              "file:///x", "--git-path", "a", "--git-path", "b", "--dry-run"])
    assert (args.workload, args.update_image, args.git_path, args.git_branch, args.dry_run, args.force) == \
        ("ns:helmrelease/app", "r/app:1", ["a", "b"], "master", True, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["release", "-w", "x", "--update-image", "r:1", "--update-all-images"])
    with pytest.raises(SystemExit):
        parser.parse_args(["release", "-w", "x"])
    args = parser.parse_args(["policy", "-w", "x", "--tag", "a=1.*", "--tag", "b=*", "--registry-insecure-host", "h"])
    assert args.tag == ["a=1.*", "b=*"] and args.registry_insecure_host == ["h"]
    args = parser.parse_args(["lock", "-w", "x", "-m", "why", "--user", "bob", "--k8s-default-namespace", "p"])
    assert (args.message, args.user, args.k8s_default_namespace) == ("why", "bob", "p")


def test_missing_git_url_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("HELM_OPERATOR_GIT_URL", raising=False)
    args = build_parser().parse_args(["automate", "-w", "ns:helmrelease/app"])
    assert args.handler(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "helm-operator automate: no Git repository: pass --git-url" in err


def test_git_failures_are_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    args = build_parser().parse_args(["lock", "-w", "ns:helmrelease/app", "--git-url", f"file://{tmp_path}/none.git"])
    assert args.handler(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "git clone failed" in err and "check --git-url" in err

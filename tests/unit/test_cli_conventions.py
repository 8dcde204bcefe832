"""The one CLI convention, held for every subcommand: help on every flag, the
flags the commands share, usage errors that name the flag and the accepted
form, one line when there is no usable kubeconfig, ``-o json|yaml`` of each
listing command (with a fake cluster and registry: the real ones are in
tests/integration/test_cli_conventions.py), shell completion, and a reference
that cannot go stale."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_operator.automation.policy import TagInfo
from helm_operator.automation.registry import RegistryError
from helm_operator.cli import build_parser, main
from helm_operator.cli.clusterargs import Cluster
from helm_operator.cli.parsing import walk
from helm_operator.gitsync.status import SyncStatus

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "helm_operator.cli"]

# Flags accepted but not listed: old spellings that charts and scripts pass, and flags the
# fluxctl-style commands have always accepted everywhere. Adding one is a decision: list it here.
GIT_COMMAND_HIDDEN = {"--kubeconfig", "--registry-insecure-host", "--docker-config"}
HIDDEN = {
    "sync": {"--listen-port", "-v", "--verbose"},           # the chart passes --listen-port=3031
    "list-workloads": {"--k8s-default-namespace", "--registry-insecure-host", "--docker-config"},
    "list-images": {"--k8s-default-namespace"},
    "release": {"--kubeconfig"},
    **{name: GIT_COMMAND_HIDDEN for name in ("automate", "deautomate", "lock", "unlock", "policy")},
}
LISTING = {("list-workloads",): "table", ("list-images",): "table", ("sync-status",): "text",
           ("get", "hr"): "table", ("history", "hr"): "table"}


def parsers() -> dict[str, argparse.ArgumentParser]:
    return {" ".join(path): p for path, p in walk(build_parser())}


def parser_of(*words: str) -> argparse.ArgumentParser:
    p = build_parser()
    for word in words:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[word]
    return p


def flag(p: argparse.ArgumentParser, option: str) -> argparse.Action:
    return next(a for a in p._actions if option in a.option_strings)


# ---- help on every flag -------------------------------------------------------------------------

def test_every_flag_of_every_subcommand_has_help_and_only_the_known_aliases_are_hidden() -> None:
    seen = parsers()
    assert len(seen) > 20
    for name, p in seen.items():
        hidden: set[str] = set()
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{name}: subcommand {choice.dest} has no help"
                continue
            what = f"{name or 'helm-operator'}: {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{what} has no help"
            if action.help == argparse.SUPPRESS:
                hidden.update(action.option_strings)
        command = name.split(" ")[0]
        assert hidden == HIDDEN.get(command, set()), f"{name}: hidden flags {sorted(hidden)}"


def test_every_command_that_runs_something_says_what_its_exit_codes_mean() -> None:
    for name, p in parsers().items():
        leaf = not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
        if leaf:
            assert "Exit code" in (p.description or ""), f"{name}: no exit codes in its description"


# ---- the shared flags ------------------------------------------------------------------------------

@pytest.mark.parametrize("words,default", LISTING.items(), ids=[" ".join(w) for w in LISTING])
def test_every_listing_command_has_o_table_json_yaml_and_no_headers(words: tuple[str, ...], default: str) -> None:
    p = parser_of(*words)
    output = flag(p, "-o")
    assert {"table", "json", "yaml"} <= set(output.choices or ()) and output.default == default
    assert flag(p, "--no-headers").default is False
    for option in ("--kubeconfig", "--context", "-n"):
        assert flag(p, option).help


def test_run_and_sync_share_listen_logging_health_and_cluster_flags() -> None:
    run, sync = parser_of("run"), parser_of("sync")
    for option in ("--listen", "--log-level", "--log-format", "--api-unreachable-threshold",
                   "--loop-stall-threshold", "--kubeconfig", "--context"):
        a, b = flag(run, option), flag(sync, option)
        assert (a.option_strings, a.choices, a.metavar, type(a)) == (b.option_strings, b.choices, b.metavar, type(b))
    assert flag(sync, "-n") is flag(sync, "--namespace")
    assert flag(parser_of("list-workloads"), "-A").dest == "all_namespaces"


@pytest.mark.parametrize("argv,host,port", [
    ([], "0.0.0.0", 3031),
    (["--listen", "127.0.0.1:4000"], "127.0.0.1", 4000),
    (["--listen", ":0"], "0.0.0.0", 0),
    (["--listen", "[::]:3031"], "::", 3031),
    (["--listen", "127.0.0.1", "--listen-port", "5000"], "127.0.0.1", 5000),   # the old spelling
    (["--listen-port=3031"], "0.0.0.0", 3031),                                 # what the chart passes
    (["--listen-port", "0", "--listen", "127.0.0.1"], "127.0.0.1", 0),
    (["--listen", "::1"], "::1", 3031),                                        # an IPv6 host alone
])
def test_sync_listen_takes_host_port_and_keeps_the_old_spelling(argv: list[str], host: str, port: int) -> None:
    from helm_operator.gitsync.config import from_args

    args = build_parser().parse_args(["sync", "--git-url", "file:///r.git", *argv])
    assert (args.listen_host, args.listen_port) == (host, port)
    config = from_args(args)
    assert (config.listen_host, config.listen_port) == (host, port)


def test_run_listens_where_told_and_keeps_its_durations_typed() -> None:
    args = build_parser().parse_args(["run", "--listen", "127.0.0.1:0", "--charts-sync-interval", "1m30s",
                                      "--context", "kind-a"])
    assert (args.listen_host, args.listen_port, args.charts_sync_interval, args.context) == \
        ("127.0.0.1", 0, 90.0, "kind-a")
    assert build_parser().parse_args(["run"]).listen_port == 3030
    assert build_parser().parse_args(["sync", "-v"]).verbose is True


# ---- usage errors ----------------------------------------------------------------------------------

def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return err


@pytest.mark.parametrize("argv,line", [
    (("run", "--charts-sync-interval", "3x"),
     "helm-operator run: --charts-sync-interval: '3x' is not a duration; use e.g. 30s, 3m, 1h"),
    (("sync", "--git-poll-interval", "5 minutes"),
     "helm-operator sync: --git-poll-interval: '5 minutes' is not a duration; use e.g. 30s, 3m, 1h"),
    (("run", "--workers", "four"), "helm-operator run: --workers: 'four' is not a whole number; use e.g. 4"),
    (("run", "--yaml-max-bytes", "lots"),
     "helm-operator run: --yaml-max-bytes: 'lots' is not a size; use e.g. 512Ki, 16Mi, 1Gi or a number of bytes"),
    (("sync", "--listen", "127.0.0.1:http"),
     "helm-operator sync: --listen: '127.0.0.1:http' is not HOST:PORT; use e.g. 0.0.0.0:3031 or [::]:3031"),
    (("run", "--webhook-listen", "nowhere"),
     "helm-operator run: --webhook-listen: 'nowhere' is not HOST:PORT; use e.g. 0.0.0.0:3040 or [::]:3040"),
    (("get", "hr", "-o", "xml"), "helm-operator get helmrelease: -o/--output: 'xml' is not one of table, json, yaml"),
    (("run", "--log-format", "logfmt"), "helm-operator run: --log-format: 'logfmt' is not one of text, json"),
    (("reconcile", "hr", "web", "--timeout", "soon"),
     "helm-operator reconcile helmrelease: --timeout: 'soon' is not a duration; use e.g. 30s, 3m, 1h"),
])
def test_a_bad_value_is_one_line_naming_the_flag_and_the_accepted_form(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], line: str) -> None:
    assert usage_error(capsys, *argv).splitlines() == [line]


@pytest.mark.parametrize("argv,usage,line", [
    (("list-workloads", "--bogus"), "usage: helm-operator list-workloads ",
     "helm-operator list-workloads: unknown flag --bogus"),
    (("get", "hr", "--bogus", "x"), "usage: helm-operator get helmrelease ",
     "helm-operator get helmrelease: unknown flag --bogus"),
    (("sync-status", "extra"), "usage: helm-operator sync-status ",
     "helm-operator sync-status: unexpected argument 'extra'"),
    (("release", "-w", "ns:helmrelease/a"), "usage: helm-operator release ",
     "helm-operator release: one of the arguments -i/--update-image --update-all-images is required"),
    (("lock",), "usage: helm-operator lock ", "helm-operator lock: missing -w/--workload"),
    (("list-imgaes",), "usage: helm-operator [-h]", "helm-operator: unknown command 'list-imgaes'; "
                                                    "did you mean list-images?"),
])
def test_an_unknown_or_missing_flag_prints_the_subcommands_usage(
        capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], usage: str, line: str) -> None:
    err = usage_error(capsys, *argv)
    assert err.startswith(usage), err
    assert line in err.splitlines(), err
    prog = line.split(":")[0]
    assert err.splitlines()[-1] == f"See '{prog} --help' for usage."


# ---- no usable kubeconfig: one line, exit 1 ---------------------------------------------------------

@pytest.fixture
def no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """No $KUBECONFIG, no ~/.kube/config, not in a pod: for this process and the ones it starts."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    return {**os.environ, "PYTHONPATH": str(REPO)}


def one_line(result: subprocess.CompletedProcess[str], command: str) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and result.stdout == "", result
    [line] = result.stderr.splitlines()
    assert line.startswith(f"helm-operator {command}: "), line
    return line


@pytest.mark.parametrize("argv", [["run"], ["sync", "--git-url", "file:///nowhere.git", "--once"], ["sync-status"]],
                         ids=["run", "sync", "sync-status"])
def test_without_a_kubeconfig_the_processes_print_one_line_and_exit_1(
        no_kubeconfig: dict[str, str], tmp_path: Path, argv: list[str]) -> None:
    result = subprocess.run([*CLI, *argv, "--listen" if argv[0] != "sync-status" else "-o",
                             "127.0.0.1:0" if argv[0] != "sync-status" else "json"],
                            env=no_kubeconfig, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    line = one_line(result, argv[0])
    assert "no kubeconfig and not running in a pod: pass --kubeconfig, set $KUBECONFIG or create" in line


@pytest.mark.parametrize("argv", [["list-workloads"], ["list-images", "-A"], ["get", "hr", "-A"],
                                  ["history", "hr", "web"], ["sync-status", "-o", "table"]])
def test_without_a_kubeconfig_every_command_prints_one_line_and_exits_1(
        no_kubeconfig: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"helm-operator {argv[0]}: no kubeconfig and not running in a pod: pass --kubeconfig")


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "a",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}}]}))
    return path


def test_an_unknown_context_is_one_line_for_the_processes_too(no_kubeconfig: dict[str, str], kubeconfig: Path,
                                                             tmp_path: Path) -> None:
    for argv in (["run", "--listen", "127.0.0.1:0"], ["sync", "--git-url", "file:///x.git", "--once"]):
        result = subprocess.run([*CLI, *argv, "--kubeconfig", str(kubeconfig), "--context", "nowhere"],
                                env=no_kubeconfig, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        line = one_line(result, argv[0])
        assert f"context 'nowhere' is not in kubeconfig {kubeconfig}" in line


@pytest.mark.parametrize("argv", [["list-workloads"], ["list-images"], ["sync-status"], ["get", "hr"]])
def test_an_unknown_context_is_one_line(no_kubeconfig: dict[str, str], kubeconfig: Path,
                                        capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main([*argv, "--kubeconfig", str(kubeconfig), "--context", "nowhere"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"helm-operator {argv[0]}: context 'nowhere' is not in kubeconfig {kubeconfig}")
    assert "kubectl config get-contexts" in line


def test_a_missing_kubeconfig_file_is_one_line(no_kubeconfig: dict[str, str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-workloads", "--kubeconfig", str(tmp_path / "missing")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"helm-operator list-workloads: kubeconfig {tmp_path / 'missing'} not found: pass an " \
                   "existing file with --kubeconfig"


# ---- -o json|yaml of the listing commands, against fakes ------------------------------------------

def helmrelease(namespace: str, name: str, annotations: dict[str, str] | None = None,
                values: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "helm.fluxcd.io/v1", "kind": "HelmRelease",
            "metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
            "spec": {"chart": {"repository": "http://charts.example/", "name": "c", "version": "1"},
                     "values": values or {}}, "status": status or {}}


APP = helmrelease("demo", "app", {"fluxcd.io/automated": "true", "filter.fluxcd.io/web": "semver:~1.0"},
                  {"web": {"image": {"repository": "reg.example/team/app", "tag": "1.0.0"}},
                   "db": {"image": "down.example/team/db:5.0"}}, {"releaseStatus": "deployed"})
API = helmrelease("demo", "api")
OTHER = helmrelease("prod", "web", values={"image": "reg.example/team/web:2.0"})


class FakeKube:
    """What the listing commands ask of `kube.Kube`: HelmReleases of a namespace, or of all."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items, self.asked = items, []

    async def list_helmreleases(self, namespace: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(namespace)
        return [o for o in self.items if namespace is None or o["metadata"]["namespace"] == namespace]


class FakeRegistry:
    """Tags of reg.example; down.example does not answer."""

    TAGS = {"reg.example/team/app": [("1.0.0", 1), ("1.0.1", 2), ("1.1.0", 3)],
            "reg.example/team/web": [("2.0", 1)]}

    def __init__(self, args: argparse.Namespace) -> None:
        self.scans: list[str] = []

    async def __aenter__(self) -> FakeRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def scan(self, repository: str, *filters: object, current: object = ()) -> list[TagInfo]:
        self.scans.append(repository)
        if repository not in self.TAGS:
            raise RegistryError("listing tags", repository, "cannot reach down.example", "check the network")
        return [TagInfo(tag, datetime(2026, 1, day, tzinfo=timezone.utc)) for tag, day in self.TAGS[repository]]


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    from helm_operator.cli import workloads

    kube = FakeKube([APP, API, OTHER])

    def connect(args: argparse.Namespace, fallback: Any = None) -> Cluster:
        return Cluster(kube, args.namespace or "demo", None, None)  # type: ignore[arg-type]

    monkeypatch.setattr(workloads, "connect", connect)
    monkeypatch.setattr(workloads, "registry_client", FakeRegistry)
    yield kube


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    assert main(list(argv)) == code
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert main([*argv[:-1], "yaml"]) == code
    assert yaml.safe_load(capsys.readouterr().out) == doc, "-o yaml says what -o json says"
    return doc


def test_list_workloads_json_lists_each_workload_with_its_policy_and_containers(
        fake_cluster: FakeKube, capsys: pytest.CaptureFixture[str]) -> None:
    docs = run_json(capsys, "list-workloads", "-o", "json")
    assert fake_cluster.asked[-1] == "demo", "the context's namespace by default, as kubectl"
    assert [d["workload"] for d in docs] == ["demo:helmrelease/api", "demo:helmrelease/app"]
    app = docs[1]
    assert (app["namespace"], app["name"], app["release"]) == ("demo", "app", "deployed")
    assert app["policy"] == {"automated": True, "locked": False, "lockedUser": "", "lockedMessage": "",
                             "ignore": False}
    assert app["containers"] == [
        {"name": "db", "image": "down.example/team/db:5.0", "repository": "down.example/team/db", "tag": "5.0",
         "filter": ""},
        {"name": "web", "image": "reg.example/team/app:1.0.0", "repository": "reg.example/team/app", "tag": "1.0.0",
         "filter": "semver:~1.0"}]
    assert docs[0]["containers"] == [] and docs[0]["errors"] == []

    every = run_json(capsys, "list-workloads", "-A", "-o", "json")
    assert fake_cluster.asked[-1] is None and len(every) == 3


def test_list_workloads_table_and_no_headers(fake_cluster: FakeKube, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-workloads", "-n", "prod"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY", "FILTER"]
    assert main(["list-workloads", "-n", "prod", "--no-headers"]) == 0
    assert capsys.readouterr().out.splitlines() == lines[1:]
    assert main(["list-workloads", "-n", "empty"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "helm-operator list-workloads: no HelmReleases in namespace empty\n"


def test_list_images_json_has_the_tags_newest_first_and_says_why_a_container_has_none(
        fake_cluster: FakeKube, capsys: pytest.CaptureFixture[str]) -> None:
    [app] = run_json(capsys, "list-images", "-w", "demo:helmrelease/app", "-o", "json")
    assert app["workload"] == "demo:helmrelease/app"
    db, web = app["containers"]
    assert db["name"] == "db" and db["tags"] == [] and db["error"].startswith(
        "registry: listing tags for down.example/team/db: cannot reach down.example")
    assert (web["current"], web["filter"], web["currentInRegistry"], web["error"]) == \
        ("1.0.0", "semver:~1.0", True, None)
    assert web["tags"] == [{"tag": "1.0.1", "created": "2026-01-02T00:00:00+00:00", "current": False},
                           {"tag": "1.0.0", "created": "2026-01-01T00:00:00+00:00", "current": True}]


def test_list_images_exits_1_when_no_registry_could_be_read_whatever_the_output(
        fake_cluster: FakeKube, capsys: pytest.CaptureFixture[str]) -> None:
    fake_cluster.items = [helmrelease("demo", "down", values={"image": "down.example/team/db:5.0"})]
    for output in ("table", "json"):
        assert main(["list-images", "-o", output]) == 1
        out, err = capsys.readouterr()
        assert err.startswith("helm-operator list-images: no registry could be read (1 of 1 scans failed")
        if output == "json":
            assert json.loads(out)[0]["containers"][0]["error"].startswith("registry: ")


def test_list_images_of_an_unknown_workload_names_the_closest(fake_cluster: FakeKube,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list-images", "-w", "demo:helmrelease/ap", "-o", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("helm-operator list-images: unknown workload demo:helmrelease/ap: no HelmRelease "
                           "demo/ap in the cluster; did you mean demo:helmrelease/app")
    assert main(["list-images", "-w", "helmrelease/web", "-n", "prod", "--no-headers"]) == 0
    assert capsys.readouterr().out.split()[:3] == ["prod:helmrelease/web", "chart-image", "reg.example/team/web"]


@pytest.fixture
def fake_status(monkeypatch: pytest.MonkeyPatch) -> list[SyncStatus]:
    from helm_operator.cli import sync
    from helm_operator.gitsync import status

    statuses = [SyncStatus(source="apps", url="file:///apps.git", branch="main", commit="a" * 40,
                           synced_at="2026-01-01T00:00:00Z", applied=3, unchanged=7)]

    async def read_all(cluster: object, namespace: str) -> list[SyncStatus]:
        assert namespace == "flux"
        return statuses

    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(sync, "connect", lambda args, fallback=None: Cluster(
        type("K", (), {"cluster": None})(), args.namespace or "flux", None, None))  # type: ignore[arg-type]
    monkeypatch.setattr(status, "read_all", read_all)
    return statuses


def test_sync_status_prints_json_yaml_table_and_text(fake_status: list[SyncStatus],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    [apps] = run_json(capsys, "sync-status", "-o", "json")
    assert (apps["source"], apps["commit"], apps["applied"], apps["errors"]) == ("apps", "a" * 40, 3, [])
    assert main(["sync-status", "-o", "table", "--no-headers"]) == 0
    assert capsys.readouterr().out.split() == ["apps", "True", "a" * 12, "2026-01-01T00:00:00Z", "3", "7", "0", "0"]
    assert main(["sync-status"]) == 0
    assert capsys.readouterr().out.startswith("source apps: ok\n"), "text stays the default"

    fake_status.append(SyncStatus(source="infra", pass_error="git fetch failed: no such repository"))
    assert main(["sync-status", "-o", "table"]) == 1, "exit 1 when a source has errors"
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["SOURCE", "READY", "COMMIT", "SYNCED", "APPLIED", "UNCHANGED", "FAILED", "DELETED",
                               "MESSAGE"]
    assert rows[2].startswith("infra") and rows[2].endswith("git fetch failed: no such repository")


# ---- completion ---------------------------------------------------------------------------------------

def complete(line: str, shell: str, tmp_path: Path) -> list[str]:
    """What the program answers a completion request with, as the shell script asks it."""
    out = tmp_path / "completions"
    env = {**os.environ, "PYTHONPATH": str(REPO), "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": shell,
           "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(out)}
    if shell == "fish":
        env.update(_ARGCOMPLETE_IFS="\n", _ARGCOMPLETE_DFS="\t", _ARGCOMPLETE_SUPPRESS_SPACE="1")
    result = subprocess.run(CLI, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [c.rstrip(" ") for c in out.read_text().split("\n" if shell == "fish" else "\013")]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str, tmp_path: Path) -> None:
    result = subprocess.run([*CLI, "completion", shell], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0 and result.stderr == ""
    script = result.stdout
    assert "helm-operator" in script and "_ARGCOMPLETE" in script
    marker = {"bash": "complete -o", "zsh": "#compdef helm-operator", "fish": "complete --command helm-operator"}
    assert marker[shell] in script
    binary = shutil.which(shell)
    if binary:  # the shell itself parses it (bash always; zsh and fish where installed)
        check = subprocess.run([binary, "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr


def test_the_program_answers_completion_requests_from_the_real_parser(tmp_path: Path) -> None:
    assert complete("helm-operator list-w", "bash", tmp_path) == ["list-workloads"]
    assert complete("helm-operator list-images -o ", "bash", tmp_path) == ["table", "json", "yaml"]
    flags = complete("helm-operator sync --li", "bash", tmp_path)
    assert flags == ["--listen"], "the hidden --listen-port is not offered"
    zsh = complete("helm-operator get ", "zsh", tmp_path)
    assert any(c.startswith("hr:") for c in zsh), zsh
    fish = complete("helm-operator compl", "fish", tmp_path)
    assert [c.split("\t")[0].rstrip() for c in fish] == ["completion"], fish   # fish's "value<TAB>description"


def test_bash_completes_through_the_generated_script(tmp_path: Path) -> None:
    """The script as bash runs it: a TAB after `helm-operator list-w` and after `-o `."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "helm-operator"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m helm_operator.cli "$@"\n')
    wrapper.chmod(0o755)
    program = r'''
source <(helm-operator completion bash)
tab() {
  COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$COMP_LINE"
  [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  _python_argcomplete helm-operator
  echo "${COMPREPLY[*]}"
}
tab "helm-operator list-w"
tab "helm-operator sync-status -o "
'''
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", program], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [["list-workloads"],
                                                                     ["text", "table", "json", "yaml"]]


# ---- the reference -------------------------------------------------------------------------------------

def test_the_cli_reference_in_docs_and_readme_is_what_the_parsers_print_now() -> None:
    result = subprocess.run([sys.executable, str(REPO / "hack" / "cli-reference.py"), "--check"],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

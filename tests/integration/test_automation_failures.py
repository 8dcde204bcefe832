"""Automation failures where users look: `kubectl describe hr`, `kubectl get
events`, and `helm-operator list-images`.

Against the real operator process, the local cluster, real Git remotes and
Debian's `docker-registry`: an image on a registry nothing listens on, one on
an htpasswd registry the operator holds wrong credentials for, and a Git
remote whose hook refuses every push. Each affected HelmRelease gets one
Warning event per distinct problem and an `ImageAutomation` condition False
with the reason, beside the release engine's own conditions (the two status
writers do not overwrite each other); a problem that clears gets a Normal
event and the condition turns True. `list-images` names each problem and
exits 1 when no registry it needed could be read.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.conftest import ChartRepo, OperatorProcess, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import condition, events, hello_chart, helmrelease, new_namespace, status, wait_phase
from tests.integration.images import Pusher
from tests.integration.registry import Registry, start_registry

USER, PASSWORD, WRONG = "robot", "right-password-1", "wrong-password-2"
SCAN_LINE = "image automation scan:"


def release_yaml(ns: str, name: str, chart_url: str, image_repo: str) -> str:
    """An automated HelmRelease of the hello chart whose image (container chart-image) is at 1.0.0."""
    doc = helmrelease(name, {"chart": hello_chart(chart_url), "values": {"image": {"repository": image_repo,
                                                                                     "tag": "1.0.0"}}},
                      {"fluxcd.io/automated": "true", "filter.fluxcd.io/chart-image": "semver:~1.0"})
    doc["metadata"]["namespace"] = ns
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Registries:
    auth: Registry      # htpasswd: USER / PASSWORD
    open: Registry      # anonymous
    down: str           # host:port nothing listens on


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    auth = start_registry(tmp_path_factory.mktemp("registry-auth"), USER, PASSWORD)
    anonymous = start_registry(tmp_path_factory.mktemp("registry-open"))
    for day, tag in enumerate(["1.0.0", "1.0.1"], start=1):
        when = datetime(2026, 3, day, tzinfo=timezone.utc)
        Pusher(auth.host, USER, PASSWORD).push_image("team/app", tag, when)
        Pusher(anonymous.host).push_image("team/app", tag, when)
    yield Registries(auth, anonymous, f"127.0.0.1:{free_port()}")
    auth.stop()
    anonymous.stop()


def git_remote(tmp_path: Path, files: dict[str, str], refuse_pushes: bool = False) -> Path:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=dev", "-c", "user.email=dev@example.com",
                    "commit", "-qm", "seed"], check=True)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    if refuse_pushes:
        hook = remote / "hooks" / "pre-receive"
        hook.write_text("#!/bin/sh\necho 'pushes are frozen here' >&2\nexit 1\n")
        hook.chmod(0o755)
    return remote


def docker_config(path: Path, host: str, password: str) -> Path:
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


def automation_condition(cluster: LocalCluster, ns: str, name: str) -> dict:
    return condition(status(cluster, ns, name), "ImageAutomation")


def failed_events(cluster: LocalCluster, ns: str, name: str, reason: str = "ImageAutomationFailed") -> list[dict]:
    return [e for e in events(cluster, ns, name) if e["reason"] == reason]


def more_scans(op: OperatorProcess, n: int) -> None:
    """Wait until the operator has run `n` more registry scans (polled every second)."""
    start = op.log_text().count(SCAN_LINE)
    eventually(lambda: op.log_text().count(SCAN_LINE) >= start + n, timeout=60, what=f"{n} more automation scans")


def start_automation(cluster: LocalCluster, tmp_path: Path, ns: str, remote: Path, *extra: str) -> OperatorProcess:
    return start_operator(cluster, tmp_path / "op", "--allow-namespace", ns,
                          "--git-url", f"file://{remote}", "--git-branch", "main", "--git-path", "releases",
                          "--registry-poll-interval", "1s", "--automation-interval", "1s", *extra)


def test_unreachable_registry_and_refused_credentials_show_on_each_helmrelease(
        cluster: LocalCluster, chart_repo: ChartRepo, registries: Registries, tmp_path: Path) -> None:
    ns = new_namespace(cluster, "autofail")
    down = release_yaml(ns, "down", chart_repo.url, f"{registries.down}/team/app")
    refused = release_yaml(ns, "refused", chart_repo.url, f"{registries.auth.host}/team/app")
    remote = git_remote(tmp_path, {"releases/down.yaml": down, "releases/refused.yaml": refused})
    for doc in (down, refused):
        cluster.kubectl("apply", "-f", "-", input=doc)
    config = docker_config(tmp_path / "config.json", registries.auth.host, WRONG)
    op = start_automation(cluster, tmp_path, ns, remote, "--docker-config", str(config),
                          "--registry-insecure-host", registries.down,
                          "--registry-insecure-host", registries.auth.host,
                          "--registry-insecure-host", registries.open.host)
    try:
        unreachable = eventually(lambda: (c := automation_condition(cluster, ns, "down")).get("status") == "False"
                                 and c, timeout=60, what="ImageAutomation=False on the release whose registry is down")
        assert unreachable["reason"] == "RegistryUnavailable"
        assert f"cannot reach {registries.down}" in unreachable["message"]
        denied = eventually(lambda: (c := automation_condition(cluster, ns, "refused")).get("status") == "False"
                            and c, timeout=60, what="ImageAutomation=False on the release with wrong credentials")
        assert denied["reason"] == "RegistryAuthFailed"
        assert "refused the credentials" in denied["message"] and registries.auth.host in denied["message"]

        # the release engine's conditions and ours live side by side
        for name in ("down", "refused"):
            wait_phase(cluster, ns, name, "Succeeded", timeout=90)
        more_scans(op, 3)
        for name, reason in (("down", "RegistryUnavailable"), ("refused", "RegistryAuthFailed")):
            st = status(cluster, ns, name)
            assert condition(st, "Ready")["status"] == "True"
            assert (condition(st, "ImageAutomation")["status"], condition(st, "ImageAutomation")["reason"]) == \
                ("False", reason)

        # one event per distinct problem, not one per scan
        more_scans(op, 3)
        [event] = failed_events(cluster, ns, "down")
        assert event["type"] == "Warning" and f"cannot reach {registries.down}" in event["message"]
        [event] = failed_events(cluster, ns, "refused")
        assert event["type"] == "Warning" and "refused the credentials" in event["message"]

        # the problem clears: a Normal event, and the condition turns True
        cluster.kubectl("apply", "-f", "-", input=down.replace(registries.down, registries.open.host))
        working = eventually(lambda: (c := automation_condition(cluster, ns, "down")).get("status") == "True"
                             and c, timeout=60, what="ImageAutomation=True once the registry answers")
        assert working["reason"] == "Automated"
        [recovered] = failed_events(cluster, ns, "down", "ImageAutomationRecovered")
        assert recovered["type"] == "Normal"
        assert len(failed_events(cluster, ns, "down")) == 1

        shown = op.log_text() + json.dumps(events(cluster, ns, "refused")) + json.dumps(status(cluster, ns, "refused"))
        assert WRONG not in shown and PASSWORD not in shown
    finally:
        op.stop()


def test_a_refused_push_shows_on_the_helmrelease_it_would_update(
        cluster: LocalCluster, chart_repo: ChartRepo, registries: Registries, tmp_path: Path) -> None:
    ns = new_namespace(cluster, "pushfail")
    doc = release_yaml(ns, "app", chart_repo.url, f"{registries.open.host}/team/app")   # 1.0.1 is due
    remote = git_remote(tmp_path, {"releases/app.yaml": doc}, refuse_pushes=True)
    cluster.kubectl("apply", "-f", "-", input=doc)
    op = start_automation(cluster, tmp_path, ns, remote, "--registry-insecure-host", registries.open.host)
    try:
        failed = eventually(lambda: (c := automation_condition(cluster, ns, "app")).get("status") == "False"
                            and c, timeout=60, what="ImageAutomation=False after the refused push")
        assert failed["reason"] == "GitWriteFailed" and "pushes are frozen here" in failed["message"]
        more_scans(op, 3)
        [event] = failed_events(cluster, ns, "app")
        assert "cannot commit image updates" in event["message"]
    finally:
        op.stop()


def list_images(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "helm_operator.cli", "list-images", *args],
                          capture_output=True, text=True, env=cluster.env(), timeout=120)


def test_list_images_names_each_problem_and_fails_when_no_registry_answers(
        cluster: LocalCluster, registries: Registries, tmp_path: Path) -> None:
    ns = new_namespace(cluster, "listfail")
    for name, host in (("down", registries.down), ("refused", registries.auth.host)):
        cluster.kubectl("apply", "-f", "-", input=release_yaml(ns, name, "http://charts.example", f"{host}/team/app"))
    insecure = ["--registry-insecure-host", registries.down, "--registry-insecure-host", registries.auth.host]

    nothing = list_images(cluster, "-n", ns, *insecure)
    assert nothing.returncode == 1, nothing.stdout + nothing.stderr
    rows = nothing.stdout.splitlines()
    assert any(f"(registry: listing tags for {registries.down}/team/app: cannot reach {registries.down}" in r
               for r in rows), nothing.stdout
    assert any("refused the anonymous request" in r for r in rows), nothing.stdout
    [line] = nothing.stderr.splitlines()
    assert line.startswith("helm-operator list-images: no registry could be read (2 of 2 scans failed")

    config = docker_config(tmp_path / "config.json", registries.auth.host, PASSWORD)
    partly = list_images(cluster, "-n", ns, *insecure, "--docker-config", str(config))
    assert partly.returncode == 0, partly.stderr
    assert f"cannot reach {registries.down}" in partly.stdout and "'-> 1.0.0" in partly.stdout
    assert PASSWORD not in partly.stdout + partly.stderr

"""Image automation end to end: a new tag in a real registry becomes a Git
commit with a one-line diff, the syncer applies it, the operator upgrades,
and the Deployment runs the new image. Plus locks, invalid filters, and a
release forced past its filter by hand that automation never moves back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
import re
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster, free_port
from tests.integration.conftest import ChartRepo, start_operator
from tests.integration.helpers import eventually
from tests.integration.hr import events, get, new_namespace, wait_phase
from tests.integration.images import Pusher
from tests.integration.registry import Registry, start_registry


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


def _release_yaml(ns: str, repo_url: str, image_repo: str, tag: str, *, locked: bool = False,
                  filter_: str = "semver:~1.0", suspend: bool = False) -> str:
    lock = '    fluxcd.io/locked: "true"\n' if locked else ""
    suspended = "  suspend: true\n" if suspend else ""
    return f"""\
---
# An automated release: the operator bumps the tag in this file.
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app
  namespace: {ns}
  annotations:
    fluxcd.io/automated: "true"
{lock}    filter.fluxcd.io/hello: "{filter_}"
    repository.fluxcd.io/hello: image.repository
    tag.fluxcd.io/hello: image.tag,podLabels.version
spec:
{suspended}  chart:
    repository: {repo_url}/
    name: hello
    version: 0.1.0
  values:
    image:
      repository: {image_repo}   # pushed by the test
      tag: "{tag}"  # bumped by automation
    podLabels:
      version: "{tag}"
"""


def _seed_remote(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    _git(work, "config", "user.email", "dev@example.com")
    _git(work, "config", "user.name", "dev")
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    _git(work, "add", "-A")
    _git(work, "commit", "-qm", "seed")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    _git(work, "remote", "add", "origin", str(remote))
    return work, remote


def _deployment_image(cluster: LocalCluster, ns: str, name: str) -> str:
    d = get(cluster, ns, "deployment", name) or {}
    return d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("image", "")


def test_new_tag_is_committed_synced_and_upgraded(
        cluster: LocalCluster, chart_repo: ChartRepo, registry: Registry, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    pusher = Pusher(registry.host)
    pusher.push_image("team/app", "1.0.0", datetime(2026, 1, 1, tzinfo=timezone.utc))
    pusher.push_image("team/app", "2.0.0", datetime(2026, 1, 2, tzinfo=timezone.utc))  # outside ~1.0
    image_repo = f"{registry.host}/team/app"
    work, remote = _seed_remote(tmp_path, {"releases/app.yaml": _release_yaml(ns, chart_repo.url, image_repo, "1.0.0")})

    sync_port = free_port()
    syncer = subprocess.Popen(
        [sys.executable, "-m", "helm_operator.cli", "sync", "--kubeconfig", str(cluster.kubeconfig),
         "--git-url", f"file://{remote}", "--git-branch", "main", "--git-path", "releases",
         "--git-poll-interval", "1s", "--sync-interval", "1m", "--namespace", ns,
         "--listen", "127.0.0.1", "--listen-port", str(sync_port), "--workdir", str(tmp_path / "syncer")],
        stdout=(tmp_path / "syncer.log").open("ab"), stderr=subprocess.STDOUT, env=cluster.env())
    op = start_operator(cluster, tmp_path / "op", "--allow-namespace", ns,
                        "--git-url", f"file://{remote}", "--git-branch", "main", "--git-path", "releases",
                        "--git-user", "Automation Bot", "--git-email", "bot@example.com",
                        "--registry-poll-interval", "1s", "--automation-interval", "1h",
                        "--registry-insecure-host", registry.host)
    try:
        wait_phase(cluster, ns, "app", "Succeeded", timeout=90)
        assert _deployment_image(cluster, ns, f"{ns}-app-hello") == f"{image_repo}:1.0.0"
        seeded = _git(work, "rev-parse", "HEAD").strip()

        pusher.push_image("team/app", "1.0.1", datetime(2026, 1, 3, tzinfo=timezone.utc))

        def automation_commit() -> str:
            _git(work, "fetch", "-q", "origin")
            head = _git(work, "rev-parse", "origin/main").strip()
            return head if head != seeded else ""

        commit = eventually(automation_commit, timeout=60, interval=0.5, what="the automation commit")
        message = _git(work, "log", "-1", "--format=%s|%an|%ae", commit).strip()
        assert message == f"Auto-release {image_repo}:1.0.1|Automation Bot|bot@example.com"
        diff = _git(work, "diff", "-U0", seeded, commit, "--", "releases/app.yaml")
        changed = [l for l in diff.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
        assert changed == ['-      tag: "1.0.0"  # bumped by automation', '+      tag: "1.0.1"  # bumped by automation',
                           '-      version: "1.0.0"', '+      version: "1.0.1"']

        eventually(lambda: _deployment_image(cluster, ns, f"{ns}-app-hello") == f"{image_repo}:1.0.1",
                   timeout=90, interval=0.5, what="the Deployment to run 1.0.1")
        st = wait_phase(cluster, ns, "app", "Succeeded", timeout=60)
        assert st["releaseStatus"] == "deployed"
        # no second commit: 2.0.0 is outside the filter, 1.0.1 is already in Git
        _git(work, "fetch", "-q", "origin")
        assert _git(work, "rev-list", "--count", f"{seeded}..origin/main").strip() == "1"
    finally:
        op.stop()
        syncer.terminate()
        syncer.wait(10)


def test_locked_suspended_and_invalid_filter_releases_are_left_alone(
        cluster: LocalCluster, chart_repo: ChartRepo, registry: Registry, tmp_path: Path) -> None:
    ns = new_namespace(cluster)
    pusher = Pusher(registry.host)
    for tag, day in (("1.0.0", 1), ("1.0.5", 2)):
        pusher.push_image("team/app", tag, datetime(2026, 1, day, tzinfo=timezone.utc))
    image_repo = f"{registry.host}/team/app"
    locked = _release_yaml(ns, chart_repo.url, image_repo, "1.0.0", locked=True)
    invalid = _release_yaml(ns, chart_repo.url, image_repo, "1.0.0", filter_="semver:~~not-a-range").replace(
        "name: app", "name: badfilter")
    suspended = _release_yaml(ns, chart_repo.url, image_repo, "1.0.0", suspend=True).replace(
        "name: app", "name: paused")
    work, remote = _seed_remote(tmp_path, {"releases/locked.yaml": locked, "releases/bad.yaml": invalid,
                                           "releases/paused.yaml": suspended})
    for doc in (locked, invalid, suspended):
        cluster.kubectl("apply", "-f", "-", input=doc)
    op = start_operator(cluster, tmp_path / "op", "--allow-namespace", ns,
                        "--git-url", f"file://{remote}", "--git-branch", "main",
                        "--registry-poll-interval", "1s", "--automation-interval", "2s",
                        "--registry-insecure-host", registry.host)
    try:
        eventually(lambda: any(e["reason"] == "ImageAutomationFailed" and "invalid tag filter" in e["message"]
                               for e in events(cluster, ns, "badfilter")),
                   timeout=30, what="an event about the invalid filter")
        scans = op.log_text().count("image automation scan:")
        eventually(lambda: op.log_text().count("image automation scan:") >= scans + 6, timeout=30,
                   what="six more automation cycles (a registry scan each, polled every second)")
        _git(work, "fetch", "-q", "origin")
        assert _git(work, "rev-list", "--count", "origin/main").strip() == "1"  # only the seed commit
        assert "invalid tag filter" in op.log_text()
    finally:
        op.stop()


PASS_LINE = "image automation pass:"
SCAN_LINE = re.compile(r"image automation scan: \d+ image repositories, (\d+) registry requests")
PASS_REQUESTS = re.compile(r"image automation pass: .* (\d+) registry requests for current tags")


def test_a_release_forced_past_a_glob_filter_is_not_moved_back(
        cluster: LocalCluster, chart_repo: ChartRepo, registry: Registry, tmp_path: Path) -> None:
    """The issue as a user met it: glob:1.0.* at 1.0.5, `release --force` to 1.1.0 by hand."""
    ns = new_namespace(cluster)
    pusher = Pusher(registry.host)
    for tag, day in (("1.0.0", 1), ("1.0.5", 2), ("1.1.0", 3)):
        pusher.push_image("team/app", tag, datetime(2026, 1, day, tzinfo=timezone.utc))
    image_repo = f"{registry.host}/team/app"
    seed = _release_yaml(ns, chart_repo.url, image_repo, "1.0.5", filter_="glob:1.0.*")
    work, remote = _seed_remote(tmp_path, {"releases/app.yaml": seed})
    cluster.kubectl("apply", "-f", "-", input=seed)
    op = start_operator(cluster, tmp_path / "op", "--allow-namespace", ns,
                        "--git-url", f"file://{remote}", "--git-branch", "main", "--git-path", "releases",
                        "--git-user", "Automation Bot", "--git-email", "bot@example.com",
                        "--registry-poll-interval", "1s", "--automation-interval", "1s",
                        "--registry-insecure-host", registry.host)

    def passes(since: int = 0) -> int:
        return op.log_text()[since:].count(PASS_LINE)

    def head() -> str:
        _git(work, "fetch", "-q", "origin")
        return _git(work, "rev-parse", "origin/main").strip()

    try:
        eventually(lambda: passes() >= 2, timeout=60, what="two automation passes")
        steady = [int(n) for n in SCAN_LINE.findall(op.log_text())][1:]   # the first scan reads every image
        assert steady and head() == _git(work, "rev-parse", "HEAD").strip()   # 1.0.5 is the newest allowed
        baseline = max(steady)

        cli = subprocess.run(
            [sys.executable, "-m", "helm_operator.cli", "release", "--workload", f"{ns}:helmrelease/app",
             "--update-image", f"{image_repo}:1.1.0", "--force", "--git-url", f"file://{remote}",
             "--git-branch", "main", "--git-path", "releases", "--git-user", "Dev Person",
             "--git-email", "dev@example.com", "--registry-insecure-host", registry.host],
            capture_output=True, text=True, env=cluster.env(), timeout=120)
        assert cli.returncode == 0, cli.stderr
        forced = head()
        assert _git(work, "log", "-1", "--format=%s", forced).strip() == \
            f"Release {image_repo}:1.1.0 to {ns}:helmrelease/app"
        mark = len(op.log_text())
        eventually(lambda: passes(mark) >= 2, timeout=60, what="two passes with Git ahead of the cluster")
        _git(work, "merge", "-q", "--ff-only", "origin/main")
        cluster.kubectl("apply", "-f", str(work / "releases" / "app.yaml"))   # as the syncer would
        synced = len(op.log_text())
        eventually(lambda: passes(synced) >= 4, timeout=60, what="four passes after the sync")
        assert head() == forced, "automation moved the forced 1.1.0 back"
        after = op.log_text()[mark:]
        # reading 1.1.0 costs HEAD, manifest and config once; steady scans at most one request more
        assert sum(int(n) for n in PASS_REQUESTS.findall(after)) <= 3
        steady_after = [int(n) for n in SCAN_LINE.findall(op.log_text()[synced:])][1:]
        assert steady_after and max(steady_after) <= baseline + 1, (baseline, steady_after)
        assert not [e for e in events(cluster, ns, "app") if e["reason"] == "ImageAutomationHeld"]

        pusher.push_image("team/app", "1.0.6", datetime(2026, 1, 4, tzinfo=timezone.utc))   # after 1.1.0
        eventually(lambda: head() != forced, timeout=60, interval=0.5, what="the automation commit of 1.0.6")
        assert _git(work, "log", "--format=%s|%an", f"{forced}..origin/main").splitlines() == \
            [f"Auto-release {image_repo}:1.0.6|Automation Bot"]
    finally:
        op.stop()

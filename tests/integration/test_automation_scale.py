"""Image automation scales with images, not releases (issue 14): however many
HelmReleases use one image, a scan asks the registry about it once, and one
pass commits all their updates in one commit. Against the real
`docker-registry`, a real Git remote and the local cluster's API (the
Automator runs in the test's loop, as the operator runs it)."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helm_operator.automation.automator import Automator
from helm_operator.automation.gitwrite import GitTarget, GitWriter
from helm_operator.automation.registry import RegistryClient
from helm_operator.kube import Kube
from tests.cluster.localcluster import LocalCluster
from tests.integration.hr import new_namespace
from tests.integration.images import Pusher
from tests.integration.registry import start_registry
from tests.integration.test_automation_never_back import release_yaml


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


async def _first_scan(cluster: LocalCluster, tmp_path: Path, registry_host: str, image: str,
                      users: int) -> tuple[int, int, list[str]]:
    """`users` HelmReleases of one image: (registry requests of the first scan and pass,
    commits the pass made, files the pass changed)."""
    name = f"u{users}"
    work = tmp_path / name
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "releases").mkdir()
    ns = new_namespace(cluster)
    for i in range(users):
        text = release_yaml(ns, f"app{i:02d}", f"{registry_host}/{image}", "1.0.0", "glob:1.0.*")
        (work / "releases" / f"app{i:02d}.yaml").write_text(text)
        cluster.kubectl("apply", "-f", "-", input=text)
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "seed")
    remote = tmp_path / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    kube = Kube.from_kubeconfig(cluster.kubeconfig)
    client = RegistryClient(plain_http_hosts={registry_host})
    writer = GitWriter(GitTarget(f"file://{remote}", "main", ("releases",), "Bot", "bot@example.com"),
                       tmp_path / f"{name}-checkout")
    automator = Automator(lambda: kube.list_helmreleases(ns), writer, client, kube.emit_event)
    try:
        await automator.run_pass(await automator.scan())
        requests = sum(client.requests.values())
    finally:
        await client.close()
    commits = int(subprocess.run(["git", "--git-dir", str(remote), "rev-list", "--count", "main"],
                                 check=True, capture_output=True, text=True).stdout) - 1
    changed = subprocess.run(["git", "--git-dir", str(remote), "diff", "--name-only", "main~1", "main"],
                             capture_output=True, text=True).stdout.split() if commits else []
    return requests, commits, changed


async def test_one_scan_per_image_and_one_commit_per_pass_however_many_releases_use_it(
        cluster: LocalCluster, tmp_path: Path) -> None:
    registry = start_registry(tmp_path / "registry")
    try:
        pusher = Pusher(registry.host)
        for image in ("team/alone", "team/shared"):
            for day, tag in enumerate(("1.0.0", "1.0.1", "1.0.2", "2.0.0"), start=1):
                pusher.push_image(image, tag, datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=day))
        one, one_commits, one_files = await _first_scan(cluster, tmp_path, registry.host, "team/alone", 1)
        ten, ten_commits, ten_files = await _first_scan(cluster, tmp_path, registry.host, "team/shared", 10)
        print(f"first glob scan and pass: 1 release {one} registry requests, 10 releases {ten}")
        assert ten == one  # the image is asked about once, not once per release
        assert (one_commits, ten_commits) == (1, 1)  # one commit per pass for all of them
        assert len(one_files) == 1 and len(ten_files) == 10
    finally:
        registry.stop()

"""Image automation never moves a release back, whatever its filter: against
the real `docker-registry` (with manifest deletion), a real Git remote (a bare
repository) and the local cluster's API, which holds the HelmReleases the scan
reads and the events a held release gets.

The `Automator` runs in the test's event loop, as the operator runs it: each
`cycle()` is one registry scan and one automation pass, awaited, so "several
passes" are counted rather than waited for, and the registry requests of each
cycle are read from the client's counter. Nothing reconciles these
HelmReleases (no operator runs here); the operator process itself is in
test_automation_e2e.py. The metadata cache rechecks every tag on every scan
(`tag_ttl=0`), the most a steady scan can cost.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from helm_operator.api.automation import REASON_AUTOMATION_HELD
from helm_operator.automation.automator import Automator
from helm_operator.automation.gitwrite import GitTarget, GitWriter
from helm_operator.automation.policy import needs_timestamps, parse_filter
from helm_operator.automation.registry import MetadataCache, RegistryClient
from helm_operator.kube import Kube
from tests.cluster.localcluster import LocalCluster
from tests.integration.hr import events, new_namespace
from tests.integration.images import Pusher
from tests.integration.registry import Registry, start_registry

PASSES = 3


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def release_yaml(ns: str, name: str, image_repo: str, tag: str, tag_filter: str) -> str:
    return f"""\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    fluxcd.io/automated: "true"
    filter.fluxcd.io/app: '{tag_filter}'
spec:
  chart: {{repository: "http://charts.example/", name: hello, version: 0.1.0}}
  values:
    app:
      image:
        repository: {image_repo}
        tag: "{tag}"
"""


@dataclass
class Rig:
    """One namespace, registry, Git remote and Automator; `cycle()` is one scan and one pass."""

    cluster: LocalCluster
    ns: str
    registry: Registry
    pusher: Pusher
    work: Path
    automator: Automator
    client: RegistryClient
    day: int = 0

    def push(self, repo: str, tag: str) -> str:
        """Push `tag`, built a day after the previous push; returns its manifest digest."""
        self.day += 1
        digest, _ = self.pusher.push_image(repo, tag, datetime(2026, 1, 1, tzinfo=timezone.utc)
                                           + timedelta(days=self.day))
        return digest

    def image(self, repo: str) -> str:
        return f"{self.registry.host}/{repo}"

    def write(self, name: str, text: str, message: str) -> None:
        """Commit a HelmRelease file and push it: a person's release, here."""
        (self.work / "releases" / f"{name}.yaml").write_text(text)
        _git(self.work, "add", "-A")
        _git(self.work, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-qm", message)
        _git(self.work, "push", "-q", "origin", "HEAD:main")

    def sync(self, name: str) -> None:
        """Apply the file as it is in Git to the cluster, as the manifest syncer does."""
        self.cluster.kubectl("apply", "-f", str(self.work / "releases" / f"{name}.yaml"))

    def head(self) -> str:
        _git(self.work, "fetch", "-q", "origin")
        return _git(self.work, "rev-parse", "origin/main").strip()

    def tag_in_git(self, name: str) -> str:
        text = _git(self.work, "show", f"{self.head()}:releases/{name}.yaml")
        return next(line.split('"')[1] for line in text.splitlines() if line.strip().startswith("tag:"))

    async def cycle(self) -> int:
        """One scan and one pass, as the operator's loop runs them; returns their registry requests."""
        before = sum(self.client.requests.values())
        await self.automator.run_pass(await self.automator.scan())
        return sum(self.client.requests.values()) - before

    def held_events(self, name: str) -> list[dict]:
        return [e for e in events(self.cluster, self.ns, name) if e["reason"] == REASON_AUTOMATION_HELD]


@pytest.fixture
async def rig(cluster: LocalCluster, tmp_path: Path) -> AsyncIterator[Rig]:
    registry = start_registry(tmp_path / "registry")
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "releases").mkdir()
    (work / "releases" / "README").write_text("HelmReleases automation edits\n")
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "seed")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    _git(work, "remote", "add", "origin", str(remote))
    _git(work, "fetch", "-q", "origin")
    ns = new_namespace(cluster)
    kube = Kube.from_kubeconfig(cluster.kubeconfig)
    client = RegistryClient(plain_http_hosts={registry.host}, cache=MetadataCache(tag_ttl=timedelta(0)))
    writer = GitWriter(GitTarget(f"file://{remote}", "main", ("releases",), "Automation Bot", "bot@example.com"),
                       tmp_path / "checkout")
    automator = Automator(lambda: kube.list_helmreleases(ns), writer, client, kube.emit_event)
    try:
        yield Rig(cluster, ns, registry, Pusher(registry.host), work, automator, client)
    finally:
        await client.close()
        registry.stop()


@dataclass(frozen=True)
class Case:
    filter: str
    before: tuple[str, ...]   # pushed first, oldest first; the release runs the last one
    forced: str               # released by hand past the filter, built after `before`
    later: str | None         # allowed, and newer than `forced` under the filter's order


CASES = {
    "glob": Case("glob:1.0.*", ("1.0.0", "1.0.5"), "1.1.0", "1.0.6"),
    "regexp": Case(r"regexp:^1\.0\.", ("1.0.0", "1.0.5"), "1.1.0", "1.0.6"),
    "alphabetical": Case("alphabetical:*-stable", ("2024-05-01-stable", "2024-05-02-stable"),
                         "2024-05-03-hotfix", "2024-05-04-stable"),
    "numerical": Case("numerical:1*", ("10", "11"), "20", "100"),
    "semver": Case("semver:~1.0", ("1.0.0", "1.0.5"), "1.1.0", None),   # nothing in ~1.0 is above 1.1.0
}


@pytest.mark.parametrize("kind", list(CASES))
async def test_a_release_forced_past_its_filter_is_not_moved_back_until_an_allowed_tag_is_newer(
        rig: Rig, kind: str) -> None:
    case = CASES[kind]
    repo, name = f"team/{kind}", kind
    build_time_order = needs_timestamps(parse_filter(case.filter))
    for tag in (*case.before, case.forced):
        rig.push(repo, tag)
    settled = case.before[-1]
    rig.write(name, release_yaml(rig.ns, name, rig.image(repo), settled, case.filter), "seed the release")
    rig.sync(name)
    await rig.cycle()
    baseline = await rig.cycle()                     # the release at the newest allowed tag: steady
    seeded = rig.head()

    rig.write(name, release_yaml(rig.ns, name, rig.image(repo), case.forced, case.filter),
              f"Release {case.forced} by hand, past {case.filter}")
    forced = rig.head()
    # Git is ahead of the cluster until the syncer applies the file: the pass dates the tag Git holds
    first = await rig.cycle()
    assert rig.head() == forced, f"moved back from {case.forced} before the sync"
    rig.sync(name)
    counts = [await rig.cycle() for _ in range(PASSES)]
    assert rig.head() == forced and rig.tag_in_git(name) == case.forced, \
        f"{case.forced} moved back over {PASSES + 1} passes"
    assert rig.held_events(name) == []               # nothing is wrong: there is simply nothing newer
    # the registry cost: the forced image is read once in its life (HEAD, manifest, config), then
    # at most one HEAD a scan on top of the steady scan; tag-ordered filters read nothing more
    assert first <= baseline + 3, (kind, baseline, first)
    assert all(n <= baseline + (1 if build_time_order else 0) for n in counts), (kind, baseline, counts)

    if case.later is None:
        return
    rig.push(repo, case.later)
    await rig.cycle()
    assert rig.tag_in_git(name) == case.later
    assert _git(rig.work, "log", "--format=%s|%an", f"{forced}..origin/main").splitlines() == \
        [f"Auto-release {rig.image(repo)}:{case.later}|Automation Bot"]
    assert _git(rig.work, "rev-list", "--count", f"{seeded}..origin/main").strip() == "2"


@pytest.mark.parametrize("kind", ["glob", "numerical", "semver"])
async def test_a_current_tag_deleted_from_the_registry_leaves_the_release_alone_with_one_event(
        rig: Rig, kind: str) -> None:
    case = CASES[kind]
    repo, name = f"team/gone-{kind}", f"gone-{kind}"
    digests = {tag: rig.push(repo, tag) for tag in case.before}
    current = case.before[-1]
    rig.write(name, release_yaml(rig.ns, name, rig.image(repo), current, case.filter), "seed the release")
    rig.sync(name)
    await rig.cycle()
    baseline = await rig.cycle()
    seeded = rig.head()

    rig.pusher.delete_tag_manifest(repo, digests[current])
    counts = [await rig.cycle() for _ in range(PASSES)]
    assert rig.head() == seeded and rig.tag_in_git(name) == current, \
        f"moved from {current}, which the registry no longer has, to {rig.tag_in_git(name)}"
    held = rig.held_events(name)
    assert len(held) == 1, held                       # once, not once a pass
    assert held[0]["type"] == "Warning"
    message = held[0]["message"]
    assert f"container app ({rig.image(repo)})" in message
    assert f"the current tag {current!r} is no longer in the registry" in message
    assert f"until {current!r} is pushed again or a tag is set by hand" in message
    assert all(n <= baseline for n in counts), (baseline, counts)   # a gone tag costs no request

    # pushed again, it is compared again; a newer allowed tag is then taken
    newer = {"glob": "1.0.6", "numerical": "12", "semver": "1.0.6"}[kind]
    rig.push(repo, newer)
    await rig.cycle()
    assert rig.head() == seeded, "a newer tag was taken while the current one could not be compared"
    rig.day -= 2                                      # the same image as before: same build time
    rig.push(repo, current)
    rig.day += 1
    await rig.cycle()
    assert rig.tag_in_git(name) == newer
    assert len(rig.held_events(name)) == 1


async def test_a_current_tag_the_filter_cannot_place_leaves_the_release_alone_with_one_event(
        rig: Rig) -> None:
    repo, name = "team/hotfix", "hotfix"
    for tag in ("10", "11", "hotfix-1"):
        rig.push(repo, tag)
    rig.write(name, release_yaml(rig.ns, name, rig.image(repo), "hotfix-1", "numerical:*"), "a hotfix by hand")
    rig.sync(name)
    seeded = rig.head()
    for _ in range(PASSES):
        await rig.cycle()
    assert rig.head() == seeded
    held = rig.held_events(name)
    assert len(held) == 1, held
    assert "the current tag 'hotfix-1' is not a number, so numerical:* cannot tell" in held[0]["message"]

"""The automator's edit of a checkout (a plain directory here, no Git, no
registry): it finds documents through the one index, keeps the file's bytes
but the changed scalar (CRLF line endings included), and reports a release
it cannot find in the checkout."""

from __future__ import annotations

from pathlib import Path

from helm_operator.api.automation import read_policy
from helm_operator.automation import reporting
from helm_operator.automation.automator import Automator, ScanResult
from helm_operator.automation.gitwrite import GitTarget, GitWriter
from helm_operator.automation.policy import TagInfo
from helm_operator.automation.registry import RegistryClient

RELEASE = ("apiVersion: helm.fluxcd.io/v1\r\nkind: HelmRelease\r\nmetadata:\r\n  name: web\r\n  namespace: apps\r\n"
           "  annotations:\r\n    fluxcd.io/automated: \"true\"\r\n    filter.fluxcd.io/chart-image: semver:~1.0\r\n"
           "spec:\r\n  values:\r\n    image:\r\n      repository: r.example/app\r\n      tag: \"1.0.0\"  # bumped\r\n")


async def _noop(*_: object) -> None:
    return None


def automator(tmp_path: Path) -> Automator:
    writer = GitWriter(GitTarget(url=f"file://{tmp_path}/remote.git", branch="main", paths=("releases",)),
                       tmp_path / "checkout")
    return Automator(lambda: _noop(), writer, RegistryClient(), _noop)  # type: ignore[arg-type,return-value]


def scan_of(*keys: str) -> ScanResult:
    policy = read_policy({"fluxcd.io/automated": "true"})
    return ScanResult(tags={"r.example/app": [TagInfo("1.0.0"), TagInfo("1.0.1"), TagInfo("1.1.0")]},
                      automated=list(keys), policies=dict.fromkeys(keys, policy))


def test_an_update_changes_only_the_tag_and_keeps_crlf(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "releases").mkdir(parents=True)
    file = root / "releases" / "web.yaml"
    file.write_bytes(RELEASE.encode())
    change = automator(tmp_path).edit_checkout(root, scan_of("apps/web"))
    assert change.paths == ["releases/web.yaml"] and change.subject == "Auto-release r.example/app:1.0.1"
    assert file.read_bytes() == RELEASE.replace('tag: "1.0.0"', 'tag: "1.0.1"').encode()
    assert change.detail is not None and [r.new for r in change.detail.releases] == ["r.example/app:1.0.1"]


def test_a_release_missing_from_the_checkout_is_a_problem_of_that_release(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "releases").mkdir(parents=True)
    change = automator(tmp_path).edit_checkout(root, scan_of("apps/gone"))
    assert change.paths == [] and change.detail is not None
    [problem] = change.detail.problems["apps/gone"]
    assert problem.reason == reporting.NOT_IN_GIT
    assert "no HelmRelease apps/gone in file://" in problem.message and "paths releases" in problem.message


class _Registry(RegistryClient):
    """The tags of every repository are fixed; the scan logic above the client is what is tested."""

    async def scan(self, image_repo: str, *filters: object, current: object = ()) -> list[TagInfo]:  # type: ignore[override]
        return [TagInfo("1.0.0"), TagInfo("1.0.1")]


def test_a_release_newly_automated_asks_for_a_pass_without_a_new_tag(tmp_path: Path) -> None:
    """The release appears after the operator's first scan and its newest tag is already in the
    registry: no tag is new, but the pass must not wait the whole automation interval."""
    import asyncio

    import yaml

    hr = yaml.safe_load(RELEASE.replace("\r\n", "\n"))
    listed: list[list[dict[str, object]]] = [[], [hr], [hr], [hr, {**hr, "metadata": {**hr["metadata"], "name": "b"}}]]

    async def list_helmreleases() -> list[dict[str, object]]:
        return listed.pop(0)

    writer = GitWriter(GitTarget(url=f"file://{tmp_path}/remote.git", branch="main", paths=("releases",)),
                       tmp_path / "checkout")
    a = Automator(list_helmreleases, writer, _Registry(), _noop)  # type: ignore[arg-type]

    async def scans() -> list[tuple[bool, bool]]:
        return [((r := await a.scan()).new_tags_seen, r.new_users_seen) for _ in range(4)]

    assert asyncio.run(scans()) == [(False, False), (False, True), (False, False), (False, True)]

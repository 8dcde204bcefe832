"""The fluxctl-style commands as a user runs them: `helm-operator <cmd>` as a
subprocess against a real Git remote (a bare repository, file://), the real
`docker-registry` and the local cluster. Every change is exactly one commit
with fluxctl's message and a minimal diff; refusals and errors are one line
on stderr with exit code 1 and no commit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.cluster.localcluster import LocalCluster
from tests.integration.hr import new_namespace
from tests.integration.images import Pusher
from tests.integration.registry import Registry, start_registry

NS = "demo"
W = f"{NS}:helmrelease/app"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("cli-registry"))
    pusher = Pusher(reg.host)
    for day, tag in enumerate(["1.0.0", "1.0.1", "1.1.0", "2.0.0"], start=1):
        pusher.push_image("team/app", tag, datetime(2026, 1, day, tzinfo=timezone.utc))
    for day, tag in ((1, "5.0"), (3, "5.1"), (2, "4.9")):
        pusher.push_image("team/db", tag, datetime(2026, 2, day, tzinfo=timezone.utc))
    yield reg
    reg.stop()


def release_yaml(host: str, ns: str = NS) -> str:
    return f"""\
---
# the demo release; `helm-operator release` edits this file
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: app
  namespace: {ns}
  annotations:
    filter.fluxcd.io/web: semver:~1.0   # patch releases only
spec:
  chart:
    repository: http://charts.example/
    name: hello
    version: 0.1.0
  values:
    web:
      image:
        repository: {host}/team/app
        tag: "1.0.0"  # bumped by release
    db:
      image: {host}/team/db:5.0
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: {ns}
data:
  note: the same name, another kind
"""


OTHER = """\
apiVersion: helm.fluxcd.io/v1
kind: HelmRelease
metadata:
  name: api
  namespace: demo
spec:
  chart: {repository: "http://charts.example/", name: hello, version: 0.1.0}
"""


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Repo:
    remote: Path
    registry: Registry
    env: dict[str, str]

    def cli(self, *args: str, git: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--git-url", f"file://{self.remote}", "--git-branch", "main", "--git-path", "releases",
                 "--git-user", "Dev Person", "--git-email", "dev@example.com"] if git else []
        return subprocess.run([sys.executable, "-m", "helm_operator.cli", *args, *extra,
                               "--registry-insecure-host", self.registry.host],
                              capture_output=True, text=True, env=self.env, timeout=120)

    def head(self) -> str:
        return _git(self.remote, "rev-parse", "main").strip()

    def file(self, rev: str = "main") -> str:
        return _git(self.remote, "show", f"{rev}:releases/app.yaml")

    def commits_since(self, rev: str) -> list[str]:
        return _git(self.remote, "log", "--format=%s|%an|%ae", f"{rev}..main").splitlines()

    def changed_lines(self, rev: str) -> list[str]:
        diff = _git(self.remote, "diff", "-U0", rev, "main")
        return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]

    def one_commit(self, before: str, subject: str) -> list[str]:
        """Exactly one new commit, with this subject and the CLI's author; returns its changed lines."""
        assert self.commits_since(before) == [f"{subject}|Dev Person|dev@example.com"]
        return self.changed_lines(before)


@pytest.fixture
def repo(tmp_path: Path, registry: Registry) -> Repo:
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "releases").mkdir()
    (work / "releases" / "app.yaml").write_text(release_yaml(registry.host))
    (work / "releases" / "api.yaml").write_text(OTHER)
    _git(work, "add", "-A")
    _git(work, "-c", "user.name=seed", "-c", "user.email=seed@example.com", "commit", "-qm", "seed")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(remote)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "KUBECONFIG"))}
    return Repo(remote, registry, env)


def _error(result: subprocess.CompletedProcess[str], command: str, *needles: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr          # one line
    assert result.stderr.startswith(f"helm-operator {command}: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_release_is_one_commit_with_a_one_line_diff(repo: Repo) -> None:
    seed = repo.head()
    image = f"{repo.registry.host}/team/app:1.0.1"

    dry = repo.cli("release", "--workload", W, "--update-image", image, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert '-        tag: "1.0.0"  # bumped by release\n+        tag: "1.0.1"  # bumped by release\n' in dry.stdout
    assert "dry run: nothing committed" in dry.stdout
    assert repo.head() == seed

    done = repo.cli("release", "--workload", W, "--update-image", image)
    assert done.returncode == 0, done.stderr
    assert repo.one_commit(seed, f"Release {image} to {W}") == [
        '-        tag: "1.0.0"  # bumped by release', '+        tag: "1.0.1"  # bumped by release']
    assert repo.file() == repo.file(seed).replace('tag: "1.0.0"', 'tag: "1.0.1"')
    assert "committed " in done.stdout and f"{W}  web" in done.stdout

    again = repo.cli("release", "--workload", W, "--update-image", image)
    assert again.returncode == 0 and "no commit" in again.stdout
    assert len(repo.commits_since(seed)) == 1


def test_lock_refuses_release_until_forced_and_unlock_restores_the_file(repo: Repo) -> None:
    seed = repo.head()
    locked = repo.cli("lock", "--workload", W, "-m", "release freeze", "--user", "alice")
    assert locked.returncode == 0, locked.stderr
    assert repo.one_commit(seed, f"Locked: {W}") == [
        '+    fluxcd.io/locked: "true"', '+    fluxcd.io/locked_user: "alice"',
        '+    fluxcd.io/locked_msg: "release freeze"']
    after_lock = repo.head()

    image = f"{repo.registry.host}/team/app:1.0.1"
    refused = repo.cli("release", "--workload", W, "--update-image", image)
    _error(refused, "release", W, "locked by alice (release freeze)", "--force", "helm-operator unlock")
    assert repo.head() == after_lock

    forced = repo.cli("release", "--workload", W, "--update-image", image, "--force")
    assert forced.returncode == 0, forced.stderr
    assert repo.one_commit(after_lock, f"Release {image} to {W}") == [
        '-        tag: "1.0.0"  # bumped by release', '+        tag: "1.0.1"  # bumped by release']
    after_release = repo.head()

    unlocked = repo.cli("unlock", "--workload", W)
    assert unlocked.returncode == 0, unlocked.stderr
    assert repo.one_commit(after_release, f"Unlocked: {W}") == [
        '-    fluxcd.io/locked: "true"', '-    fluxcd.io/locked_user: "alice"',
        '-    fluxcd.io/locked_msg: "release freeze"']
    assert repo.file() == repo.file(seed).replace('tag: "1.0.0"', 'tag: "1.0.1"')


def test_errors_are_one_line_and_commit_nothing(repo: Repo) -> None:
    seed = repo.head()
    host = repo.registry.host
    _error(repo.cli("release", "--workload", f"{NS}:helmrelease/ap", "--update-image", f"{host}/team/app:1.0.1"),
           "release", "unknown workload demo:helmrelease/ap", "did you mean demo:helmrelease/app")
    _error(repo.cli("release", "--workload", W, "--update-image", f"{host}/team/app:1.0.9"),
           "release", W, f"image {host}/team/app:1.0.9 is not in the registry", "push it first")
    _error(repo.cli("release", "--workload", W, "--update-image", f"{host}/team/nothing:1.0"),
           "release", W, f"no container using {host}/team/nothing")
    _error(repo.cli("release", "--workload", W, "--update-image", f"{host}/team/app:2.0.0"),
           "release", W, "tag 2.0.0 is not allowed by the filter 'semver:~1.0' of container web", "--force")
    _error(repo.cli("policy", "--workload", W, "--tag", "web=1.?"),
           "policy", W, "container web: invalid tag filter '1.?'")
    _error(repo.cli("policy", "--workload", W, "--tag", "nosuch=1.*"),
           "policy", W, "no container nosuch", "its containers: web, db")
    _error(repo.cli("automate", "--workload", "demo:deployment/app"), "automate", "namespace:helmrelease/name")
    assert repo.head() == seed

    forced = repo.cli("release", "--workload", W, "--update-image", f"{host}/team/app:2.0.0", "--force")
    assert forced.returncode == 0, forced.stderr
    assert repo.one_commit(seed, f"Release {host}/team/app:2.0.0 to {W}")[1] == \
        '+        tag: "2.0.0"  # bumped by release'


def test_automate_policy_release_all_and_deautomate(repo: Repo) -> None:
    seed = repo.head()
    assert repo.cli("automate", "--workload", W).returncode == 0
    assert repo.one_commit(seed, f"Automated: {W}") == ['+    fluxcd.io/automated: "true"']
    step = repo.head()
    assert "already automated; no commit" in repo.cli("automate", "--workload", W).stdout

    policy = repo.cli("policy", "--workload", W, "--tag", "web=semver:~1", "--tag", "db=5.*")
    assert policy.returncode == 0, policy.stderr
    assert repo.one_commit(step, f"Updated policies: {W}") == [
        "-    filter.fluxcd.io/web: semver:~1.0   # patch releases only",
        "+    filter.fluxcd.io/web: semver:~1   # patch releases only",
        '+    filter.fluxcd.io/db: "glob:5.*"']
    step = repo.head()

    latest = repo.cli("release", "--workload", W, "--update-all-images")
    assert latest.returncode == 0, latest.stderr
    host = repo.registry.host
    assert repo.one_commit(step, f"Release all latest to {W}") == [
        '-        tag: "1.0.0"  # bumped by release', '+        tag: "1.1.0"  # bumped by release',
        f"-      image: {host}/team/db:5.0", f"+      image: {host}/team/db:5.1"]
    step = repo.head()

    everything = repo.cli("policy", "--workload", W, "--tag-all", "*")   # back to the default filter
    assert everything.returncode == 0, everything.stderr
    assert repo.one_commit(step, f"Updated policies: {W}") == [
        "-    filter.fluxcd.io/web: semver:~1   # patch releases only", '-    filter.fluxcd.io/db: "glob:5.*"']
    step = repo.head()

    assert repo.cli("deautomate", "--workload", W).returncode == 0
    assert repo.one_commit(step, f"Deautomated: {W}") == ["-  annotations:", '-    fluxcd.io/automated: "true"']
    assert "annotations:" not in repo.file().split("spec:")[0]


def test_release_all_never_moves_a_release_forced_past_its_filter_back(repo: Repo) -> None:
    host = repo.registry.host
    assert repo.cli("policy", "--workload", W, "--tag", "db=4.*").returncode == 0
    for image in (f"{host}/team/db:5.1", f"{host}/team/app:1.1.0"):   # past glob:4.* and semver:~1.0
        forced = repo.cli("release", "--workload", W, "--update-image", image, "--force")
        assert forced.returncode == 0, forced.stderr
    step = repo.head()
    # 4.9 is allowed but built before 5.1; 1.0.1 is allowed but a lower version than 1.1.0
    latest = repo.cli("release", "--workload", W, "--update-all-images")
    assert latest.returncode == 0, latest.stderr
    assert "every image is already at the requested tag; no commit" in latest.stdout
    assert latest.stderr == "" and repo.head() == step


def test_list_workloads_and_images_read_the_cluster(cluster: LocalCluster, repo: Repo) -> None:
    ns = new_namespace(cluster, "cli")
    cluster.kubectl("apply", "-f", "-", input=release_yaml(repo.registry.host, ns))
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=OTHER.replace("namespace: demo", f"namespace: {ns}"))
    env = {**repo.env, **cluster.env()}
    listing = Repo(repo.remote, repo.registry, env)
    host = repo.registry.host

    workloads = listing.cli("list-workloads", "--namespace", ns, git=False)
    assert workloads.returncode == 0, workloads.stderr
    lines = [line.split() for line in workloads.stdout.splitlines()]
    assert lines[0] == ["WORKLOAD", "CONTAINER", "IMAGE", "RELEASE", "POLICY", "FILTER"]
    assert lines[1:] == [[f"{ns}:helmrelease/api"],
                         [f"{ns}:helmrelease/app", "db", f"{host}/team/db:5.0"],
                         ["web", f"{host}/team/app:1.0.0", "semver:~1.0"]]

    images = listing.cli("list-images", "--workload", f"{ns}:helmrelease/app", git=False)
    assert images.returncode == 0, images.stderr
    rows = [line.split() for line in images.stdout.splitlines()]
    assert rows[0] == ["WORKLOAD", "CONTAINER", "IMAGE", "CREATED"]
    assert rows[1] == [f"{ns}:helmrelease/app", "db", f"{host}/team/db"]
    assert rows[2:5] == [["|", "5.1", "03", "Feb", "2026", "00:00:00", "UTC"],      # build-time order (glob:*)
                         ["|", "4.9", "02", "Feb", "2026", "00:00:00", "UTC"],
                         ["'->", "5.0", "01", "Feb", "2026", "00:00:00", "UTC"]]
    assert rows[5] == ["web", f"{host}/team/app"]
    assert rows[6:] == [["|", "1.0.1"], ["'->", "1.0.0"]]                          # semver:~1.0, no times needed

    missing = listing.cli("list-images", "--workload", f"{ns}:helmrelease/ap", git=False)
    _error(missing, "list-images", f"unknown workload {ns}:helmrelease/ap", f"did you mean {ns}:helmrelease/app")


def test_listing_commands_print_json_yaml_and_bare_tables_of_the_real_cluster(cluster: LocalCluster, repo: Repo,
                                                                              tmp_path: Path) -> None:
    """`-o json|yaml` parsed, `--no-headers`, `-A`, and the kubeconfig context's namespace as the default."""
    ns = new_namespace(cluster, "clijson")
    cluster.kubectl("apply", "-f", "-", input=release_yaml(repo.registry.host, ns))
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=OTHER.replace("namespace: demo", f"namespace: {ns}"))
    listing = Repo(repo.remote, repo.registry, {**repo.env, **cluster.env()})
    host = repo.registry.host

    workloads = listing.cli("list-workloads", "-n", ns, "-o", "json", git=False)
    assert workloads.returncode == 0, workloads.stderr
    docs = json.loads(workloads.stdout)
    assert [d["workload"] for d in docs] == [f"{ns}:helmrelease/api", f"{ns}:helmrelease/app"]
    app = docs[1]
    assert [(c["name"], c["image"], c["filter"]) for c in app["containers"]] == [
        ("db", f"{host}/team/db:5.0", ""), ("web", f"{host}/team/app:1.0.0", "semver:~1.0")]
    assert app["policy"]["automated"] is False and app["errors"] == []
    as_yaml = listing.cli("list-workloads", "-n", ns, "-o", "yaml", git=False)
    assert as_yaml.returncode == 0 and yaml.safe_load(as_yaml.stdout) == docs

    table = listing.cli("list-workloads", "-n", ns, git=False).stdout.splitlines()
    bare = listing.cli("list-workloads", "-n", ns, "--no-headers", git=False).stdout.splitlines()
    assert table[0].startswith("WORKLOAD") and bare == table[1:]
    everywhere = json.loads(listing.cli("list-workloads", "-A", "-o", "json", git=False).stdout)
    assert {f"{ns}:helmrelease/api", f"{ns}:helmrelease/app"} <= {d["workload"] for d in everywhere}

    # No -n: the namespace of the kubeconfig's context, as kubectl; --context picks that context.
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["contexts"].append({"name": "team", "context": {**config["contexts"][0]["context"], "namespace": ns}})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    by_context = listing.cli("list-workloads", "--kubeconfig", str(kubeconfig), "--context", "team", "-o", "json",
                             git=False)
    assert by_context.returncode == 0, by_context.stderr
    assert [d["workload"] for d in json.loads(by_context.stdout)] == [d["workload"] for d in docs]

    images = listing.cli("list-images", "--kubeconfig", str(kubeconfig), "--context", "team",
                         "-w", "helmrelease/app", "-o", "json", git=False)
    assert images.returncode == 0, images.stderr
    [doc] = json.loads(images.stdout)
    db, web = doc["containers"]
    assert (db["repository"], db["current"], db["error"]) == (f"{host}/team/db", "5.0", None)
    assert [(t["tag"], t["current"]) for t in db["tags"]] == [("5.1", False), ("4.9", False), ("5.0", True)]
    assert db["tags"][0]["created"] == "2026-02-03T00:00:00+00:00"
    assert [(t["tag"], t["current"]) for t in web["tags"]] == [("1.0.1", False), ("1.0.0", True)]
    assert (web["filter"], web["currentInRegistry"]) == ("semver:~1.0", True)

    unknown = listing.cli("list-images", "-w", f"{ns}:helmrelease/ap", "-o", "json", git=False)
    _error(unknown, "list-images", f"unknown workload {ns}:helmrelease/ap", f"did you mean {ns}:helmrelease/app")
    assert unknown.stdout == ""

"""An https password or token never shows: not in a log line (at DEBUG), an
exception message, a status or an event, from any of the three Git users
(chart sources, the syncer's mirror, automation commits and the CLI).

The remotes are real `git http-backend` repositories behind basic auth that
accept a user with a password, or a token sent as the user name; every user
is tried with a wrong password (refused, and said so) and the right one
(works), with credentials given apart from the URL and written into it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helm_operator.automation.gitwrite import Change, GitTarget, GitWriteError, GitWriter
from helm_operator.chartsource import ChartFetchError, GitMirrors
from helm_operator.gitsync.mirror import GitAuth, GitError, GitMirror, HttpsCredentials
from tests.cluster.localcluster import LocalCluster
from tests.gitbackend import serve_git_over_http
from tests.integration.conftest import TESTDATA, start_operator
from tests.integration.gitsync_support import get_obj, sync_once, sync_status
from tests.integration.hr import apply, events, helmrelease, new_namespace, status, wait_phase

SECRET_ID = uuid.uuid4().hex[:10]
USER, PASSWORD = "deploy", f"Pa55-{SECRET_ID}-word"
TOKEN = f"ghp_{SECRET_ID}tokenXYZ"           # sent as the user name, no password
WRONG = f"wrong-{SECRET_ID}-guess"
SHOWN_NEVER = (PASSWORD, TOKEN, WRONG)


def release_yaml(ns: str) -> str:
    return (f"apiVersion: helm.fluxcd.io/v1\nkind: HelmRelease\nmetadata:\n  name: app\n  namespace: {ns}\n"
            "spec:\n  chart: {repository: 'http://charts.example/', name: hello, version: 0.1.0}\n")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=seed", "-c", "user.email=seed@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Remotes:
    root: Path
    base: str           # http://127.0.0.1:<port>, no credentials

    def url(self, repo: str, userinfo: str = "") -> str:
        return self.base.replace("http://", f"http://{userinfo}@" if userinfo else "http://") + f"/{repo}"

    def head(self, repo: str, ref: str = "main") -> str:
        return _git(self.root / repo, "rev-parse", ref)


@pytest.fixture(scope="module")
def remotes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remotes]:
    """charts.git (the hello chart at charts/hello) and config.git (manifests and a HelmRelease)."""
    root = tmp_path_factory.mktemp("git-secrets")
    work = root / "work"
    for repo, files in (("charts.git", {}), ("config.git", {
            "manifests/cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: secrets-{SECRET_ID}, "
                                 "namespace: default}\n",
            "releases/app.yaml": release_yaml("demo")})):
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir()
        _git(work, "init", "-q", "-b", "main")
        if repo == "charts.git":
            subprocess.run(["cp", "-r", str(TESTDATA / "charts" / "hello"), str(work / "charts")], check=False)
            (work / "charts").mkdir(exist_ok=True)
            subprocess.run(["cp", "-r", str(TESTDATA / "charts" / "hello"), str(work / "charts" / "hello")],
                           check=True)
        for name, text in files.items():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).write_text(text)
        _git(work, "add", "-A")
        _git(work, "commit", "-qm", "seed")
        _git(root, "clone", "-q", "--bare", str(work), str(root / repo))
    server = serve_git_over_http(root, [(USER, PASSWORD), (TOKEN, "")])
    yield Remotes(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def assert_never_shown(*texts: str) -> None:
    for text in texts:
        for secret in SHOWN_NEVER:
            assert secret not in text, f"{secret!r} shown in: {text[:2000]}"


def files_under(root: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file() and p.stat().st_size < 1 << 20]


# ------------------------------------------------------------- in process, logs at DEBUG


async def test_the_three_users_in_process_never_show_credentials(
        remotes: Remotes, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)   # every logger: ours, GitPython's command lines, tenacity
    errors: list[Exception] = []

    # chart sources: a Secret's credentials, and a token in the URL
    mirrors = GitMirrors(tmp_path / "charts-cache", poll_interval=0)
    charts = remotes.url("charts.git")
    with pytest.raises(ChartFetchError, match="authentication failed") as refused:
        await mirrors.fetch(charts, "main", "charts/hello", auth=(USER, WRONG))
    errors.append(refused.value)
    fetched = await mirrors.fetch(charts, "main", "charts/hello", auth=(USER, PASSWORD))
    assert fetched.revision == remotes.head("charts.git")
    with pytest.raises(ChartFetchError, match="path charts/nope not found") as missing:
        await mirrors.fetch(remotes.url("charts.git", TOKEN), "main", "charts/nope")
    errors.append(missing.value)

    # the syncer's mirror: a Secret directory's credentials, and a token in --git-url
    config = remotes.url("config.git")
    with pytest.raises(GitError, match="https authentication failed") as refused_sync:
        await GitMirror(config, "main", tmp_path / "sync-bad", GitAuth(https=HttpsCredentials(USER, WRONG))).fetch()
    errors.append(refused_sync.value)
    mirror = GitMirror(config, "main", tmp_path / "sync", GitAuth(https=HttpsCredentials(USER, PASSWORD)))
    commit = await mirror.fetch()
    assert await mirror.move_tag(f"sync-{SECRET_ID}", commit)
    tokened = GitMirror(remotes.url("config.git", TOKEN), "main", tmp_path / "sync-token")
    assert await tokened.fetch() == commit
    assert_never_shown(mirror.display_url, tokened.display_url)

    # automation: credentials in the URL, as --git-url carries them
    def edit(root: Path) -> Change[None]:
        (root / "touched.txt").write_text(f"{SECRET_ID}\n")
        return Change(["touched.txt"], "touch")

    bad = GitTarget(url=remotes.url("config.git", f"{USER}:{WRONG}"), branch="main")
    with pytest.raises(GitWriteError, match="https authentication failed") as refused_write:
        await GitWriter(bad, tmp_path / "write-bad").change(edit)
    errors.append(refused_write.value)
    good = GitTarget(url=remotes.url("config.git", f"{USER}:{PASSWORD}"), branch="main")
    pushed = (await GitWriter(good, tmp_path / "write").change(edit)).commit
    assert pushed == remotes.head("config.git")

    assert_never_shown(caplog.text, *(r.getMessage() for r in caplog.records), *(str(e) for e in errors),
                       repr(bad), repr(good), good.url, *files_under(tmp_path))


# ------------------------------------------------------------ processes: logs, status, events


def test_the_syncer_never_shows_credentials_in_its_log_or_status(
        cluster: LocalCluster, remotes: Remotes, tmp_path: Path) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    for directory, password in ((good, PASSWORD), (bad, WRONG)):
        directory.mkdir()
        (directory / "username").write_text(USER)
        (directory / "password").write_text(password + "\n")
    config = remotes.url("config.git")
    common = ["--git-branch", "main", "--git-path", "manifests", "-v"]

    refused = sync_once(cluster, tmp_path / "w-bad", "--git-url", config, "--source-name", f"bad-{SECRET_ID}",
                        "--git-https-credentials-dir", str(bad), *common)
    synced = sync_once(cluster, tmp_path / "w-good", "--git-url", config, "--source-name", f"good-{SECRET_ID}",
                       "--git-https-credentials-dir", str(good), *common)
    tokened = sync_once(cluster, tmp_path / "w-token", "--git-url", remotes.url("config.git", TOKEN),
                        "--source-name", f"token-{SECRET_ID}", "--git-sync-tag", f"token-sync-{SECRET_ID}", *common)

    assert refused.returncode == 1
    assert "https authentication failed" in sync_status(cluster, f"bad-{SECRET_ID}")["pass_error"]
    assert synced.returncode == 0, synced.stderr
    assert tokened.returncode == 0, tokened.stderr
    assert get_obj(cluster, "configmap", f"secrets-{SECRET_ID}", "default") is not None
    statuses = [json.dumps(sync_status(cluster, f"{name}-{SECRET_ID}")) for name in ("bad", "good", "token")]
    assert_never_shown(*statuses, *(p.stdout + p.stderr for p in (refused, synced, tokened)),
                       *(text for workdir in ("w-bad", "w-good", "w-token") for text in files_under(tmp_path / workdir)))


def test_the_operator_never_shows_credentials_in_its_log_status_or_events(
        cluster: LocalCluster, remotes: Remotes, tmp_path: Path) -> None:
    ns = new_namespace(cluster, "secrets")
    for name, password in (("right", PASSWORD), ("wrong", WRONG)):
        cluster.kubectl("create", "secret", "generic", name, "-n", ns,
                        f"--from-literal=username={USER}", f"--from-literal=password={password}")
    # automation on, with the password in --git-url: its startup line names the repository
    operator = start_operator(cluster, tmp_path / "operator", "--git-url",
                              remotes.url("config.git", f"{USER}:{PASSWORD}"), "--git-branch", "main")
    try:
        charts = remotes.url("charts.git")
        chart = {"git": charts, "ref": "main", "path": "charts/hello"}
        # the refusal first: once fetched, the chart mirror is shared by every release of this URL
        apply(cluster, ns, helmrelease("wrong", {"chart": {**chart, "secretRef": {"name": "wrong"}}}))
        refused = wait_phase(cluster, ns, "wrong", "ChartFetchFailed")
        apply(cluster, ns, helmrelease("token", {"chart": {**chart, "git": remotes.url("charts.git", TOKEN),
                                                           "path": "charts/nope"}}))
        apply(cluster, ns, helmrelease("right", {"chart": {**chart, "secretRef": {"name": "right"}}}))
        missing = wait_phase(cluster, ns, "token", "ChartFetchFailed")
        wait_phase(cluster, ns, "right", "Succeeded")
    finally:
        operator.stop()

    assert "authentication failed" in json.dumps(refused) and charts in json.dumps(refused)
    assert "path charts/nope not found" in json.dumps(missing)
    assert "committing to " + remotes.url("config.git") in operator.log_text()
    assert_never_shown(operator.log_text(), *(json.dumps(status(cluster, ns, n)) for n in ("wrong", "right", "token")),
                       *(json.dumps(events(cluster, ns, n)) for n in ("wrong", "right", "token")))


def test_the_cli_never_shows_credentials(remotes: Remotes, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "helm_operator.cli", "lock", "-w", "demo:helmrelease/app",
                               "--git-branch", "main", "--git-path", "releases", "--git-user", "Dev",
                               "--git-email", "dev@example.com", *args],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)

    refused = cli("--git-url", remotes.url("config.git", f"{USER}:{WRONG}"))
    locked = cli("--git-url", remotes.url("config.git", TOKEN), "-m", "freeze")

    assert refused.returncode == 1 and "https authentication failed" in refused.stderr, refused.stderr
    assert remotes.url("config.git") in refused.stderr
    assert locked.returncode == 0, locked.stderr
    assert "fluxcd.io/locked" in _git(remotes.root / "config.git", "show", "main:releases/app.yaml")
    assert_never_shown(refused.stdout + refused.stderr, locked.stdout + locked.stderr)

"""The Git runner: how git's failures are named, which are retried, how
credentials reach git, and that the event loop keeps running meanwhile.

Classification is checked on git's own words (pure), then against real git:
local repositories, a closed port, a hanging git, a lost push race, and
git http-backend with basic auth.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_operator.gitrunner import (
    AuthRefused, Credentials, GitError, GitRunner, HostKeyUnknown, NotFound, PushRejected, Remote, Timeout,
    Unreachable, classify, ssh_command,
)
from tests.gitbackend import serve_git_over_http

USER, PASSWORD = "deploy", "runner-Pa55word-7f3a"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    """A bare repository with one commit on main."""
    work = tmp_path / "seed"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "README").write_text("seed\n")
    git(work, "add", "README")
    git(work, "commit", "-qm", "seed")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(tmp_path / "repo.git"))
    return tmp_path / "repo.git"


@pytest.fixture
def http_url(bare: Path) -> Iterator[str]:
    server = serve_git_over_http(bare.parent, [(USER, PASSWORD)])
    yield f"http://127.0.0.1:{server.server_address[1]}/{bare.name}"
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------ git's words, classified

SSH = Remote("ssh://git@127.0.0.1:2222/org/repo.git", ssh_key=Path("/keys/id"), known_hosts=Path("/k/known_hosts"))
HTTPS = Remote("https://git.example.com/org/repo.git", auth_advice="check spec.chart.secretRef",
               not_found_advice="check spec.chart.git")


@pytest.mark.parametrize("remote, command, stderr, kind, says", [
    (SSH, "fetch", "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\n"
     "Host key verification failed.\r\nfatal: Could not read from remote repository.",
     HostKeyUnknown, ["the SSH host key of 127.0.0.1 port 2222 is not in /k/known_hosts",
                      "`ssh-keyscan -p 2222 127.0.0.1 >> /k/known_hosts`"]),
    (Remote("git@github.com:org/repo.git", ssh_command=ssh_command(known_hosts=Path("/etc/kh"))), "clone",
     "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
     "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.",
     HostKeyUnknown, ["the SSH host key of github.com is not in /etc/kh", "`ssh-keyscan github.com >> /etc/kh`"]),
    (SSH, "fetch", "git@127.0.0.1: Permission denied (publickey).\r\nfatal: Could not read from remote repository.",
     AuthRefused, ["the SSH server refused the key /keys/id", "deploy key"]),
    (HTTPS, "clone", "fatal: Authentication failed for 'https://git.example.com/org/repo.git/'",
     AuthRefused, ["https authentication failed; check spec.chart.secretRef"]),
    (HTTPS, "ls-remote", "fatal: could not read Username for 'https://git.example.com': terminal prompts disabled",
     AuthRefused, ["https authentication failed"]),
    (HTTPS, "fetch", "remote: Repository not found.\nfatal: repository 'https://git.example.com/org/repo.git/' "
     "not found", NotFound, ["not found; check spec.chart.git"]),
    (HTTPS, "fetch", "fatal: couldn't find remote ref refs/heads/nope", NotFound, ["couldn't find remote ref"]),
    (HTTPS, "fetch", "fatal: unable to access 'https://git.example.com/org/repo.git/': Could not resolve host: "
     "git.example.com", Unreachable, ["the server is unreachable", "try again later"]),
    (SSH, "push", "ssh: connect to host 127.0.0.1 port 2222: Connection refused\r\n"
     "fatal: Could not read from remote repository.", Unreachable, ["Connection refused"]),
    (HTTPS, "fetch", "error: RPC failed; HTTP 503 curl 22 The requested URL returned error: 503",
     Unreachable, ["HTTP 503"]),
    (HTTPS, "push", "To https://git.example.com/org/repo.git\n ! [rejected]        HEAD -> main (fetch first)\n"
     "error: failed to push some refs to 'https://git.example.com/org/repo.git'", PushRejected,
     ["the remote branch moved", "[rejected]"]),
    (HTTPS, "rev-parse", "fatal: bad object deadbeef", GitError, ["failed: fatal: bad object deadbeef"]),
])
def test_each_failure_is_named_from_gits_own_words(remote: Remote, command: str, stderr: str,
                                                    kind: type[GitError], says: list[str]) -> None:
    error = classify(stderr, op=f"git {command}", remote=remote, command=command)

    assert type(error) is kind
    assert str(error).startswith(f"git {command} of {remote.shown} failed: ")
    for words in says:
        assert words in str(error)


def test_a_rejected_ref_outside_a_push_is_no_push_race() -> None:
    error = classify(" ! [rejected] main -> main (non-fast-forward)", op="git fetch", remote=HTTPS, command="fetch")

    assert not isinstance(error, PushRejected)


def test_credentials_written_into_the_url_are_moved_out_of_it() -> None:
    remote = Remote(f"https://{USER}:{PASSWORD}@git.example.com/r.git")
    token = Remote("https://ghp_tokenXYZ123@git.example.com/r.git")

    assert remote.url == remote.shown == "https://git.example.com/r.git"
    assert remote.credentials == Credentials(USER, PASSWORD)
    assert PASSWORD not in repr(remote) and PASSWORD not in repr(remote.credentials)
    assert token.url == "https://git.example.com/r.git" and token.secrets == ("ghp_tokenXYZ123",)
    assert Remote("ssh://git@host/r.git").url == "ssh://git@host/r.git"   # an ssh user is no secret


# ------------------------------------------------------------ against real git


def test_a_missing_repository_is_not_found_and_not_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = (tmp_path / "nowhere.git").as_uri()

    with pytest.raises(NotFound) as err, caplog.at_level(logging.INFO, "helm_operator.gitrunner"):
        GitRunner(Remote(url)).run("ls-remote", "--", url)

    assert str(err.value).startswith(f"git ls-remote of {url} failed: the repository, branch or ref was not found")
    assert not [r for r in caplog.records if "trying again" in r.getMessage()]


def test_an_unreachable_server_is_retried_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    url = "http://127.0.0.1:9/repo.git"   # discard port: nothing listens

    with pytest.raises(Unreachable) as err, caplog.at_level(logging.INFO, "helm_operator.gitrunner"):
        GitRunner(Remote(url), attempts=3).run("ls-remote", "--", url)

    assert url in str(err.value) and "try again later" in str(err.value)
    assert len([r for r in caplog.records if "trying again" in r.getMessage()]) == 2


def test_a_local_command_is_never_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(GitError), caplog.at_level(logging.INFO, "helm_operator.gitrunner"):
        GitRunner(attempts=3).run("rev-parse", "--verify", "no-such-ref", git_dir=tmp_path)

    assert not [r for r in caplog.records if "trying again" in r.getMessage()]


def test_a_hanging_git_times_out_and_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "git.pid"
    slow_git = tmp_path / "slow-git"
    slow_git.write_text(f"#!/bin/sh\necho $$ >> {pid_file}\nexec sleep 30\n")
    slow_git.chmod(0o755)

    with pytest.raises(Timeout, match="timed out after 0.3s"):
        GitRunner(Remote("https://git.example.com/r.git"), timeout=0.3, git=str(slow_git)).run("fetch")

    pids = pid_file.read_text().split()
    assert len(pids) == 1   # a timeout is not retried
    with pytest.raises(ProcessLookupError):
        os.kill(int(pids[0]), 0)


def test_a_push_after_someone_else_pushed_is_a_push_race(bare: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for clone in (one, two):
        git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(one, "commit", "-q", "--allow-empty", "-m", "first")
    git(one, "push", "-q", "origin", "HEAD:main")
    git(two, "commit", "-q", "--allow-empty", "-m", "second")

    with pytest.raises(PushRejected, match="the remote branch moved"):
        GitRunner(Remote(bare.as_uri()), isolated=False).run("push", "--quiet", "origin", "HEAD:main", cwd=two)


def test_https_credentials_reach_git_through_the_environment_only(http_url: str, bare: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    remote = Remote(http_url, credentials=Credentials(USER, PASSWORD))
    # GIT_TRACE records the command line of git and of every program it runs (the credential helper too).
    runner = GitRunner(remote, env={"GIT_TRACE": str(trace)})

    refs = runner.run("ls-remote", "--", remote.url).text

    assert git(bare, "rev-parse", "main") in refs
    assert '"$HELM_OPERATOR_GIT_PASSWORD"; fi; }; f get' in trace.read_text()   # the helper ran
    assert PASSWORD not in trace.read_text()


def test_wrong_https_credentials_are_refused_without_showing_them(http_url: str) -> None:
    wrong = "wrong-Pa55word-0c1d"

    with pytest.raises(AuthRefused) as err:
        GitRunner(Remote(http_url.replace("http://", f"http://{USER}:{wrong}@"))).run("ls-remote", "--", http_url)

    assert str(err.value).startswith(f"git ls-remote of {http_url} failed: https authentication failed; check")
    assert wrong not in str(err.value)


def test_a_line_break_in_a_password_is_refused_before_git_runs(http_url: str) -> None:
    remote = Remote(http_url, credentials=Credentials(USER, "pw\nurl=https://elsewhere"))

    with pytest.raises(AuthRefused, match="contains a line break"):
        GitRunner(remote).run("ls-remote", "--", remote.url)


def test_the_machines_credential_helpers_are_ignored_unless_the_user_runs_us(
        http_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gitconfig"   # a person's ~/.gitconfig with a helper that knows the password
    config.write_text(f"[credential]\n\thelper = \"!f() {{ echo username={USER}; echo password={PASSWORD}; }}; f\"\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))

    with pytest.raises(AuthRefused):
        GitRunner(Remote(http_url)).run("ls-remote", "--", http_url)
    assert GitRunner(Remote(http_url), isolated=False).run("ls-remote", "--", http_url).status == 0


def test_our_own_git_dir_does_not_redirect_the_runner(bare: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", str(other))
    expected = git(bare, "rev-parse", "main")
    monkeypatch.setenv("GIT_DIR", str(other))   # as inside a git hook

    assert GitRunner().run("rev-parse", "main", cwd=bare).text == expected


async def test_the_event_loop_runs_while_git_works(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    waiting_git = tmp_path / "waiting-git"   # a git that finishes only once the loop has done other work
    waiting_git.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.01; done\nexec git \"$@\"\n")
    waiting_git.chmod(0o755)
    finished: list[str] = []

    async def other_work() -> None:
        await asyncio.sleep(0)
        gate.touch()
        finished.append("loop")

    async def git_call() -> None:
        await GitRunner(git=str(waiting_git), timeout=30).arun("--version")
        finished.append("git")

    await asyncio.gather(git_call(), other_work())

    assert finished == ["loop", "git"]

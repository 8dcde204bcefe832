"""GitMirrors against real local repositories made with the git CLI.

Transports covered: plain paths, file://, ssh (through a GIT_SSH_COMMAND that
runs git-upload-pack locally) and https-style smart HTTP (git http-backend
behind http.server on 127.0.0.1, with basic auth).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helm_operator.chartsource import ChartFetchError, FetchedChart, GitMirrors
from tests.gitbackend import relay_to_git_http_backend

USER, PASSWORD = "deploy", "g1t-Pa55word-xyz"
CHART = "apiVersion: v2\nname: app\nversion: 0.1.0\n"


# ---------------------------------------------------------------- helpers


class Source:
    """A Git repository to fetch charts from, edited with the git CLI."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        }
        path.mkdir(parents=True)
        self.git("init", "--quiet", "--initial-branch=main")

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "--quiet", "-r", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.git("add", name)
        self.git("commit", "--quiet", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", f"{ref}^{{commit}}")


@pytest.fixture
def source(tmp_path: Path) -> Source:
    src = Source(tmp_path / "src")
    src.commit("initial", {
        "README.md": "# charts\n",
        "charts/app/Chart.yaml": CHART,
        "charts/app/values.yaml": "replicas: 1\n",
        "charts/app/templates/configmap.yaml": "kind: ConfigMap\n",
        "charts/lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n",
    })
    return src


@pytest.fixture
def mirrors(tmp_path: Path) -> GitMirrors:
    return GitMirrors(tmp_path / "cache", poll_interval=3600)


def serve_smart_http(project_root: Path, auth: tuple[str, str] | None) -> ThreadingHTTPServer:
    """git http-backend as CGI behind http.server; basic auth when `auth` is given."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.handle_git()

        def do_POST(self) -> None:  # noqa: N802
            self.handle_git()

        def handle_git(self) -> None:
            if auth is not None:
                expected = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = self.read_body()
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(project_root), "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "REMOTE_ADDR": "127.0.0.1",
            }
            relay_to_git_http_backend(self, env, body)

        def read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def http_git(source: Source) -> Iterator[str]:
    """The source repository over smart HTTP with basic auth; yields its URL."""
    server = serve_smart_http(source.path.parent, (USER, PASSWORD))
    yield f"http://127.0.0.1:{server.server_address[1]}/{source.path.name}"
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------ resolving refs


async def test_fetch_by_branch_exports_the_chart_and_returns_the_commit_sha(
    source: Source, mirrors: GitMirrors, tmp_path: Path
) -> None:
    fetched = await mirrors.fetch(source.url, "main", "charts/app")

    assert isinstance(fetched, FetchedChart)
    assert fetched.revision == source.head()
    assert fetched.path == mirrors.mirror_dir(source.url).parent / fetched.revision / "charts/app"
    assert (fetched.path / "Chart.yaml").read_text() == CHART
    assert (fetched.path / "templates" / "configmap.yaml").is_file()


async def test_fetch_by_lightweight_and_annotated_tag_returns_the_tagged_commit(
    source: Source, mirrors: GitMirrors
) -> None:
    tagged = source.head()
    source.git("tag", "v1.0.0")
    source.git("tag", "-a", "-m", "release", "v1.0.1")
    source.commit("later", {"charts/app/values.yaml": "replicas: 2\n"})

    light = await mirrors.fetch(source.url, "v1.0.0", "charts/app")
    annotated = await mirrors.fetch(source.url, "v1.0.1", "charts/app")

    assert light.revision == annotated.revision == tagged
    assert (annotated.path / "values.yaml").read_text() == "replicas: 1\n"


async def test_fetch_by_full_and_short_commit_sha(source: Source, mirrors: GitMirrors) -> None:
    first = source.head()
    second = source.commit("scale", {"charts/app/values.yaml": "replicas: 3\n"})

    by_full = await mirrors.fetch(source.url, first, "charts/app")
    by_short = await mirrors.fetch(source.url, second[:7], "charts/app")

    assert by_full.revision == first
    assert (by_full.path / "values.yaml").read_text() == "replicas: 1\n"
    assert by_short.revision == second
    assert (by_short.path / "values.yaml").read_text() == "replicas: 3\n"


async def test_an_unknown_ref_is_reported(source: Source, mirrors: GitMirrors) -> None:
    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(source.url, "no-such-branch", "charts/app")

    assert str(err.value).startswith(f"ref no-such-branch not found in {source.url}")


@pytest.mark.parametrize("ref", ["--upload-pack=touch /tmp/x", "main..dev", "main^", "a b", ""])
async def test_a_ref_that_is_not_a_plain_name_is_refused(source: Source, mirrors: GitMirrors, ref: str) -> None:
    with pytest.raises(ChartFetchError, match="invalid git ref"):
        await mirrors.fetch(source.url, ref, "charts/app")


async def test_resolve_returns_the_commit_a_ref_points_to(source: Source, mirrors: GitMirrors) -> None:
    outside = source.commit("docs", {"README.md": "# more\n"})

    assert await mirrors.resolve(source.url, "main") == outside


# -------------------------------------------------------------- revisions


async def test_a_commit_outside_the_chart_path_keeps_the_revision(source: Source, mirrors: GitMirrors) -> None:
    before = await mirrors.fetch(source.url, "main", "charts/app")
    docs = source.commit("docs only", {"README.md": "# changed\n"})
    sibling = source.commit("other chart", {"charts/lib/values.yaml": "x: 1\n"})
    mirrors.refresh(source.url)

    after = await mirrors.fetch(source.url, "main", "charts/app")

    assert await mirrors.resolve(source.url, "main") == sibling != docs
    assert after == before


async def test_a_commit_inside_the_chart_path_changes_the_revision(source: Source, mirrors: GitMirrors) -> None:
    before = await mirrors.fetch(source.url, "main", "charts/app")
    change = source.commit("scale up", {"charts/app/values.yaml": "replicas: 5\n"})
    source.commit("docs after", {"README.md": "# later\n"})
    mirrors.refresh(source.url)

    after = await mirrors.fetch(source.url, "main", "charts/app")

    assert after.revision == change != before.revision
    assert (after.path / "values.yaml").read_text() == "replicas: 5\n"
    assert (before.path / "values.yaml").read_text() == "replicas: 1\n"  # old export left intact


async def test_revision_answers_without_exporting(source: Source, mirrors: GitMirrors, tmp_path: Path) -> None:
    revision = await mirrors.revision(source.url, "main", "./charts/app/")

    assert revision == source.head()
    assert not (mirrors.mirror_dir(source.url).parent / revision).exists()


async def test_the_whole_tree_is_exported_so_relative_file_dependencies_resolve(
    source: Source, mirrors: GitMirrors
) -> None:
    fetched = await mirrors.fetch(source.url, "main", "charts/app")

    assert (fetched.path / ".." / "lib" / "Chart.yaml").is_file()


async def test_an_exported_revision_is_reused(source: Source, mirrors: GitMirrors) -> None:
    first = await mirrors.fetch(source.url, "main", "charts/app")
    (first.path / "marker").write_text("still here\n")

    second = await mirrors.fetch(source.url, "main", "charts/app")

    assert second == first
    assert (second.path / "marker").is_file()


# ------------------------------------------------------------------ paths


async def test_a_missing_path_is_reported(source: Source, mirrors: GitMirrors) -> None:
    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(source.url, "main", "charts/nope")

    assert str(err.value).startswith(f"path charts/nope not found in {source.url} at main")


async def test_a_path_removed_at_a_later_commit_is_missing_there_but_found_before(
    source: Source, mirrors: GitMirrors
) -> None:
    before = source.head()
    source.commit("remove app", {"charts/app": None})

    with pytest.raises(ChartFetchError, match="path charts/app not found"):
        await mirrors.fetch(source.url, "main", "charts/app")
    assert (await mirrors.fetch(source.url, before, "charts/app")).revision == before


async def test_a_path_that_is_a_file_or_has_no_chart_yaml_is_reported(source: Source, mirrors: GitMirrors) -> None:
    with pytest.raises(ChartFetchError, match="is a file, not a chart directory"):
        await mirrors.fetch(source.url, "main", "README.md")
    with pytest.raises(ChartFetchError, match="holds no Chart.yaml"):
        await mirrors.fetch(source.url, "main", "charts")


async def test_a_path_leaving_the_repository_is_refused(source: Source, mirrors: GitMirrors) -> None:
    with pytest.raises(ChartFetchError, match="must stay inside the repository"):
        await mirrors.fetch(source.url, "main", "charts/../../etc")


# ------------------------------------------------------- mirror and polling


async def test_the_mirror_is_fetched_at_most_once_per_poll_interval_unless_refreshed(
    source: Source, mirrors: GitMirrors
) -> None:
    first = await mirrors.fetch(source.url, "main", "charts/app")
    change = source.commit("scale", {"charts/app/values.yaml": "replicas: 2\n"})

    still = await mirrors.fetch(source.url, "main", "charts/app")
    mirrors.refresh(source.url)
    refreshed = await mirrors.fetch(source.url, "main", "charts/app")

    assert still == first
    assert refreshed.revision == change


async def test_a_zero_poll_interval_fetches_on_every_use(source: Source, tmp_path: Path) -> None:
    mirrors = GitMirrors(tmp_path / "cache", poll_interval=0)
    await mirrors.fetch(source.url, "main", "charts/app")
    change = source.commit("scale", {"charts/app/values.yaml": "replicas: 2\n"})

    assert (await mirrors.fetch(source.url, "main", "charts/app")).revision == change


async def test_a_ref_missing_from_the_mirror_triggers_one_fetch(source: Source, mirrors: GitMirrors) -> None:
    await mirrors.fetch(source.url, "main", "charts/app")
    source.git("checkout", "--quiet", "-b", "feature")
    change = source.commit("feature", {"charts/app/values.yaml": "feature: true\n"})

    fetched = await mirrors.fetch(source.url, "feature", "charts/app")

    assert fetched.revision == change


async def test_a_deleted_branch_disappears_after_a_refresh(source: Source, mirrors: GitMirrors) -> None:
    source.git("branch", "old")
    await mirrors.fetch(source.url, "old", "charts/app")
    source.git("branch", "-D", "old")
    mirrors.refresh()

    with pytest.raises(ChartFetchError, match="ref old not found"):
        await mirrors.fetch(source.url, "old", "charts/app")


async def test_concurrent_fetches_share_one_mirror_and_one_export(
    source: Source, mirrors: GitMirrors, tmp_path: Path
) -> None:
    results = await asyncio.gather(*(mirrors.fetch(source.url, "main", "charts/app") for _ in range(6)))

    assert len(set(results)) == 1
    entries = sorted(p.name for p in mirrors.mirror_dir(source.url).parent.iterdir())
    assert entries == sorted(["mirror.git", results[0].revision])


async def test_a_plain_path_works_like_a_file_url(source: Source, mirrors: GitMirrors) -> None:
    by_path = await mirrors.fetch(str(source.path), "main", "charts/app")
    by_url = await mirrors.fetch(source.url, "main", "charts/app")

    assert by_path.revision == by_url.revision == source.head()
    assert mirrors.mirror_dir(str(source.path)).is_dir()


async def test_a_repository_that_does_not_exist_is_reported(mirrors: GitMirrors, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere").as_uri()

    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(missing, "main", "charts/app")

    assert f"git clone of {missing} failed" in str(err.value)
    assert "check the repository URL" in str(err.value)
    assert not mirrors.mirror_dir(missing).exists()


async def test_heads_lists_branches_and_tags_peeled_to_commits(source: Source, mirrors: GitMirrors) -> None:
    source.git("tag", "-a", "-m", "release", "v1.0.0")
    head = source.head()

    refs = await mirrors.heads(source.url)

    assert refs["refs/heads/main"] == head
    assert refs["refs/tags/v1.0.0"] == head


# ------------------------------------------------------------- transports


async def test_ssh_urls_go_through_the_given_ssh_command(source: Source, mirrors: GitMirrors, tmp_path: Path) -> None:
    calls = tmp_path / "ssh-calls.log"
    fake_ssh = tmp_path / "fake-ssh"
    # Runs the remote command (the last argument) locally instead of on a host.
    fake_ssh.write_text(f'#!/bin/sh\nfor a; do last="$a"; done\necho "$@" >> {calls}\nexec sh -c "$last"\n')
    fake_ssh.chmod(0o755)
    url = f"ssh://git@charts.example{source.path}"

    fetched = await mirrors.fetch(url, "main", "charts/app", ssh_command=str(fake_ssh))

    assert fetched.revision == source.head()
    assert "git-upload-pack" in calls.read_text()
    assert "charts.example" in calls.read_text()


async def test_https_basic_auth_without_credentials_is_refused_with_a_clear_error(
    http_git: str, mirrors: GitMirrors
) -> None:
    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(http_git, "main", "charts/app")

    assert http_git in str(err.value)
    assert "authentication failed" in str(err.value)
    assert "secretRef" in str(err.value)


async def test_https_basic_auth_with_credentials_fetches_and_never_writes_them(
    http_git: str, source: Source, mirrors: GitMirrors, tmp_path: Path
) -> None:
    fetched = await mirrors.fetch(http_git, "main", "charts/app", auth=(USER, PASSWORD))
    source.commit("scale", {"charts/app/values.yaml": "replicas: 4\n"})
    mirrors.refresh(http_git)
    refetched = await mirrors.fetch(http_git, "main", "charts/app", auth=(USER, PASSWORD))

    assert fetched.revision != refetched.revision == source.head()
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    for file in (tmp_path / "cache").rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert PASSWORD.encode() not in content and encoded not in content, file


async def test_https_credentials_inside_the_url_are_used_but_never_stored_or_shown(
    http_git: str, mirrors: GitMirrors
) -> None:
    with_creds = http_git.replace("http://", f"http://{USER}:{PASSWORD}@")

    fetched = await mirrors.fetch(with_creds, "main", "charts/app")
    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(with_creds, "main", "charts/nope")

    assert fetched.revision
    config = (mirrors.mirror_dir(http_git, (USER, PASSWORD)) / "config").read_text()
    assert PASSWORD not in config and http_git in config
    assert PASSWORD not in str(err.value) and http_git in str(err.value)


async def test_a_mirror_cloned_with_credentials_is_never_served_to_a_fetch_without_them(
    http_git: str, mirrors: GitMirrors, tmp_path: Path
) -> None:
    """Tenant A's credentials clone the mirror; tenant B (none, or wrong ones)
    must still be asked for credentials by the server, not served from disk."""
    fetched = await mirrors.fetch(http_git, "main", "charts/app", auth=(USER, PASSWORD))

    for other in (None, (USER, "not-the-password")):
        with pytest.raises(ChartFetchError, match="authentication failed"):
            await mirrors.fetch(http_git, "main", "charts/app", auth=other)
        with pytest.raises(ChartFetchError, match="authentication failed"):
            await mirrors.revision(http_git, "main", "charts/app", auth=other)
    assert mirrors.mirror_dir(http_git, (USER, PASSWORD)) != mirrors.mirror_dir(http_git)
    assert fetched.path.is_relative_to(mirrors.mirror_dir(http_git, (USER, PASSWORD)).parent)
    names = {p.name for p in (tmp_path / "cache" / "git").iterdir()}
    assert not any(USER in n or PASSWORD in n for n in names)


async def test_cache_directory_names_survive_a_restart_but_differ_between_caches(
    source: Source, tmp_path: Path
) -> None:
    """The access key's secret is kept in the cache, so a restarted operator
    finds its mirrors; another cache directory has another secret."""
    first = GitMirrors(tmp_path / "cache", poll_interval=3600)
    again = GitMirrors(tmp_path / "cache", poll_interval=3600)
    other = GitMirrors(tmp_path / "other-cache", poll_interval=3600)

    assert first.mirror_dir(source.url) == again.mirror_dir(source.url)
    assert first.mirror_dir(source.url).name == other.mirror_dir(source.url).name == "mirror.git"
    assert first.mirror_dir(source.url).parent.name != other.mirror_dir(source.url).parent.name
    assert (tmp_path / "cache" / ".access-key").stat().st_mode & 0o777 == 0o600


async def test_wrong_https_credentials_are_reported_without_the_password(
    http_git: str, mirrors: GitMirrors
) -> None:
    with pytest.raises(ChartFetchError) as err:
        await mirrors.fetch(http_git, "main", "charts/app", auth=(USER, "wrong-secret-value"))

    assert "authentication failed" in str(err.value)
    assert "wrong-secret-value" not in str(err.value)


async def test_a_hanging_git_is_killed_after_the_timeout(source: Source, tmp_path: Path) -> None:
    pid_file = tmp_path / "git.pid"
    slow_git = tmp_path / "slow-git"
    slow_git.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    slow_git.chmod(0o755)
    mirrors = GitMirrors(tmp_path / "cache", poll_interval=60, timeout=0.3, git=str(slow_git))

    with pytest.raises(ChartFetchError, match="timed out after"):
        await mirrors.fetch(source.url, "main", "charts/app")

    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

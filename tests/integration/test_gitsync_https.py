"""Git over https-style basic auth (plain http here, same auth path): a real
`git http-backend` behind a small server that demands a password. The
syncer reads credentials from a mounted-Secret-like directory and never
shows the password."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.integration.gitsync_support import GitRemote, get_obj, git, sync_once, sync_status
from tests.gitbackend import relay_to_git_http_backend

USER, PASSWORD = "deploy", "s3cret-Pa55word"


def make_handler(root: Path) -> type[BaseHTTPRequestHandler]:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    class GitHandler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {**os.environ, "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                   "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": USER, "REMOTE_ADDR": "127.0.0.1",
                   "GIT_CONFIG_PARAMETERS": "'http.receivepack=true'"}
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            relay_to_git_http_backend(self, env, body)

        do_GET = do_POST = _serve

    return GitHandler


@pytest.fixture
def http_git(tmp_path: Path) -> Iterator[tuple[GitRemote, str]]:
    remote = GitRemote(tmp_path / "git")
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(remote.bare.parent))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield remote, f"http://127.0.0.1:{server.server_address[1]}/remote.git"
    finally:
        server.shutdown()
        server.server_close()


def creds(directory: Path, password: str) -> Path:
    directory.mkdir()
    (directory / "username").write_text(USER)
    (directory / "password").write_text(password + "\n")
    return directory


def test_basic_auth_from_a_secret_directory_syncs_pushes_the_tag_and_never_shows_the_password(
        cluster: LocalCluster, http_git: tuple[GitRemote, str], tmp_path: Path) -> None:
    remote, url = http_git
    uid = uuid.uuid4().hex[:6]
    remote.write("cm.yaml", f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: https-{uid}, namespace: default}}\n")
    commit = remote.commit()
    proc = sync_once(cluster, tmp_path / "w", "--git-url", url, "--source-name", f"https-{uid}", "-v",
                     "--git-https-credentials-dir", str(creds(tmp_path / "good", PASSWORD)))
    assert proc.returncode == 0, proc.stderr
    assert get_obj(cluster, "configmap", f"https-{uid}", "default") is not None
    assert remote.tag() == commit
    assert PASSWORD not in proc.stdout + proc.stderr

    proc = sync_once(cluster, tmp_path / "w2", "--git-url", url, "--source-name", f"https-bad-{uid}",
                     "--git-https-credentials-dir", str(creds(tmp_path / "bad", "wrong-" + PASSWORD)))
    assert proc.returncode == 1
    status = sync_status(cluster, f"https-bad-{uid}")
    assert "https authentication failed" in status["pass_error"], status["pass_error"]
    assert PASSWORD not in proc.stdout + proc.stderr + str(status)
    config = git("config", "--list", cwd=next((tmp_path / "w").rglob("mirror-*")))
    assert PASSWORD not in config

"""A password written into every URL field reaches no printer.

HelmReleases put ``http://user:S3cretPass@...`` in `chart.repository`,
`chart.git` and `valuesFrom[].externalSourceRef.url`, against real local
servers that demand the password, refuse a wrong one, ignore auth or are not
there at all (and an `oci://` repository); the syncer gets Git URLs with a
password, right and wrong. Then the sweep: the password appears in no
HelmRelease status, no event, no operator or syncer log line, no sync status
and no /metrics output, while the redacted URLs are still there to read.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.localcluster import LocalCluster, free_port
from tests.gitbackend import relay_to_git_http_backend
from tests.integration.conftest import TESTDATA, ChartRepo, OperatorProcess, start_operator
from tests.integration.gitsync_support import REPO_ROOT, HELM_OPERATOR, GitRemote, SyncerProcess
from tests.integration.helpers import eventually
from tests.integration.hr import apply, condition, helmrelease, new_namespace, wait_phase

SECRET = "S3cretPass"
USER = "user"
GOOD = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


def _serve(handler: type[http.server.BaseHTTPRequestHandler] | functools.partial) -> Iterator[int]:  # type: ignore[type-arg]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _AuthFiles(http.server.SimpleHTTPRequestHandler):
    """Files, only for the right password."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("Authorization") != GOOD:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="sweep"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


class _Values(http.server.BaseHTTPRequestHandler):
    """/open/* ignores auth; /auth/* demands the right password."""

    bodies = {"/open/values.yaml": b"message: from-an-external-source\n",
              "/auth/values.yaml": b"message: from-a-protected-source\n",
              "/open/deep.yaml": b"deep: " + b"[" * 300 + b"]" * 300 + b"\n"}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = self.bodies.get(self.path)
        code = 404 if body is None else 200
        if self.path.startswith("/auth/") and self.headers.get("Authorization") != GOOD:
            code, body = 401, b""
        self.send_response(code)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


def _git_handler(root: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class GitHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self) -> None:
            if self.headers.get("Authorization") != GOOD:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            env = {**os.environ, "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
                   "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                   "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                   "REMOTE_USER": USER, "REMOTE_ADDR": "127.0.0.1",
                   "GIT_CONFIG_PARAMETERS": "'http.receivepack=true'"}
            relay_to_git_http_backend(self, env, body)

        do_GET = do_POST = _serve

    return GitHandler


@pytest.fixture(scope="module")
def servers(chart_repo: ChartRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URLs (without credentials) of every server the sweep uses."""
    git_root = tmp_path_factory.mktemp("sweep-git")
    for name in ("charts", "charts-b"):  # two: the chart caches are keyed without credentials
        charts = GitRemote(git_root / name)
        shutil.copytree(TESTDATA / "charts" / "hello", charts.work / "charts" / "hello")
        charts.commit("the hello chart")
    manifests = GitRemote(git_root / "manifests")
    manifests.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sweep, namespace: default}\n")
    manifests.commit("a manifest")
    auth_repo = _serve(functools.partial(_AuthFiles, directory=str(chart_repo.root)))
    values = _serve(_Values)
    git = _serve(_git_handler(git_root))
    try:
        yield {"auth_repo": f"127.0.0.1:{next(auth_repo)}", "values": f"127.0.0.1:{next(values)}",
               "git": f"127.0.0.1:{next(git)}", "closed": f"127.0.0.1:{free_port()}"}
    finally:
        for gen in (auth_repo, values, git):
            gen.close()


@pytest.fixture(scope="module")
def sweep_operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = start_operator(cluster, tmp_path_factory.mktemp("sweep-operator"), "--charts-sync-interval", "15s",
                        "--external-source-allow", "127.0.0.1")  # the test servers are on loopback
    yield op
    op.stop()


def _hello(repository: str, version: str = "0.1.0") -> dict[str, str]:
    return {"repository": repository, "name": "hello", "version": version}


def test_no_password_in_status_events_logs_or_metrics_of_the_operator(
        cluster: LocalCluster, servers: dict[str, str], sweep_operator: OperatorProcess,
        chart_repo: ChartRepo) -> None:
    ns = new_namespace(cluster, "sweep")
    s = servers
    with_pw = f"{USER}:{SECRET}@"
    wrong_pw = f"{USER}:{SECRET}-wrong@"
    open_values = f"http://{with_pw}{s['values']}/open/values.yaml"
    releases = {
        # chart.repository: demands the password / refuses a wrong one / not there / OCI
        "repo-ok": ({"chart": _hello(f"http://{with_pw}{s['auth_repo']}/")}, "Succeeded"),
        # (another version: the chart cache does not check credentials yet, issue 10 item 3)
        "repo-wrong": ({"chart": _hello(f"http://{wrong_pw}{s['auth_repo']}/", "0.2.0")}, "ChartFetchFailed"),
        "repo-closed": ({"chart": _hello(f"http://{with_pw}{s['closed']}/")}, "ChartFetchFailed"),
        "repo-oci": ({"chart": _hello(f"oci://{with_pw}{s['closed']}/charts")}, "ChartFetchFailed"),
        # chart.git: demands the password / refuses a wrong one
        "git-ok": ({"chart": {"git": f"http://{with_pw}{s['git']}/charts/remote.git", "path": "charts/hello",
                              "ref": "master"}}, "Succeeded"),
        "git-wrong": ({"chart": {"git": f"http://{wrong_pw}{s['git']}/charts-b/remote.git", "path": "charts/hello",
                                 "ref": "master"}}, "ChartFetchFailed"),
        # externalSourceRef: ignores auth / demands it and gets a wrong one / hostile YAML / not there
        "ext-open": ({"chart": _hello(chart_repo.url + "/"),
                      "valuesFrom": [{"externalSourceRef": {"url": open_values}}]}, "Succeeded"),
        "ext-wrong": ({"chart": _hello(chart_repo.url + "/"), "valuesFrom": [
            {"externalSourceRef": {"url": f"http://{wrong_pw}{s['values']}/auth/values.yaml"}}]}, "Failed"),
        "ext-deep": ({"chart": _hello(chart_repo.url + "/"), "valuesFrom": [
            {"externalSourceRef": {"url": f"http://{with_pw}{s['values']}/open/deep.yaml"}}]}, "Failed"),
        "ext-closed": ({"chart": _hello(chart_repo.url + "/"), "valuesFrom": [
            {"externalSourceRef": {"url": f"http://{with_pw}{s['closed']}/values.yaml"}}]}, "Failed"),
    }
    for name, (spec, _) in releases.items():
        apply(cluster, ns, helmrelease(name, spec))
    statuses = {name: wait_phase(cluster, ns, name, phase, timeout=180) for name, (_, phase) in releases.items()}

    # the messages still say which server: the URL is there, without its userinfo
    assert f"http://{s['auth_repo']}" in condition(statuses["repo-wrong"], "ChartFetched")["message"]
    assert "HTTP 401" in condition(statuses["repo-wrong"], "ChartFetched")["message"]
    assert f"http://{s['closed']}" in condition(statuses["repo-closed"], "ChartFetched")["message"]
    assert f"http://{s['git']}/charts-b/remote.git" in condition(statuses["git-wrong"], "ChartFetched")["message"]
    assert f"http://{s['values']}/auth/values.yaml" in condition(statuses["ext-wrong"], "Released")["message"]
    assert f"http://{s['values']}/open/deep.yaml" in condition(statuses["ext-deep"], "Released")["message"]

    everything = {
        "HelmRelease objects": cluster.kubectl("get", "helmreleases", "-n", ns, "-o", "json").stdout,
        "events": cluster.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
        "operator log": sweep_operator.log_text(),
        "/metrics": urllib.request.urlopen(f"http://127.0.0.1:{sweep_operator.port}/metrics", timeout=5)
        .read().decode(),
    }
    # the objects themselves hold the password in their spec (the user wrote it there): only status counts
    objects = json.loads(everything.pop("HelmRelease objects"))["items"]
    everything["statuses"] = json.dumps([o.get("status", {}) for o in objects])
    for where, text in everything.items():
        assert SECRET not in text, f"the password appears in {where}: " + _around(text, SECRET)
    assert any(e["reason"] == "FailedReleaseSync" for e in json.loads(everything["events"])["items"])
    assert f"{ns}/repo-wrong" in everything["operator log"]


def test_no_password_in_the_syncer_log_status_or_metrics(
        cluster: LocalCluster, servers: dict[str, str], tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:6]
    url = f"http://{USER}:{SECRET}@{servers['git']}/manifests/remote.git"
    wrong = f"http://{USER}:{SECRET}-wrong@{servers['git']}/manifests/remote.git"
    config = tmp_path / "sources.yaml"
    config.write_text(f"sources:\n- name: ok-{uid}\n  url: {url}\n  readonly: true\n"
                      f"- name: wrong-{uid}\n  url: {wrong}\n  readonly: true\n")
    with SyncerProcess(cluster, tmp_path / "w", "--config", str(config), "--git-poll-interval", "1s") as syncer:
        def statuses() -> dict[str, dict[str, object]] | None:
            out = cluster.kubectl("get", "configmaps", "-n", "default", "-o", "json").stdout
            found = {cm["metadata"]["name"]: json.loads(cm["data"]["status.json"])
                     for cm in json.loads(out)["items"] if "status.json" in (cm.get("data") or {})}
            mine = {k: v for k, v in found.items() if uid in k}
            return mine if len(mine) == 2 and all(v.get("synced_at") for v in mine.values()) else None

        stored = eventually(statuses, timeout=90, what="both sources' sync status")
        metrics = syncer.get("/metrics")
        text_status = _sync_status_text(cluster)
    log = syncer.log.read_text(errors="replace")
    ok = next(v for k, v in stored.items() if f"ok-{uid}" in k)
    failed = next(v for k, v in stored.items() if f"wrong-{uid}" in k)
    assert ok["url"] == f"http://{servers['git']}/manifests/remote.git" and not ok["pass_error"]
    assert f"http://{servers['git']}/manifests/remote.git" in str(failed["pass_error"])
    for where, text in {"sync status": json.dumps(stored), "sync-status output": text_status,
                        "syncer log": log, "/metrics": metrics}.items():
        assert SECRET not in text, f"the password appears in {where}: " + _around(text, SECRET)


def _sync_status_text(cluster: LocalCluster) -> str:
    import subprocess

    return subprocess.run([*HELM_OPERATOR, "sync-status", "--kubeconfig", str(cluster.kubeconfig),
                           "--namespace", "default"], cwd=REPO_ROOT, env=cluster.env(), text=True,
                          capture_output=True, timeout=60).stdout


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 200):at + 100]
